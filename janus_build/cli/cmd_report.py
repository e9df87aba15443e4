"""``janus report``: several runs' robustness figures as one Table 9-shaped table and plot."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from janus_build.cli import app


@app.command()
def report(
    runs: list[str] = typer.Argument(..., help="Runs: PATH or NAME=PATH (train run dir, eval metrics JSON)."),
    out: Path = typer.Option(..., "--out", help="Output directory: table9.csv, table9.md, robustness.png."),
    label_stats: Optional[list[str]] = typer.Option(
        None, "--label-stats", help="NAME=FILE: a match/label _stats.json giving run NAME's label accuracy."
    ),
    paper: bool = typer.Option(True, "--paper/--no-paper", help="Plot the paper's Table 9 rows beside yours."),
) -> None:
    """Collect evaluation metrics into a table shaped like the paper's Table 9."""
    from rich.markup import escape
    from rich.table import Table

    from janus_build.cli.common import console
    from janus_build.report import COLUMNS, ReportConfig, _cell, run_report

    rows = run_report(ReportConfig(runs=tuple(runs), out=out, label_stats=tuple(label_stats or ()), paper=paper))
    table = Table(*COLUMNS)
    for row in rows:
        table.add_row(*(escape(_cell(row.get(c)) or "–") for c in COLUMNS))
    console().print(table)
    console().print(f"written: {escape(str(out / 'table9.csv'))}, table9.md, robustness.png")
