"""The outputs read by people and by ``janus balance``: pairs, keys to exclude, and the summary."""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from typing import Any

import pyarrow as pa

from janus_build import __version__, schemas
from janus_build.core.fsio import atomic_write_json, write_parquet_atomic
from janus_build.core.stage import ShardDir
from janus_build.dedup.config import DedupConfig
from janus_build.dedup.evalsets import EvalListing, eval_stats

MATCHES_FILE = "contaminated.parquet"
EXCLUDE_FILE = "exclude_keys.parquet"


def _method(config: DedupConfig) -> dict[str, Any]:
    from importlib.metadata import version

    from janus_build.dedup.hashing import view_names

    return {
        "hashes": ["phash", "dhash"],
        "hash_bits": 64,
        "max_phash": config.max_phash,
        "max_dhash": config.max_dhash,
        "crops": config.crops,
        "flips": config.flips,
        "views_per_eval_image": len(view_names(config.crops, config.flips)),
        "min_detail": config.min_detail,
        "clip_model": config.clip_model,
        "clip_pretrained": config.clip_pretrained if config.clip_model else None,
        "min_clip_similarity": config.min_clip_similarity if config.clip_model else None,
        "imagehash_version": version("imagehash"),
        "janus_build_version": __version__,
    }


def _read_samples(out: Any, inputs: list[Any]) -> pa.Table:
    import pyarrow.parquet as pq

    samples = ShardDir(out.path / "samples")
    columns = ["key", "stage", "shard", "status", "contaminated", "matches"]
    tables = [pq.read_table(samples.shard_path(s.name), columns=columns) for s in inputs]
    return pa.concat_tables(tables) if tables else schemas.DEDUP_SAMPLES.empty_table().select(columns)


def _pairs(table: pa.Table, clip: pa.Table | None) -> list[dict[str, Any]]:
    """Hash pairs, with the embedding pass's similarity where it paired them too, then its own pairs."""
    rows: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for row in table.filter(table["contaminated"]).to_pylist():
        for match in row["matches"]:
            pair = {"key": row["key"], "stage": row["stage"], "shard": row["shard"], **match, "clip_similarity": None}
            rows[(pair["stage"], pair["key"], pair["eval_set"], pair["eval_file"])] = pair
    for pair in clip.to_pylist() if clip is not None else ():
        known = rows.get((pair["stage"], pair["key"], pair["eval_set"], pair["eval_file"]))
        if known is not None:
            known["clip_similarity"] = pair["clip_similarity"]
        else:
            rows[(pair["stage"], pair["key"], pair["eval_set"], pair["eval_file"])] = {
                **pair,
                "eval_variant": "clip",
                "phash_distance": None,
                "dhash_distance": None,
            }
    return sorted(rows.values(), key=lambda r: (r["eval_set"], r["stage"], r["key"], r["eval_file"]))


def _read_clip(out: Any, inputs: list[Any], config: DedupConfig) -> pa.Table | None:
    if not config.clip_model:
        return None
    import pyarrow.parquet as pq

    from janus_build.dedup.clip_pass import clip_dir

    shards = clip_dir(out.path)
    return pa.concat_tables([pq.read_table(shards.shard_path(s.name)) for s in inputs]) if inputs else None


def _stage_counts(table: pa.Table) -> dict[str, dict[str, int]]:
    """Per stage: samples, checked, failed, too_plain, contaminated (Arrow group-by: millions of rows)."""
    grouped = table.group_by(["stage", "status"]).aggregate([("key", "count"), ("contaminated", "sum")])
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for row in grouped.to_pylist():
        bucket = counts[row["stage"]]
        status = row["status"]
        bucket["samples"] += row["key_count"]
        bucket["checked" if status == "success" else "too_plain" if status == "too_plain" else "failed"] += row[
            "key_count"
        ]
        bucket["contaminated"] += row["contaminated_sum"] or 0
    keys = ("samples", "checked", "failed", "too_plain", "contaminated")
    return {stage: {k: c[k] for k in keys} for stage, c in sorted(counts.items())}


def write_reports(
    out: Any, inputs: list[Any], listings: list[EvalListing], tables: list[pa.Table], config: DedupConfig
) -> dict[str, Any]:
    """Write ``contaminated.parquet``, ``exclude_keys.parquet`` and ``_contamination.json``; return the summary."""
    table = _read_samples(out, inputs)
    pairs = _pairs(table, _read_clip(out, inputs, config))
    columns = {name: [r[name] for r in pairs] for name in schemas.DEDUP_MATCHES.names}
    write_parquet_atomic(out.path / MATCHES_FILE, pa.table(columns, schema=schemas.DEDUP_MATCHES))
    leaks: dict[str, set[str]] = defaultdict(set)
    for row in pairs:
        leaks[row["key"]].add(row["eval_set"])
    exclude = pa.table(
        {"key": sorted(leaks), "eval_sets": [sorted(leaks[k]) for k in sorted(leaks)]}, schema=schemas.DEDUP_EXCLUDE
    )
    write_parquet_atomic(out.path / EXCLUDE_FILE, exclude)

    stages = _stage_counts(table)
    for stage, counts in stages.items():  # flagged by either pass
        counts["contaminated"] = len({r["key"] for r in pairs if r["stage"] == stage})
    eval_sets = {}
    for listing, hashes in zip(listings, tables):
        name = listing.eval_set.name
        mine = [r for r in pairs if r["eval_set"] == name]
        eval_sets[name] = {
            "path": os.fspath(listing.eval_set.path),
            **eval_stats(hashes),
            "contaminated_samples": len({(r["stage"], r["key"]) for r in mine}),
            "clip_only_samples": len({(r["stage"], r["key"]) for r in mine if r["eval_variant"] == "clip"}),
            "matched_eval_images": len({r["eval_file"] for r in mine}),
        }
    totals = Counter()
    for counts in stages.values():
        totals.update(counts)
    totals["contaminated"] = len({(r["stage"], r["key"]) for r in pairs})  # hash or embedding pass
    summary = {
        "format": schemas.CONTAMINATION_FORMAT,
        "method": _method(config),
        **{k: totals[k] for k in ("samples", "checked", "failed", "too_plain", "contaminated")},
        "eval_sets": eval_sets,
        "stages": stages,
        "files": {"pairs": MATCHES_FILE, "exclude_keys": EXCLUDE_FILE},
    }
    atomic_write_json(out.path / schemas.CONTAMINATION_SUMMARY, summary)
    return summary
