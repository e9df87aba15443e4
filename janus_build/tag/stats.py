"""Figures from a tagging queue: the paper's Table 8 per class, Cohen's kappa, audit precision.

* Table 8 (Feuer et al., 2023): per class, ``good`` (items judged in-class), ``total`` (items
  judged), ``available`` (what the Flickr API reported, from ``janus fetch``'s ``report.json``)
  and ``pct_good``. An item judged by several annotators (the overlap sample) counts once, by the
  rule ``janus balance`` applies to the export: in-class when someone said ``in`` and nobody
  said ``out``; out when anyone said ``out``; otherwise unsure.
* Agreement: Cohen's kappa between the first two annotators of every overlap item.
* Audit mode: label precision of subset matching, ``in / (in + out)``, with a Wilson interval
  per class and pooled, plus a stratified estimate weighted by each class's labelled count.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from janus_build.tag.db import DECISIONS, TagQueue

log = logging.getLogger(__name__)

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion (``(nan, nan)`` when ``n == 0``)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def cohen_kappa(pairs: list[tuple[str, str]], categories: tuple[str, ...] = DECISIONS) -> float | None:
    """Cohen's kappa of paired judgements; ``None`` with no pairs, 1.0 when both raters agree on a single category."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    first = Counter(a for a, _ in pairs)
    second = Counter(b for _, b in pairs)
    expected = sum(first[c] * second[c] for c in categories) / (n * n)
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1 - expected)


def _report_classes(stage_dir: str | os.PathLike[str] | None) -> dict[int, dict[str, Any]]:
    """Per-class entries of ``STAGE_DIR/report.json`` (``janus fetch``), if present.

    Accepts ``{"per_class": {"291": {...}}}`` (also under ``classes``, or a list of objects with
    ``class_id``); anything else yields an empty mapping.
    """
    if stage_dir is None:
        return {}
    path = Path(stage_dir) / "report.json"
    if not path.is_file():
        return {}
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        log.warning("%s: unreadable (%s); 'available' left empty", path, exc)
        return {}
    per_class = report.get("per_class", report.get("classes")) if isinstance(report, dict) else None
    entries = (
        per_class.items()
        if isinstance(per_class, dict)
        else (((e.get("class_id"), e) for e in per_class if isinstance(e, dict)) if isinstance(per_class, list) else ())
    )
    out: dict[int, dict[str, Any]] = {}
    for class_id, entry in entries:
        try:
            if isinstance(entry, dict):
                out[int(class_id)] = entry
        except (TypeError, ValueError):
            continue
    return out


def read_available(stage_dir: str | os.PathLike[str] | None) -> dict[int, int]:
    """Per-class ``available`` counts (the API's totals) from a ``janus fetch`` report, if present."""
    out: dict[int, int] = {}
    for class_id, entry in _report_classes(stage_dir).items():
        try:
            if entry.get("available") is not None:
                out[class_id] = int(entry["available"])
        except (TypeError, ValueError):
            continue
    return out


def class_names(ids: list[int], stage_dir: str | os.PathLike[str] | None = None) -> dict[int, str]:
    """Class names: the fetch report's (a custom queries file names its classes), else ImageNet-1k's."""
    reported = {c: str(e["name"]) for c, e in _report_classes(stage_dir).items() if e.get("name")}
    try:
        from janus_build.labels import load_label_set

        names = load_label_set("in1k").names
    except Exception:  # the label files are optional for tagging
        names = {}
    return {i: reported.get(i) or names.get(i, "") for i in ids}


def compute_stats(queue: TagQueue, stage_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """All figures of a queue: per-class Table 8 rows, agreement, and (audit mode) precision.

    Returns:
        ``{"mode", "classes": [{class_id, name, good, total, available, pct_good, unsure, queued,
        remaining, awaiting_second, ...}], "totals": {...}, "agreement": {...}, "annotators": {...}, "audit": {...}}``.
    """
    meta = queue.meta()
    mode = meta.get("mode", "tag")
    available = read_available(stage_dir)
    rows = queue.decisions()  # sorted by first_time_ms
    votes: dict[str, tuple[int, set[str]]] = {}
    by_key: dict[str, list[tuple[str, str]]] = defaultdict(list)
    per_annotator: Counter[str] = Counter()
    for key, class_id, decision, annotator, _t, _first in rows:
        votes.setdefault(key, (class_id, set()))[1].add(decision)
        by_key[key].append((annotator, decision))
        per_annotator[annotator] += 1
    queued = dict(queue._read("SELECT class_id, COUNT(*) FROM items GROUP BY class_id"))
    # remaining: nobody has judged them yet; awaiting_second: overlap items judged once so far
    remaining = dict(queue._read("SELECT class_id, COUNT(*) FROM items WHERE open=1 AND ndecided=0 GROUP BY class_id"))
    awaiting = dict(queue._read("SELECT class_id, COUNT(*) FROM items WHERE open=1 AND ndecided>=1 GROUP BY class_id"))
    counts: dict[int, Counter[str]] = defaultdict(Counter)
    for class_id, decided in votes.values():
        counts[class_id]["out" if "out" in decided else ("in" if "in" in decided else "unsure")] += 1
    ids = sorted(set(queued) | set(counts))
    names = class_names(ids, stage_dir)
    classes = []
    for class_id in ids:
        c = counts[class_id]
        total = sum(c.values())
        row: dict[str, Any] = {
            "class_id": class_id,
            "name": names.get(class_id, ""),
            "good": c["in"],
            "total": total,
            "available": available.get(class_id),
            "pct_good": round(100.0 * c["in"] / total, 2) if total else None,
            "out": c["out"],
            "unsure": c["unsure"],
            "queued": queued.get(class_id, 0),
            "remaining": remaining.get(class_id, 0),
            "awaiting_second": awaiting.get(class_id, 0),
        }
        if mode == "audit":
            judged = c["in"] + c["out"]
            low, high = wilson_interval(c["in"], judged)
            row["precision"] = round(c["in"] / judged, 4) if judged else None
            row["precision_ci95"] = [round(low, 4), round(high, 4)] if judged else None
        classes.append(row)
    good = sum(r["good"] for r in classes)
    total = sum(r["total"] for r in classes)
    totals = {
        "good": good,
        "total": total,
        "available": sum(available.values()) if available else None,
        "pct_good": round(100.0 * good / total, 2) if total else None,
        "queued": sum(queued.values()),
        "remaining": sum(remaining.values()),
        "awaiting_second": sum(awaiting.values()),
    }
    # Agreement on the overlap sample: first two annotators of each item, in decision order.
    pairs = [(v[0][1], v[1][1]) for v in by_key.values() if len(v) >= 2]
    pair_counts: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for v in by_key.values():
        if len(v) >= 2:
            (a1, d1), (a2, d2) = sorted(v[:2])
            pair_counts[f"{a1} / {a2}"].append((d1, d2))
    kappa = cohen_kappa(pairs)
    agreement = {
        "overlap_fraction": queue.overlap,
        "items": len(pairs),
        "percent_agreement": round(100.0 * sum(a == b for a, b in pairs) / len(pairs), 2) if pairs else None,
        "cohen_kappa": round(kappa, 4) if kappa is not None else None,
        "pairs": {k: {"items": len(v), "cohen_kappa": _round(cohen_kappa(v))} for k, v in sorted(pair_counts.items())},
    }
    result: dict[str, Any] = {
        "mode": mode,
        "classes": classes,
        "totals": totals,
        "agreement": agreement,
        "annotators": dict(sorted(per_annotator.items())),
    }
    if mode == "audit":
        result["audit"] = _audit_summary(classes, meta)
    return result


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _audit_summary(classes: list[dict[str, Any]], meta: dict[str, str]) -> dict[str, Any]:
    """Pooled (Wilson) and stratified (weighted by each class's labelled count) label precision."""
    good = sum(r["good"] for r in classes)
    judged = sum(r["good"] + r["out"] for r in classes)
    low, high = wilson_interval(good, judged)
    labelled = {int(k): int(v) for k, v in json.loads(meta.get("label_counts", "{}")).items()}
    strata = [
        (labelled.get(r["class_id"], 0), r["good"], r["good"] + r["out"]) for r in classes if r["good"] + r["out"] > 0
    ]
    weight_total = sum(w for w, _, _ in strata)
    stratified = None
    if weight_total > 0:
        estimate = sum(w * g / n for w, g, n in strata) / weight_total
        # Variance of a stratified proportion (finite-population correction omitted: conservative).
        variance = sum((w / weight_total) ** 2 * (g / n) * (1 - g / n) / max(n - 1, 1) for w, g, n in strata)
        half = Z95 * math.sqrt(variance)
        stratified = {
            "precision": round(estimate, 4),
            "ci95": [round(max(0.0, estimate - half), 4), round(min(1.0, estimate + half), 4)],
            "labelled_rows": weight_total,
        }
    return {
        "strategy": meta.get("strategy"),
        "per_class": int(meta["per_class"]) if "per_class" in meta else None,
        "judged": judged,
        "correct": good,
        "unsure": sum(r["unsure"] for r in classes),
        "precision": round(good / judged, 4) if judged else None,
        "precision_ci95": [round(low, 4), round(high, 4)] if judged else None,
        "stratified": stratified,
    }


def export_tags(queue: TagQueue, out: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the tags table (``schemas.TAGS``: key, class_id, decision, annotator, time) as parquet.

    One row per (key, annotator): the overlap sample has two rows per key, and ``janus balance``
    takes a key as in-class when at least one annotator said ``in`` and none said ``out``.
    ``time`` is when the decision was last made or changed (UTC, milliseconds).

    Args:
        queue: the queue to export.
        out: the parquet file to write (atomically).

    Returns:
        ``{"path", "rows", "keys", "in", "out", "unsure"}``.
    """
    import pyarrow as pa

    from janus_build import schemas
    from janus_build.core.fsio import write_parquet_atomic
    from janus_build.errors import OutputError

    if Path(out).is_dir():
        raise OutputError(
            f"--out {out}: is a directory; name the parquet file to write (e.g. {Path(out) / 'tags.parquet'})"
        )
    rows = queue.decisions()
    table = pa.table(
        {
            "key": pa.array([r[0] for r in rows], pa.string()),
            "class_id": pa.array([r[1] for r in rows], pa.int32()),
            "decision": pa.array([r[2] for r in rows], pa.string()),
            "annotator": pa.array([r[3] for r in rows], pa.string()),
            "time": pa.array([r[4] for r in rows], pa.timestamp("ms", tz="UTC")),
        }
    )
    table = schemas.validate(table, schemas.TAGS, f"tags export {out}")
    write_parquet_atomic(out, table)
    counts = Counter(r[2] for r in rows)
    return {
        "path": os.fspath(out),
        "rows": len(rows),
        "keys": len({r[0] for r in rows}),
        **{d: counts.get(d, 0) for d in DECISIONS},
    }
