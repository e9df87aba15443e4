"""``janus report``: evaluation metrics of several runs as a table shaped like the paper's Table 9.

Columns: Val, V2, S, R, A (top-1 on each restricted label set), average robustness, effective
robustness ratio (average robustness / Val), label accuracy and dataset utilisation. Writes
CSV and Markdown, and plots average robustness against validation accuracy with the paper's
published rows beside yours (``janus_build/data/table9_results.tsv``, cited there).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from janus_build.core.fsio import atomic_path, atomic_write_text
from janus_build.errors import InputError

log = logging.getLogger(__name__)

COLUMNS = ("run", "Val", "V2", "S", "R", "A", "Avg. Rob.", "Eff. Rob.", "Label Acc.", "DS Util.")
SHIFT_COLUMNS = {
    "Val": "imagenet_val",
    "V2": "imagenet_v2",
    "S": "imagenet_sketch",
    "R": "imagenet_r",
    "A": "imagenet_a",
}
PAPER_ROWS = "table9_results.tsv"


@dataclass(frozen=True)
class ReportConfig:
    """Args:
    runs: ``PATH`` or ``NAME=PATH``: a ``janus train`` run directory (the evaluation with the
        highest average robustness is taken, as ``best.pt`` is chosen), a ``janus eval``
        metrics JSON, or a directory holding ``metrics.json``.
    out: the output directory (``table9.csv``, ``table9.md``, ``robustness.png``).
    label_stats: ``NAME=FILE``: a match or label ``_stats.json`` whose ``label_accuracy`` and
        ``dataset_utilization`` fill those columns for run NAME.
    paper: plot the paper's published rows beside yours.
    """

    runs: tuple[str, ...]
    out: Path
    label_stats: tuple[str, ...] = ()
    paper: bool = True


def _named(item: str, flag: str) -> tuple[str, Path]:
    name, sep, path = item.partition("=")
    if not sep:
        return Path(item).name or item, Path(item)
    if not name or not path:
        raise InputError(f"{flag} {item!r}: expected PATH or NAME=PATH")
    return name, Path(path)


def _load_json(path: Path, flag: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{flag} {path}: unreadable metrics ({exc})") from None


def load_metrics(path: Path) -> dict[str, Any]:
    """The metrics of a run directory, an eval JSON, or a directory holding metrics.json."""
    if path.is_file():
        return _load_json(path, "RUN")
    if (path / "metrics.json").is_file():
        return _load_json(path / "metrics.json", "RUN")
    evaluations = sorted((path / "eval").glob("*.json")) if path.is_dir() else []
    if not evaluations:
        raise InputError(f"RUN {path}: no metrics (expected a janus train run with eval/*.json, or a metrics JSON)")
    metrics = [_load_json(p, "RUN") for p in evaluations]
    return max(metrics, key=lambda m: (m.get("average_robustness") or 0.0, m.get("val_top1") or 0.0))


def _top1(metrics: Mapping[str, Any], shift: str) -> float | None:
    entry = (metrics.get("shifts") or {}).get(shift)
    return None if not entry else entry.get("top1")


def report_rows(config: ReportConfig) -> list[dict[str, Any]]:
    """One row per run, with the Table 9 columns (None where a figure is unknown)."""
    quality = {}
    for item in config.label_stats:
        name, path = _named(item, "--label-stats")
        stats = _load_json(path, "--label-stats")
        quality[name] = (stats.get("label_accuracy"), stats.get("dataset_utilization"))
    rows = []
    for item in config.runs:
        name, path = _named(item, "RUN")
        metrics = load_metrics(path)
        row: dict[str, Any] = {"run": name}
        row.update({col: _top1(metrics, shift) for col, shift in SHIFT_COLUMNS.items()})
        row["Avg. Rob."] = metrics.get("average_robustness")
        row["Eff. Rob."] = metrics.get("effective_robustness_ratio")
        row["Label Acc."], row["DS Util."] = quality.get(name, (None, None))
        rows.append(row)
    return rows


def _cell(value: Any) -> str:
    return "" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))


def to_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table; run names are escaped so a name cannot break the table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "| " + " | ".join("---" for _ in COLUMNS) + " |"]
    for row in rows:
        cells = [_cell(row.get(c)) or "–" for c in COLUMNS]
        cells[0] = cells[0].replace("|", "\\|").replace("<", "&lt;")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: _cell(row.get(c)) for c in COLUMNS})
    return buffer.getvalue()


def paper_rows() -> list[dict[str, str]]:
    """The paper's Table 9 rows, as shipped."""
    from janus_build.resources import package_data

    text = package_data(PAPER_ROWS).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t"))


def plot(rows: Sequence[Mapping[str, Any]], path: Path, with_paper: bool) -> None:
    """Average robustness against validation accuracy, yours beside the paper's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 5))
    if with_paper:
        published = paper_rows()
        axes.scatter(
            [float(r["IN100-Val"]) for r in published],
            [float(r["Avg. Rob."]) for r in published],
            c="lightgrey",
            edgecolors="grey",
            label="Feuer et al. 2023, Table 9",
        )
    ours = [r for r in rows if r.get("Val") is not None and r.get("Avg. Rob.") is not None]
    axes.scatter([r["Val"] for r in ours], [r["Avg. Rob."] for r in ours], c="tab:red", label="this report")
    for row in ours:
        axes.annotate(
            str(row["run"]), (row["Val"], row["Avg. Rob."]), fontsize=8, xytext=(3, 3), textcoords="offset points"
        )
    axes.set_xlabel("validation top-1 (restricted label set)")
    axes.set_ylabel("average robustness (V2, Sketch, R, A)")
    axes.legend(loc="upper left")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)


def run_report(config: ReportConfig) -> list[dict[str, Any]]:
    """Write ``table9.csv``, ``table9.md`` and ``robustness.png`` into ``config.out``; return the rows."""
    rows = report_rows(config)
    config.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(config.out / "table9.csv", to_csv(rows))
    atomic_write_text(config.out / "table9.md", to_markdown(rows))
    plot(rows, config.out / "robustness.png", config.paper)
    return rows
