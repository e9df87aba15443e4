"""``report.json``: per class what the API offered, what was kept, downloaded, dropped and skipped.

``available`` is the largest total the API reported for any one of the class's queries: queries
of a class overlap (``spindle wool``, ``spindle -wool thread``), so adding their totals would
count shared photos twice, and their union is unknown without fetching everything. The largest
total is a lower bound of the union; ``available_per_query`` lists every query's total and
``seen`` counts the distinct photos the searches actually returned.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from janus_build.fetch.config import FetchConfig
from janus_build.fetch.queries import ClassQueries
from janus_build.fetch.search import class_target
from janus_build.fetch.state import FetchState

log = logging.getLogger(__name__)

OPTOUT_MARK = "X-Robots-Tag"  # img2dataset's error message for an image whose server opted out
# report "totals" field -> the per-class field it sums
TOTALS = {
    "available": "available",
    "seen": "seen",
    "returned": "returned",
    "fetched": "fetched",
    "downloaded": "downloaded",
    "optout_skipped": "optout_skipped",
    "api_pages": "api_pages",
    "shared_photos": "shared_with_other_classes",
}


def is_optout(error_message: str | None) -> bool:
    """True for a download img2dataset skipped because of an ``X-Robots-Tag`` opt-out."""
    return bool(error_message) and OPTOUT_MARK in str(error_message)


def _class_entry(
    cls: ClassQueries,
    config: FetchConfig,
    state: FetchState,
    rows: list[dict[str, Any]],
    downloads: Mapping[str, tuple[str, str | None]],
) -> dict[str, Any]:
    per_query = []
    for query_index in range(len(cls.queries)):
        root = state.root(cls.class_id, query_index)
        per_query.append(int(root.total or 0) if root else 0)
    pages, returned = state.page_stats(cls.class_id)
    got = [downloads.get(r["key"]) for r in rows]
    return {
        "name": cls.name,
        "queries": [q.text() for q in cls.queries],
        "target": class_target(config, cls),
        "available": max(per_query, default=0),
        "available_per_query": per_query,
        "seen": state.seen_count(cls.class_id),
        "returned": returned,
        "fetched": len(rows),
        "downloaded": None if config.metadata_only else sum(1 for d in got if d and d[0] == "success"),
        "optout_skipped": None if config.metadata_only else sum(1 for d in got if d and is_optout(d[1])),
        "dropped": state.dropped_counts(cls.class_id),
        "shared_with_other_classes": sum(1 for r in rows if r["also_in_classes"]),
        "api_pages": pages,
        "windows": state.count_windows(cls.class_id),
        "paper": dict(cls.paper),
    }


def _empty_class_warning(class_id: int, entry: Mapping[str, Any]) -> str:
    if not entry["available"]:
        why = "the API found no photo for its queries"
    elif entry["dropped"]:
        rules = ", ".join(f"{rule} {count}" for rule, count in entry["dropped"].items())
        why = f"the API reported {entry['available']} but every photo returned was dropped ({rules})"
    else:
        why = f"the API reported {entry['available']} but returned none"
    return f"class {class_id} ({entry['name']}): no photo fetched: {why}; check its queries ({' | '.join(entry['queries'])})"


def build_report(
    classes: Sequence[ClassQueries],
    config: FetchConfig,
    state: FetchState,
    metadata: Mapping[int, list[dict[str, Any]]],
    downloads: Mapping[str, tuple[str, str | None]],
) -> dict[str, Any]:
    """The report: per class figures, totals, warnings (e.g. a class that fetched nothing)."""
    per_class: dict[str, dict[str, Any]] = {}
    totals = dict.fromkeys(TOTALS, 0)
    warnings = []
    for cls in classes:
        entry = _class_entry(cls, config, state, metadata[cls.class_id], downloads)
        per_class[str(cls.class_id)] = entry
        for total, field in TOTALS.items():
            totals[total] += entry[field] or 0
        if entry["fetched"] == 0:
            warnings.append(_empty_class_warning(cls.class_id, entry))
            log.warning("%s", warnings[-1])
        if entry["optout_skipped"]:
            log.warning(
                "class %s (%s): %d image(s) skipped: their server opts out of AI use (X-Robots-Tag)",
                cls.class_id,
                cls.name,
                entry["optout_skipped"],
            )
    return {
        "classes": per_class,
        "totals": totals,
        "warnings": warnings,
        "licenses": list(config.licenses),
        "respect_optouts": config.respect_optouts,
        "metadata_only": config.metadata_only,
    }
