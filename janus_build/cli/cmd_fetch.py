"""``janus fetch`` and ``janus queries check``: the Flickr query pipeline's commands."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from janus_build.cli import app

queries_app = typer.Typer(help="Inspect and check Flickr query files (queries/*.toml).", no_args_is_help=True)
app.add_typer(queries_app, name="queries")

_DEFAULT_LICENSES = "1,2,3,4,5,6,9,11,12,13,14,15,16"  # = flickr.CREATIVE_COMMONS_LICENSES (kept literal: no import)


@app.command()
def fetch(
    out: Path = typer.Option(..., "--out", help="Output stage directory (metadata/, images/, report.json)."),
    queries: Optional[Path] = typer.Option(
        None, "--queries", help="Queries TOML file (default: the shipped queries/in100.toml)."
    ),
    classes: Optional[str] = typer.Option(
        None, "--classes", help="Comma-separated class ids to fetch (default: all in the file)."
    ),
    per_class: Optional[int] = typer.Option(
        None, "--per-class", help="Photos to keep per class (default: each class's target)."
    ),
    api_url: str = typer.Option(
        "https://api.flickr.com/services/rest/", "--api-url", help="Flickr REST endpoint (mirrors, proxies, tests)."
    ),
    metadata_only: bool = typer.Option(
        False, "--metadata-only", help="Stop after the metadata shards; download no image."
    ),
    calls_per_hour: int = typer.Option(
        3600, "--calls-per-hour", help="API call budget (Flickr allows 3,600 per key per hour)."
    ),
    workers: int = typer.Option(1, "--workers", help="Classes searched concurrently (sharing the call budget)."),
    licenses: str = typer.Option(
        _DEFAULT_LICENSES, "--licenses", help="Comma-separated Flickr licence ids (default: the Creative Commons ids)."
    ),
    max_size: int = typer.Option(
        1024, "--max-size", help="Largest image side in pixels: the biggest Flickr size at or below it is chosen."
    ),
    processes: int = typer.Option(1, "--processes", help="img2dataset download processes."),
    threads: int = typer.Option(16, "--threads", help="img2dataset download threads per process."),
    shard_size: int = typer.Option(1000, "--shard-size", help="Images per image shard."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds per API or image request."),
    respect_optouts: bool = typer.Option(
        True,
        "--respect-optouts/--ignore-optouts",
        help="Skip images served with X-Robots-Tag noai/noimageai/noindex/noimageindex (img2dataset's check).",
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Discard an earlier output in --out and start again."),
) -> None:
    """Search Flickr with per-class queries (resumable), write metadata shards, download image shards."""
    from janus_build.cli.common import RichProgress, console, esc, parse_int_list
    from janus_build.fetch import FetchConfig, run

    class_ids = parse_int_list(classes, "--classes")
    licence_ids = parse_int_list(licenses, "--licenses")
    config = FetchConfig(
        out=out,
        queries=queries,
        classes=tuple(class_ids) if class_ids else None,
        per_class=per_class,
        api_url=api_url,
        metadata_only=metadata_only,
        calls_per_hour=calls_per_hour,
        workers=workers,
        licenses=tuple(licence_ids or ()),
        max_size=max_size,
        processes=processes,
        threads=threads,
        shard_size=shard_size,
        request_timeout=timeout,
        respect_optouts=respect_optouts,
        overwrite=overwrite,
    )
    with RichProgress() as progress:
        result = run(config, progress)
    _render_report(result.report, console())
    for warning in result.report.get("warnings", []):
        console().print(f"[yellow]warning[/]: {esc(warning)}", soft_wrap=True)
    console().print(f"[green]done[/]: {esc(out)} ({result.api_calls} API call(s) this run)", soft_wrap=True)


def _render_report(report: dict, con) -> None:
    from rich.table import Table

    from janus_build.cli.common import esc

    table = Table(title="janus fetch (cf. paper Table 8; details in report.json)")
    for column in ("class", "name", "available", "fetched", "images", "opt-out", "dropped", "paper"):
        table.add_column(column, justify="left" if column == "name" else "right", no_wrap=column != "name")
    for class_id, row in report["classes"].items():
        table.add_row(
            class_id,
            esc(row["name"]),
            f"{row['available']:,}",
            f"{row['fetched']:,}",
            "-" if row["downloaded"] is None else f"{row['downloaded']:,}",
            "-" if row.get("optout_skipped") is None else f"{row['optout_skipped']:,}",
            f"{sum(row['dropped'].values()):,}",
            f"{row['paper'].get('available', '-'):,}" if row["paper"] else "-",
        )
    con.print(table)


@queries_app.command("check")
def check(file: Path = typer.Argument(..., metavar="FILE", help="Queries TOML file.")) -> None:
    """Report every problem of a queries file (class, query, column); exit 2 on any error."""
    from janus_build.cli.common import console, console_err, esc
    from janus_build.errors import InputError
    from janus_build.fetch.queries import check_file, read_queries_file

    problems = check_file(file)
    errors = [p for p in problems if p.problem.severity == "error"]
    for problem in problems:
        style = "red" if problem.problem.severity == "error" else "yellow"
        console_err().print(str(problem), style=style, highlight=False, markup=False, soft_wrap=True)
    if errors:
        raise InputError(f"{file}: {len(errors)} error(s) in the queries file (listed above)")
    classes, _ = read_queries_file(file)
    count = sum(len(c.queries) for c in classes)
    console().print(f"[green]ok[/]: {esc(file)}: {len(classes)} classes, {count} queries, {len(problems)} warning(s)")
