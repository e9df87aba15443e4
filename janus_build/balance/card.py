"""The dataset card (README.md) and the per-class count plot of a ``janus balance`` output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from janus_build.balance.spec import BalanceConfig
from janus_build.core.fsio import atomic_path, atomic_write_bytes
from janus_build.labels import LabelSet

ATTRIBUTION_TSV = "ATTRIBUTION.tsv"
MAX_ATTRIBUTION_IN_CARD = 5000
ATTRIBUTION_COLUMNS = ("key", "title", "owner", "url", "license")


def tsv_cell(value: str) -> str:
    return " ".join(str(value).split())  # no tabs or newlines inside a cell


def write_plot(
    path: Path,
    before: np.ndarray,
    available: np.ndarray,
    after: np.ndarray,
    min_per_class: int | None,
    label_set_name: str,
) -> None:
    """Per-class counts, each sorted descending, on a log scale (the shape of the paper's Fig. 6):
    before (the ``role=base`` sources, de-duplicated), available (all eligible samples, fill
    sources included) and after balancing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    x = np.arange(1, len(before) + 1)
    ax.plot(
        x,
        np.maximum(np.sort(available)[::-1], 0.8),
        drawstyle="steps-mid",
        label="available (all sources)",
        color="#bbbbbb",
        linestyle=":",
    )
    ax.plot(
        x, np.maximum(np.sort(before)[::-1], 0.8), drawstyle="steps-mid", label="before (base sources)", color="#555555"
    )
    ax.plot(
        x,
        np.maximum(np.sort(after)[::-1], 0.8),
        drawstyle="steps-mid",
        label="after balancing",
        color="#1f77b4",
        linewidth=2,
    )
    if min_per_class:
        ax.axhline(
            min_per_class, color="#d62728", linestyle="--", linewidth=1, label=f"--min-per-class {min_per_class}"
        )
    ax.set_yscale("log")
    ax.set_xlabel(f"class rank ({label_set_name}, {len(before)} classes, sorted by count)")
    ax.set_ylabel("samples per class (log scale)")
    ax.set_title("Per-class sample counts before and after balancing")
    ax.grid(True, which="both", axis="y", alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # class ranks are whole numbers
    ax.legend(loc="best")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)


def _cell(value: Any) -> str:
    return str(value if value is not None else "").replace("|", "\\|").replace("\n", " ").strip()


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines


def write_card(
    out: Path,
    config: BalanceConfig,
    stats: dict[str, Any],
    label_set: LabelSet,
    attribution: list[dict[str, str]],
    plot_name: str,
) -> None:
    """Write ``README.md`` (the dataset card) into ``out``; ``attribution`` holds the first
    :data:`MAX_ATTRIBUTION_IN_CARD` CC BY entries (``ATTRIBUTION.tsv`` has them all)."""
    budget = stats["budget"]
    samples = stats["samples"]
    source_names = list(stats["sources"])
    lines = [
        f"# Dataset card: {out.name}",
        "",
        "Built by `janus balance` (janus-build) from labelled sources, in the manner of JANuS "
        "(Feuer et al., *Distributionally Robust Classification on a Data Budget*, TMLR 2023).",
        "",
        "## Summary",
        "",
        f"- Label set: `{label_set.name}` ({len(label_set)} classes; labels are its class ids)",
        f"- Samples: {samples['train']:,} train + {samples['val']:,} val = {samples['train'] + samples['val']:,}",
        f"- Budget: {budget['requested'] or 'none (all eligible samples)'}"
        + (f" = {budget['samples']:,} samples (1x = {budget['unit']:,})" if budget["samples"] is not None else ""),
        f"- Policy: `--balance {config.balance}`"
        + (f", `--min-per-class {config.min_per_class}`" if config.min_per_class else "")
        + (f", `--max-per-class {config.max_per_class}`" if config.max_per_class else "")
        + (f"; per-class target {stats['per_class_target']:,}" if stats.get("per_class_target") else ""),
        f"- Seed: {config.seed}; validation: {config.val_fraction:g} of the selected samples by a stable hash of the key",
        f"- De-duplication ({', '.join(config.dedup) or 'none'}): "
        + (", ".join(f"{v:,} by {k}" for k, v in stats["dedup"]["removed"].items()) or "nothing removed")
        + f"; {stats['dedup']['label_conflicts']:,} removed duplicate(s) had another label",
        f"- Classes short of their minimum: {len(stats['short_classes'])}",
        f"- Samples without any caption (empty `txt`): {stats['captions_missing']:,}",
        "",
        "Each webdataset sample in `train/*.tar` and `val/*.tar` has `jpg`, `cls` (the label as an ASCII "
        "integer), `txt` (the caption) and `json` (provenance plus the source's full metadata under "
        "`source_metadata`); `NNNNN.parquet` beside each tar indexes it (key, label, caption, source, "
        "source_id, url, license, owner, title, label_source, split, ...).",
        "",
        "## Sources",
        "",
    ]
    rows = []
    for name, s in stats["sources"].items():
        rows.append(
            [
                name,
                s["kind"],
                s["label_source"],
                s["priority"],
                f"{s['weight']:g}",
                s["role"],
                f"{s.get('rows', 0):,}",
                f"{s.get('unlabelled', 0):,}",
                f"{s.get('missing_image', 0):,}",
                f"{s.get('label_not_in_label_set', 0):,}",
                f"{s.get('candidates', 0):,}",
                f"{s['after_dedup']:,}",
                f"{s['selected']:,}",
            ]
        )
    lines += _table(
        [
            "source",
            "kind",
            "label source",
            "priority",
            "weight",
            "role",
            "rows",
            "unlabelled",
            "missing image bytes",
            "label not in set",
            "eligible",
            "after de-dup",
            "selected",
        ],
        rows,
    )
    problems = [
        (name, problem, keys) for name, s in stats["sources"].items() for problem, keys in s["examples"].items() if keys
    ]
    if problems:
        lines += ["", "Reported problems (example keys):", ""]
        lines += [f"- `{name}` {problem}: {', '.join(f'`{k}`' for k in keys)}" for name, problem, keys in problems]
    lines += ["", "## Label sources", ""]
    lines += _table(["label source", "samples"], [[k, f"{v:,}"] for k, v in stats["label_sources"].items()])
    lines += ["", "## Licences", ""]
    lines += _table(
        ["licence", "samples"],
        [[k, f"{v:,}"] for k, v in sorted(stats["licenses"].items(), key=lambda kv: (-kv[1], kv[0]))],
    )
    lines += ["", "## Classes short of their minimum", ""]
    if stats["short_classes"]:
        lines += _table(
            ["class id", "name", "samples", "minimum", "deficit"],
            [[s["class_id"], s["name"], s["count"], s["minimum"], s["deficit"]] for s in stats["short_classes"]],
        )
    else:
        lines.append("None." if (config.min_per_class or config.balance == "equal") else "No minimum was set.")
    lines += [
        "",
        "## Per-class counts",
        "",
        f"![per-class counts before and after]({plot_name})",
        "",
        "`available`: eligible samples after de-duplication; then the selected samples by source.",
        "",
    ]
    rows = []
    for cid in label_set.ids:
        c = stats["per_class"][str(cid)]
        rows.append(
            [
                cid,
                label_set.names.get(cid, ""),
                f"{c['available']:,}",
                f"{c['selected']:,}",
                *(f"{c['by_source'].get(n, 0):,}" for n in source_names),
            ]
        )
    lines += _table(["class id", "name", "available", "selected", *source_names], rows)
    lines += ["", "## Attribution (CC BY licences)", ""]
    if attribution:
        shown, total = attribution[:MAX_ATTRIBUTION_IN_CARD], stats["cc_by_samples"]
        lines.append(
            f"{total:,} sample(s) carry a licence that requires attribution; all are listed in "
            f"`{ATTRIBUTION_TSV}`" + (f", the first {len(shown):,} here." if len(shown) < total else ".")
        )
        lines.append("")
        lines += [
            f'- "{_cell(a["title"]) or "untitled"}" by {_cell(a["owner"]) or "unknown"}, {_cell(a["url"])}, '
            f"{_cell(a['license'])} (`{a['key']}`)"
            for a in shown
        ]
    else:
        lines.append("No selected sample carries a CC BY licence.")
    lines += [
        "",
        "## Loading",
        "",
        "```python",
        "import webdataset as wds",
        f'ds = wds.WebDataset("{out.name}/train/{{00000..{max(0, len(stats["shards"]["train"]) - 1):05d}}}.tar")'
        '.decode("pil").to_tuple("jpg", "cls", "txt")',
        "```",
        "",
    ]
    atomic_write_bytes(out / "README.md", "\n".join(lines).encode("utf-8"))
