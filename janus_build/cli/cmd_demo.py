"""``janus demo``: the whole pipeline end to end, offline, from one command."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from janus_build.cli import app


@app.command("demo")
def demo_command(
    out: Path = typer.Option(
        Path("demo-out"), "--out", help="Where the miniature JANuS goes (an earlier demo there is replaced)."
    ),
    classes: Optional[str] = typer.Option(
        None, "--classes", help="Comma-separated IN100 class ids (default: lion, goose, koala, flamingo)."
    ),
    per_class: int = typer.Option(60, "--per-class", help="Flickr photos kept per class."),
    epochs: int = typer.Option(6, "--epochs", help="CPU training epochs per budget."),
    interactive: bool = typer.Option(
        False, "--interactive", help="Tag the photos yourself in the browser instead of from the generated truth."
    ),
    port: int = typer.Option(
        8765, "--port", min=1, max=65535, help="Port of the tagging page with --interactive (1-65535)."
    ),
) -> None:
    """Build a miniature JANuS offline: fetch, tag, caption, match, balance, train, eval."""
    from rich.panel import Panel

    from janus_build.cli.cmd_train import render_metrics
    from janus_build.cli.common import RichProgress, console, esc, parse_int_list
    from janus_build.demo import DEMO_CLASSES, DemoConfig, run_demo

    chosen = tuple(parse_int_list(classes, "--classes") or DEMO_CLASSES)
    config = DemoConfig(out=out, classes=chosen, per_class=per_class, epochs=epochs, interactive=interactive, port=port)
    started = time.perf_counter()

    def narrate(title: str, text: str) -> None:
        console().print(Panel(esc(text), title=f"[bold]{esc(title)}", title_align="left", border_style="cyan"))

    with RichProgress() as progress:
        result = run_demo(config, narrate, progress)
    con = console()
    report = result.fetch_report.get("classes", {})
    con.print(
        "[bold]fetch[/]: "
        + ", ".join(
            f"class {esc(c)}: {v.get('available')} available, {v.get('fetched')} fetched, {v.get('downloaded')} downloaded"
            for c, v in report.items()
        )
    )
    con.print(
        "[bold]tag[/] (Table 8 columns): "
        + ", ".join(
            f"{esc(row['name'])}: {row['good']} good of {row['total']} ({row['pct_good']:.0f}%), {row['available']} available"
            for row in result.tag_stats.get("classes", [])
        )
    )
    stats = result.match_stats
    con.print(
        f"[bold]match[/]: {stats['labelled']}/{stats['rows']} captions labelled, label accuracy "
        f"{stats.get('label_accuracy', 0):.3f}, dataset utilisation {stats.get('dataset_utilization', 0):.3f}"
    )
    found = result.contamination
    per_set = ", ".join(f"{esc(n)} {v['contaminated_samples']}" for n, v in found.get("eval_sets", {}).items())
    con.print(
        f"[bold]dedup[/]: {found.get('checked', 0)} training images checked against the evaluation sets, "
        f"{found.get('contaminated', 0)} near-copies found ({per_set}) and left out of the balance"
    )
    for budget, summary in result.balance.items():
        con.print(
            f"[bold]balance {esc(budget)}[/]: {summary.counts.get('train', 0)} training samples -> {esc(result.paths[f'janus_{budget}'])}"
        )
    for budget, metrics in result.metrics.items():
        render_metrics(metrics, title=f"Robustness of a small CNN trained on the {budget} budget")
    con.print(f"\nBuilt in {time.perf_counter() - started:.0f} s. Everything is under [bold]{esc(result.out)}[/]:")
    for name, path in result.paths.items():
        con.print(f"  {name:<14} {esc(path)}", highlight=False)
