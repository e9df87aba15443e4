"""``janus tag``: serve the tagging page, print the Table 8 figures, export the tags table, audit matches."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from janus_build.cli import app

tag_app = typer.Typer(
    help="Hand-tag images in-class / out-of-class in a local browser page (crash-safe SQLite queue).",
    no_args_is_help=True,
)
app.add_typer(tag_app, name="tag")

_DB_HELP = "The queue's SQLite file (default STAGE_DIR/tag/tags.sqlite)."


def _serve(queue, config) -> None:
    from janus_build.cli.common import console, console_err, esc
    from janus_build.tag import server

    server.check_host(config.host, config.allow_remote)
    server.check_port(config.host, config.port)
    if config.host not in server.LOOPBACK:
        console_err().print(
            f"[bold yellow]warning:[/] serving on {esc(config.host)}: anyone who can reach this port can read the "
            "images and record decisions (no login)."
        )
    progress = [queue.progress(c) for c in queue.classes()]
    items = sum(p["items"] for p in progress)
    remaining = sum(p["remaining"] for p in progress)
    awaiting = sum(p["awaiting_second"] for p in progress)
    waiting = f" ({awaiting:,} more wait for a second annotator)" if awaiting else ""
    host = f"[{config.host}]" if ":" in config.host else config.host
    console().print(
        f"janus tag: {items:,} item(s) in {len(progress)} class(es), {remaining:,} to tag{waiting}; queue {esc(queue.path)}\n"
        f"open [bold]http://{esc(host)}:{config.port}/[/]  (Ctrl+C stops; every decision is already saved)",
        highlight=False,
    )
    try:
        server.run(queue, config)
    finally:
        queue.close()


@tag_app.command("serve")
def serve(
    stage_dir: Path = typer.Argument(
        ..., metavar="STAGE_DIR", help="A janus fetch output (its images/ is used) or an image stage directory."
    ),
    references: Optional[Path] = typer.Option(
        None, "--references", help="Reference photos: DIR/<class_id>/*.jpg (else the first in-class images)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (loopback unless --allow-remote)."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="TCP port (1-65535)."),
    annotator: Optional[str] = typer.Option(
        None, "--annotator", help="Default annotator name (the page can change it); default $USER."
    ),
    db: Optional[Path] = typer.Option(None, "--db", help=_DB_HELP),
    overlap: Optional[float] = typer.Option(
        None,
        "--overlap",
        help="Fraction of items tagged by two annotators for Cohen's kappa (default: keep; 0.05 for a new queue).",
    ),
    lease_seconds: float = typer.Option(
        120.0, "--lease-seconds", help="How long an item handed to a tab stays reserved for it."
    ),
    prefetch: int = typer.Option(8, "--prefetch", help="Items the page keeps loaded ahead."),
    grid_size: int = typer.Option(5, "--grid-size", help="Grid mode shows N x N images."),
    class_col: str = typer.Option(
        "class_id", "--class-col", help="Index column holding the class id (label for balance output)."
    ),
    allow_remote: bool = typer.Option(
        False, "--allow-remote", help="Allow a non-loopback --host (no login: trusted networks only)."
    ),
    allowed_host: Optional[list[str]] = typer.Option(
        None,
        "--allowed-host",
        metavar="NAME",
        help="Another name the page may be opened by (e.g. this machine's DNS name behind --allow-remote); repeatable.",
    ),
) -> None:
    """Serve the tagging page for STAGE_DIR and print its URL."""
    from janus_build.errors import ConfigError
    from janus_build.tag import server

    if not 1 <= grid_size <= 10:
        raise ConfigError(f"--grid-size {grid_size}: expected 1 to 10")
    if not 1 <= prefetch <= 100:
        raise ConfigError(f"--prefetch {prefetch}: expected 1 to 100")
    server.check_host(host, allow_remote)
    kwargs = {"annotator": annotator} if annotator else {}
    config = server.ServeConfig(
        stage_dir=stage_dir,
        references=references,
        host=host,
        port=port,
        db=db,
        overlap=overlap,
        lease_seconds=lease_seconds,
        prefetch=prefetch,
        grid_size=grid_size,
        class_col=class_col,
        allow_remote=allow_remote,
        allowed_hosts=tuple(allowed_host or ()),
        **kwargs,
    )
    _serve(server.open_for_serving(config), config)


@tag_app.command("audit")
def audit(
    match_dir: Path = typer.Argument(
        ..., metavar="MATCH_DIR", help="A janus match output directory (*.parquet with key, label, ...)."
    ),
    per_class: int = typer.Option(50, "--per-class", help="Rows sampled per label."),
    images: Optional[Path] = typer.Option(
        None, "--images", help="An image stage directory holding the same keys (else the row's URL is shown)."
    ),
    text_col: Optional[str] = typer.Option(
        None, "--text-col", help="Caption column shown (default TEXT, else caption, else title)."
    ),
    url_col: Optional[str] = typer.Option(None, "--url-col", help="Image URL column (default URL, else url)."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    db: Optional[Path] = typer.Option(
        None, "--db", help="The audit queue's SQLite file (default MATCH_DIR/tag/tags.sqlite)."
    ),
    overlap: Optional[float] = typer.Option(
        None, "--overlap", help="Fraction judged by two annotators (default 0.05)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Bind address (loopback unless --allow-remote)."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="TCP port (1-65535)."),
    annotator: Optional[str] = typer.Option(None, "--annotator", help="Default annotator name; default $USER."),
    allow_remote: bool = typer.Option(False, "--allow-remote", help="Allow a non-loopback --host."),
    allowed_host: Optional[list[str]] = typer.Option(
        None,
        "--allowed-host",
        metavar="NAME",
        help="Another name the page may be opened by (e.g. this machine's DNS name behind --allow-remote); repeatable.",
    ),
    no_serve: bool = typer.Option(
        False, "--no-serve", help="Only draw the sample (serve it later with janus tag serve MATCH_DIR)."
    ),
) -> None:
    """Judge N matched rows per class (in = label right) to estimate label precision; see janus tag stats."""
    from janus_build.cli.common import console, esc
    from janus_build.tag import server
    from janus_build.tag.audit import AuditConfig, build_audit_queue

    server.check_host(host, allow_remote)
    queue = build_audit_queue(
        AuditConfig(
            match_dir=match_dir,
            per_class=per_class,
            images=images,
            text_col=text_col,
            url_col=url_col,
            seed=seed,
            db=db,
            overlap=overlap,
        )
    )
    if no_serve:
        n = sum(queue.progress(c)["items"] for c in queue.classes())
        console().print(
            f"audit sample: {n:,} row(s) in {len(queue.classes())} class(es); queue {esc(queue.path)}", highlight=False
        )
        queue.close()
        return
    kwargs = {"annotator": annotator} if annotator else {}
    config = server.ServeConfig(
        stage_dir=match_dir,
        host=host,
        port=port,
        db=queue.path,
        allow_remote=allow_remote,
        allowed_hosts=tuple(allowed_host or ()),
        **kwargs,
    )
    _serve(queue, config)


def _open_existing(stage_dir: Path, db: Optional[Path]):
    from janus_build.errors import InputError
    from janus_build.tag.db import TagQueue, default_db_path

    path = db or default_db_path(stage_dir)
    if not Path(path).is_file():
        raise InputError(f"{path}: no tagging queue (start one with: janus tag serve {stage_dir})")
    return TagQueue(path)


@tag_app.command("stats")
def stats(
    stage_dir: Path = typer.Argument(..., metavar="STAGE_DIR", help="The directory given to janus tag serve / audit."),
    db: Optional[Path] = typer.Option(None, "--db", help=_DB_HELP),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write every figure as JSON to this file."),
) -> None:
    """Print Table 8 per class (good, total, available, pct good), agreement, and audit precision."""
    from rich.markup import escape as esc
    from rich.table import Table

    from janus_build.cli.common import console
    from janus_build.core.fsio import atomic_write_json
    from janus_build.tag.stats import compute_stats

    with _open_existing(stage_dir, db) as queue:
        result = compute_stats(queue, stage_dir)
    audit = result["mode"] == "audit"
    table = Table(title="label precision per class (audit)" if audit else "Table 8: hand-tagged samples per class")
    for column in ["class", "name", "good", "total", "available", "pct good", "unsure", "remaining", "awaiting 2nd"] + (
        ["precision", "95% CI"] if audit else []
    ):
        table.add_column(column, justify="left" if column == "name" else "right")

    def fmt(value: object) -> str:
        return "–" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value))

    for r in result["classes"] + [
        {"class_id": "all", "name": "", **result["totals"], "unsure": sum(c["unsure"] for c in result["classes"])}
    ]:
        cells = [
            esc(str(r["class_id"])),
            esc(r["name"]),
            fmt(r["good"]),
            fmt(r["total"]),
            fmt(r.get("available")),
            fmt(r["pct_good"]),
            fmt(r["unsure"]),
            fmt(r["remaining"]),
            fmt(r["awaiting_second"]),
        ]
        if audit:
            ci = r.get("precision_ci95")
            cells += [fmt(r.get("precision")), f"{ci[0]:.3f}–{ci[1]:.3f}" if ci else "–"]
        table.add_row(*cells)
    out = console()
    out.print(table)
    a = result["agreement"]
    out.print(
        f"agreement: {a['items']} overlap item(s) judged twice; Cohen's kappa {fmt(a['cohen_kappa'])}, "
        f"raw agreement {fmt(a['percent_agreement'])}%; decisions per annotator: "
        + (", ".join(f"{esc(k)} {v}" for k, v in result["annotators"].items()) or "none"),
        highlight=False,
    )
    if audit:
        s = result["audit"]
        ci = s["precision_ci95"]
        line = (
            f"label precision ({esc(s['strategy'] or 'match')}): {fmt(s['precision'])} "
            f"(95% Wilson CI {ci[0]:.3f}–{ci[1]:.3f}) on {s['judged']} judged rows"
            if ci
            else "label precision: no judged rows yet"
        )
        if s["stratified"]:
            st = s["stratified"]
            line += f"; weighted by class size {st['precision']:.4f} ({st['ci95'][0]:.3f}–{st['ci95'][1]:.3f})"
        out.print(line, highlight=False)
    if json_out is not None:
        atomic_write_json(json_out, result)


@tag_app.command("export")
def export(
    stage_dir: Path = typer.Argument(..., metavar="STAGE_DIR", help="The directory given to janus tag serve."),
    out: Path = typer.Option(..., "--out", help="Parquet file to write (key, class_id, decision, annotator, time)."),
    db: Optional[Path] = typer.Option(None, "--db", help=_DB_HELP),
) -> None:
    """Write the tags table that janus balance consumes (one row per key and annotator)."""
    from janus_build.cli.common import console, esc
    from janus_build.tag.stats import export_tags

    with _open_existing(stage_dir, db) as queue:
        result = export_tags(queue, out)
    console().print(
        f"wrote {result['rows']:,} decision(s) on {result['keys']:,} image(s) to {esc(result['path'])} (in {result['in']:,}, out {result['out']:,}, unsure {result['unsure']:,})",
        highlight=False,
    )
