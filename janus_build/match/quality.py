"""Label-quality figures of a match run: ``_stats.json``, the per-class accuracy chart, the CI gates.

Definitions (the paper's, Sec. H): label accuracy = correctly labelled rows / labelled rows;
dataset utilisation = correctly labelled rows / all rows. A row is correct when its ``label``
equals the ground truth (``sc``, ``strict``) or, for ``mc``, when the truth is among its
``labels``; ``mc`` also reports label precision = correct labels / labels emitted, overall and
per class (``per_class_accuracy`` is then that per-label precision).
"""

from __future__ import annotations

import logging
from typing import Any

from janus_build.errors import GateError

log = logging.getLogger(__name__)


def summarize(total: Any, config: Any, class_names: dict[int, str], extra: dict[str, Any]) -> dict[str, Any]:
    """Build ``_stats.json`` from the summed shard counts (an ``engine.ShardStats``)."""
    rows = total.rows
    stats: dict[str, Any] = {
        "rows": rows,
        "labelled": total.labelled,
        "unlabelled": rows - total.labelled,
        "utilization": _ratio(total.labelled, rows),
        "per_class": {str(k): v for k, v in sorted(total.per_class.items())},
        "strategy": config.strategy,
        "labels": config.labels,
        "classnames": config.classnames,
        "text_cols": list(config.text_cols),
        "max_ngram": config.max_ngram,
        "classes_seen": len(total.per_class),
        "unlabelled_reasons": {"empty": total.empty, "non_text": total.non_text, "too_long": total.too_long},
    }
    if config.strategy == "mc":
        stats["per_label"] = {str(k): v for k, v in sorted(total.per_label.items())}
    if config.truth_col:
        stats["truth_col"] = config.truth_col
        stats["correct"] = total.correct
        stats["label_accuracy"] = _ratio(total.correct, total.labelled)
        stats["dataset_utilization"] = _ratio(total.correct, rows)
        stats["truth_missing"] = total.truth_missing
        predicted = total.per_label if config.strategy == "mc" else total.per_class
        stats["per_class_accuracy"] = {
            str(c): _ratio(total.correct_per_class.get(c, 0), n) for c, n in sorted(predicted.items())
        }
        if config.strategy == "mc":
            stats["label_precision"] = _ratio(total.correct, sum(total.per_label.values()))
        stats["per_class_utilization"] = {
            str(c): _ratio(total.correct_per_class.get(c, 0), n) for c, n in sorted(total.truth_per_class.items())
        }
    stats.update(extra)
    return stats


def _ratio(num: int, den: int) -> float:
    return round(num / den, 6) if den else 0.0


def check_gates(stats: dict[str, Any], min_label_accuracy: float | None, min_utilization: float | None) -> None:
    """Raise :class:`GateError` (exit code 3) naming every figure that falls short.

    ``--min-utilization`` applies to dataset utilisation when ground truth is present (the
    paper's figure), else to the share of rows labelled.
    """
    failures = []
    if min_label_accuracy is not None and stats.get("label_accuracy", 0.0) < min_label_accuracy:
        failures.append(
            f"label accuracy {stats.get('label_accuracy', 0.0):.4f} < --min-label-accuracy {min_label_accuracy}"
        )
    if min_utilization is not None:
        name = "dataset_utilization" if "dataset_utilization" in stats else "utilization"
        if stats[name] < min_utilization:
            failures.append(f"{name.replace('_', ' ')} {stats[name]:.4f} < --min-utilization {min_utilization}")
    if failures:
        raise GateError("quality gate failed: " + "; ".join(failures))


def per_class_accuracy_png(stats: dict[str, Any], class_names: dict[int, str]) -> bytes | None:
    """PNG bar chart of per-class label accuracy (like the paper's Fig. 18/19); None without truth."""
    per_class = stats.get("per_class_accuracy")
    if not per_class:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import io

    import matplotlib.pyplot as plt

    items = sorted(per_class.items(), key=lambda kv: (-kv[1], int(kv[0])))
    labels = [class_names.get(int(c), c) for c, _ in items]
    values = [v for _, v in items]
    width = max(6.0, 0.18 * len(items) + 2)
    fig, ax = plt.subplots(figsize=(width, 4.2), dpi=100)
    ax.bar(range(len(values)), values, color="#3b6ea5")
    ax.axhline(
        stats["label_accuracy"],
        color="#c0392b",
        linestyle="--",
        linewidth=1,
        label=f"overall {stats['label_accuracy']:.3f}",
    )
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("label accuracy")
    ax.set_title(f"Subset matching ({stats['strategy']}): per-class label accuracy, {len(values)} classes")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=90, fontsize=7 if len(labels) < 60 else 5)
    ax.legend(loc="lower left")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
