"""Audit mode: a queue of N randomly chosen rows per class of a ``janus match`` output.

A judge answers "is this row's ``label`` right?" (in = correct, out = wrong); the stats give
the label precision of subset matching with a Wilson interval, where no ground truth exists.
The sample is a bottom-k sample on a keyed hash of ``key`` (uniform without replacement, the
same for the same seed, independent of shard order), read one shard at a time.
"""

from __future__ import annotations

import glob
import hashlib
import heapq
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from janus_build import schemas
from janus_build.errors import ConfigError, InputError, JanusError
from janus_build.tag.db import TagQueue, default_db_path

log = logging.getLogger(__name__)

TEXT_COLUMNS = ("TEXT", "caption", "title")
URL_COLUMNS = ("URL", "url")


@dataclass(frozen=True)
class AuditConfig:
    """Options of ``janus tag audit`` (one to one with the CLI)."""

    match_dir: Path
    per_class: int = 50
    images: Path | None = None  # an image stage directory with the same keys
    text_col: str | None = None  # default TEXT, else caption, else title
    url_col: str | None = None  # default URL, else url
    seed: int = 0
    db: Path | None = None  # default MATCH_DIR/tag/tags.sqlite
    overlap: float | None = None  # fraction judged twice (agreement); None keeps 0.05


def _rank(key: str, seed: int) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=8, key=str(seed).encode()).digest()


def build_audit_queue(config: AuditConfig, *, lease_seconds: float = 120.0) -> TagQueue:
    """Create (or reopen) the audit queue of a match output.

    Raises:
        InputError: no parquet files, or a needed column is missing.
        ConfigError: an existing audit queue was sampled with other options.
    """
    import pyarrow.parquet as pq

    if config.per_class < 1:
        raise ConfigError(f"--per-class {config.per_class}: expected a positive number")
    match_dir = Path(config.match_dir)
    files = sorted(glob.glob(os.fspath(match_dir / "*.parquet"))) if match_dir.is_dir() else []
    if not files:
        raise InputError(f"MATCH_DIR {match_dir}: no *.parquet files (expected a janus match output)")
    db_path = config.db or default_db_path(match_dir)
    sample_options = {
        "per_class": str(config.per_class),
        "seed": str(config.seed),
        "match_dir": str(match_dir.resolve()),
    }
    if Path(db_path).is_file():
        return _reopen(db_path, config, sample_options, lease_seconds)

    first_cols = pq.read_schema(files[0]).names
    text_col = config.text_col or next((c for c in TEXT_COLUMNS if c in first_cols), None)
    if text_col is None:
        raise InputError(f"{files[0]}: no caption column ({', '.join(TEXT_COLUMNS)}); pass --text-col")
    url_col = config.url_col or next((c for c in URL_COLUMNS if c in first_cols), None)
    heaps, label_counts = _sample(files, text_col, url_col, config)

    locations: dict[str, dict] = {}
    if config.images is not None:
        from janus_build.core.shards import read_index

        index = read_index(config.images, columns=["key", "shard", "image_ext", "image_offset", "image_size", "status"])
        wanted = {e[1] for heap in heaps.values() for e in heap}
        for r in index.to_pylist():
            if r["key"] in wanted and r["status"] == "success" and r["image_offset"] is not None:
                locations[r["key"]] = r

    queue = TagQueue(db_path, overlap=config.overlap, lease_seconds=lease_seconds)
    items = []
    for label in sorted(heaps):
        for _inv, key, row in sorted(heaps[label], reverse=True):
            loc = locations.get(key, {})
            terms = row.get("matched_terms") or []
            items.append(
                {
                    "key": key,
                    "class_id": label,
                    "shard": loc.get("shard"),
                    "image_ext": loc.get("image_ext"),
                    "image_offset": loc.get("image_offset"),
                    "image_size": loc.get("image_size"),
                    "url": row.get(url_col) if url_col else None,
                    "title": row.get(text_col),
                    "tags": ", ".join(str(t) for t in terms),
                    "info": {"matched_terms": ", ".join(str(t) for t in terms)},
                }
            )
    queue.set_meta(
        mode="audit",
        text_col=text_col,
        images_dir=str(Path(config.images).resolve()) if config.images else "",
        label_counts=json.dumps({str(k): v for k, v in sorted(label_counts.items())}),
        strategy=_strategy(match_dir),
        **sample_options,
    )
    queue.add_items(items)
    log.info("audit sample: %d row(s) over %d class(es) from %s", len(items), len(heaps), match_dir)
    return queue


def _reopen(
    db_path: os.PathLike[str] | str, config: AuditConfig, sample_options: dict[str, str], lease_seconds: float
) -> TagQueue:
    """The existing audit queue at ``db_path``, when it was drawn with the same options."""
    queue = TagQueue(db_path, overlap=config.overlap, lease_seconds=lease_seconds)
    meta = queue.meta()
    if meta.get("mode") != "audit":
        queue.close()
        raise ConfigError(f"--db {db_path}: holds a tagging queue, not an audit sample; pass another --db")
    differing = [k for k, v in sample_options.items() if meta.get(k) != v]
    if differing:
        queue.close()
        raise ConfigError(
            f"--db {db_path}: holds an audit sample drawn with other options "
            f"({', '.join(f'{k} was {meta.get(k)}' for k in differing)}); pass another --db"
        )
    return queue


def _sample(
    files: list[str], text_col: str, url_col: str | None, config: AuditConfig
) -> tuple[dict[int, list[tuple[bytes, str, dict]]], dict[int, int]]:
    """Bottom-k rows per label over all shards (one shard in memory at a time), and each label's row count."""
    import pyarrow.parquet as pq

    # heap of (inverted rank, key, row) keeps the k smallest ranks
    heaps: dict[int, list[tuple[bytes, str, dict]]] = {}
    label_counts: dict[int, int] = {}
    for file in files:
        names = pq.read_schema(file).names
        schemas.require_columns(names, ["key", "label", text_col], file)
        cols = ["key", "label", text_col] + [c for c in ("matched_terms", url_col, "strategy") if c and c in names]
        for row in pq.read_table(file, columns=cols).to_pylist():
            label = row["label"]
            if label is None or label == schemas.NO_LABEL:
                continue
            label_counts[label] = label_counts.get(label, 0) + 1
            inv = bytes(255 - b for b in _rank(row["key"], config.seed))  # max-heap via inverted bytes
            heap = heaps.setdefault(label, [])
            entry = (inv, row["key"], row)
            if len(heap) < config.per_class:
                heapq.heappush(heap, entry)
            elif inv > heap[0][0]:
                heapq.heapreplace(heap, entry)
    return heaps, label_counts


def _strategy(match_dir: Path) -> str:
    """The matching strategy recorded in the match output's manifest, when there is one."""
    from janus_build.core.stage import read_manifest

    try:
        return str(((read_manifest(match_dir) or {}).get("config") or {}).get("strategy", ""))
    except JanusError:
        return ""
