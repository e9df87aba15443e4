"""``janus match``: label captions by n-gram subset matching."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from janus_build.cli import app


@app.command("match")
def match_command(
    inputs: Optional[list[str]] = typer.Argument(
        None, metavar="INPUT", help="Parquet files, directories or globs (LAION, YFCC, your own)."
    ),
    out: str = typer.Option(
        ...,
        "--out",
        help="Output directory or URI (s3://, gs://, hdfs://): one labelled shard per input file (small files packed) + _stats.json.",
    ),
    strategy: str = typer.Option(
        "sc",
        "--strategy",
        help="sc (first class in caption order), strict (only when one class matches) or mc (all classes, up to 25).",
    ),
    labels: str = typer.Option(
        "in100", "--labels", help="Label set: in100, in1k or a TSV file (class_id, name[, terms])."
    ),
    classnames: str = typer.Option(
        "openai",
        "--classnames",
        help="Matching terms: openai, default (WordNet synonyms) or a TSV file (class_id, name, terms).",
    ),
    text_col: Optional[list[str]] = typer.Option(
        None,
        "--text-col",
        help="Caption column; repeat to join several with a space (YFCC: title, description, tags). Default: TEXT if present, else caption.",
    ),
    truth_col: Optional[str] = typer.Option(
        None, "--truth-col", help="Ground-truth class column: enables label accuracy and dataset utilisation."
    ),
    key_col: Optional[str] = typer.Option(
        None, "--key-col", help="Take each row's key from this id column (values unique across inputs)."
    ),
    key_root: Optional[str] = typer.Option(
        None,
        "--key-root",
        help="Directory input keys are relative to (default: the deepest directory holding every input).",
    ),
    min_label_accuracy: Optional[float] = typer.Option(
        None, "--min-label-accuracy", help="Exit with code 3 if label accuracy falls below this (needs --truth-col)."
    ),
    min_utilization: Optional[float] = typer.Option(
        None, "--min-utilization", help="Exit with code 3 if (dataset) utilisation falls below this."
    ),
    workers: int = typer.Option(1, "--workers", help="Processes working on separate input shards."),
    engine: str = typer.Option(
        "local",
        "--engine",
        help="local, or spark (PySpark; local mode unless --spark-master, SPARK_MASTER or spark-submit say otherwise).",
    ),
    spark_master: Optional[str] = typer.Option(
        None,
        "--spark-master",
        help="Spark master URL (spark://host:7077, k8s://..., yarn, local[N]); needs --engine spark.",
    ),
    max_ngram: int = typer.Option(3, "--max-ngram", help="Longest n-gram matched (the paper: 3)."),
    pack_rows: int = typer.Option(
        65_536,
        "--pack-rows",
        help="Input files under this many rows are packed, in order and with the same columns, into shards of up to this many rows; 0: one shard per input.",
    ),
    skip_bad_inputs: bool = typer.Option(
        False, "--skip-bad-inputs", help="Continue past inputs that cannot be read and list them in _stats.json."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Start again over an earlier janus match output in --out."
    ),
    sample: bool = typer.Option(
        False, "--sample", help="Match the caption sample shipped with janus-build (ground truth in class_id)."
    ),
) -> None:
    """Label captions with classes by n-gram subset matching (strict / sc / mc)."""
    from janus_build.cli.common import RichProgress
    from janus_build.errors import ConfigError
    from janus_build.match import MatchConfig, run_match
    from janus_build.resources import package_data

    sources = list(inputs or [])
    if sample:
        sources.append(str(package_data("sample_captions.parquet")))
        truth_col = truth_col or "class_id"
    if not sources:
        raise ConfigError(
            "no INPUT given: pass parquet files, directories or globs (or --sample for the shipped sample)"
        )
    config = MatchConfig(
        inputs=tuple(sources),
        out=str(out),
        strategy=strategy,
        labels=labels,
        classnames=classnames,
        text_cols=tuple(text_col or ()),
        truth_col=truth_col,
        key_col=key_col,
        key_root=key_root,
        min_label_accuracy=min_label_accuracy,
        min_utilization=min_utilization,
        max_ngram=max_ngram,
        pack_rows=pack_rows,
        workers=workers,
        engine=engine,
        spark_master=spark_master,
        skip_bad_inputs=skip_bad_inputs,
        overwrite=overwrite,
    )
    from janus_build.errors import GateError

    with RichProgress() as progress:
        try:
            stats = run_match(config, progress)
            gate_error = None
        except GateError as exc:
            stats, gate_error = exc.stats, exc
    render_summary(stats, out)
    if gate_error is not None:
        raise gate_error


def render_summary(stats: dict, out: str) -> None:
    """Print the run's figures and the most frequent classes."""
    from rich.table import Table

    from janus_build.cli.common import console, esc
    from janus_build.labels import load_label_set

    names = (
        load_label_set(stats["labels"]).names
        if stats["labels"] in ("in100", "in1k") or Path(stats["labels"]).is_file()
        else {}
    )
    table = Table(title=f"janus match ({esc(stats['strategy'])}) -> {esc(out)}", show_header=False)
    table.add_row("rows", f"{stats['rows']:,}")
    table.add_row("labelled", f"{stats['labelled']:,}")
    table.add_row("utilization (labelled / rows)", f"{stats['utilization']:.4f}")
    if "label_accuracy" in stats:
        table.add_row("label accuracy (correct / labelled)", f"{stats['label_accuracy']:.4f}")
        table.add_row("dataset utilization (correct / rows)", f"{stats['dataset_utilization']:.4f}")
    reasons = stats.get("unlabelled_reasons", {})
    table.add_row(
        "empty / non-text / too long",
        f"{reasons.get('empty', 0)} / {reasons.get('non_text', 0)} / {reasons.get('too_long', 0)}",
    )
    table.add_row("classes seen", str(stats.get("classes_seen", 0)))
    if stats.get("skipped_inputs"):
        table.add_row("skipped inputs", esc(", ".join(b["path"] for b in stats["skipped_inputs"])))
    console().print(table)
    top = sorted(stats["per_class"].items(), key=lambda kv: -kv[1])[:10]
    if top:
        classes = Table(title="most frequent classes")
        classes.add_column("class")
        classes.add_column("name")
        classes.add_column("count", justify="right")
        if "per_class_accuracy" in stats:
            classes.add_column("accuracy", justify="right")
        for class_id, count in top:
            row = [esc(class_id), esc(names.get(int(class_id), "")), f"{count:,}"]
            if "per_class_accuracy" in stats:
                row.append(f"{stats['per_class_accuracy'].get(class_id, 0.0):.3f}")
            classes.add_row(*row)
        console().print(classes)
