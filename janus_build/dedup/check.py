"""Checking one input image shard against the evaluation index (runs in a worker process).

The worker reads each image by the offset its shard index recorded (or, for a plain
webdataset tar, by a header scan), hashes it, searches the index in batches, and writes one
row per sample to ``samples/NNNNN.parquet``; the done-marker comes last.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from janus_build import schemas
from janus_build.core.imaging import describe_error
from janus_build.core.shards import ImageReader, image_members
from janus_build.core.stage import ShardDir
from janus_build.dedup.hashing import TRAIN_DECODE_SIDE, decode, detail, image_hashes, signed64

_STATE: dict[str, Any] = {}
BATCH = 1024  # images per index search
MAX_MATCHES = 100  # evaluation images kept per training sample (the closest)
_INDEX_COLUMNS = ("key", "image_ext", "image_offset", "image_size", "status", "error_message")


def set_state(state: dict[str, Any]) -> None:
    """Install the index and lookup tables (in the parent, and as the pool's initializer)."""
    _STATE.clear()
    _STATE.update(state)


def locations(shard: Any) -> list[dict[str, Any]]:
    """``key``, ``image_ext``, ``image_offset``, ``image_size``, ``status``, ``error_message`` per sample."""
    if shard.tar.index is not None:
        import pyarrow.parquet as pq

        present = pq.read_schema(shard.tar.index).names
        columns = [c for c in _INDEX_COLUMNS if c in present]
        schemas.require_columns(present, ("key", "image_offset", "image_size"), f"index {shard.tar.index}")
        rows = pq.read_table(shard.tar.index, columns=columns).to_pylist()
        for row in rows:
            row.setdefault("status", "success")
            row.setdefault("error_message", None)
        return rows
    return [
        {"key": key, "image_ext": ext, "image_offset": offset, "image_size": size, "status": "success"}
        for key, (ext, offset, size) in image_members(shard.tar.tar).items()
    ]


def _hash_sample(reader: ImageReader, path: Any, row: dict[str, Any], min_detail: float) -> tuple:
    """``(status, error_message, phash, dhash)`` of one sample; failures are statuses, never raised."""
    if row.get("status") not in (None, "success"):
        return row["status"], row.get("error_message"), None, None
    if row.get("image_offset") is None or row.get("image_size") is None:
        return "missing_image", "the input index records no image for this key", None, None
    try:
        image = decode(reader.read(path, row["image_offset"], row["image_size"]), TRAIN_DECODE_SIDE)
    except Exception as exc:  # PIL raises many kinds on bad bytes; the sample is reported, not fatal
        return "decode_error", describe_error(exc), None, None
    grey = image.convert("L")  # both hashes and the detail measure look at grey levels only
    if detail(grey) < min_detail:
        return "too_plain", f"near-uniform image (detail {detail(grey):.2f}); not compared", None, None
    phash, dhash = image_hashes(grey)
    return "success", None, phash, dhash


def _matches(hashed: list[tuple[int, int, int]]) -> dict[int, list[dict[str, Any]]]:
    """``{row: [match, ...]}`` for the hashed rows (``(row, phash, dhash)``), closest first."""
    index, views = _STATE["index"], _STATE["views"]
    found: dict[int, list[dict[str, Any]]] = {}
    for start in range(0, len(hashed), BATCH):
        batch = hashed[start : start + BATCH]
        phash = np.asarray([h[1] for h in batch], dtype=np.uint64)
        dhash = np.asarray([h[2] for h in batch], dtype=np.uint64)
        result = index.search(phash, dhash)
        for q, image, view, p_dist, d_dist in zip(
            result.query, result.image, result.view, result.phash_distance, result.dhash_distance
        ):
            found.setdefault(batch[q][0], []).append(
                {
                    "eval_set": _STATE["set_of_image"][image],
                    "eval_file": _STATE["file_of_image"][image],
                    "eval_variant": views[view],
                    "phash_distance": int(p_dist),
                    "dhash_distance": int(d_dist),
                }
            )
    for row, matches in found.items():
        matches.sort(key=lambda m: (m["phash_distance"] + m["dhash_distance"], m["eval_set"], m["eval_file"]))
        del found[row][MAX_MATCHES:]  # a flat graphic can match thousands: the closest are evidence enough
    return found


def check_shard(task: tuple[ShardDir, Any, dict[str, Any]]) -> dict[str, Any]:
    """Check one input shard; write its samples shard and marker. Returns the shard's stats."""
    samples, shard, fingerprint = task
    rows = locations(shard)
    results, hashed = [], []
    with ImageReader() as reader:
        for number, row in enumerate(rows):
            status, error, phash, dhash = _hash_sample(reader, shard.tar.tar, row, _STATE["min_detail"])
            results.append((status, error, phash, dhash))
            if phash is not None:
                hashed.append((number, phash, dhash))
    found = _matches(hashed)
    table = pa.table(
        {
            "key": [r["key"] for r in rows],
            "stage": [str(shard.stage)] * len(rows),
            "shard": [shard.tar.tar.name] * len(rows),
            "status": [r[0] for r in results],
            "error_message": [r[1] for r in results],
            "phash": [None if r[2] is None else signed64(r[2]) for r in results],
            "dhash": [None if r[3] is None else signed64(r[3]) for r in results],
            "contaminated": [i in found for i in range(len(rows))],
            "matches": [found.get(i, []) for i in range(len(rows))],
        },
        schema=schemas.DEDUP_SAMPLES,
    )
    samples.write_table(shard.name, table, schemas.DEDUP_SAMPLES, f"dedup shard {samples.path / shard.name}")
    statuses = [r[0] for r in results]
    stats = {
        "count": len(rows),
        "checked": statuses.count("success"),
        "too_plain": statuses.count("too_plain"),
        "failed": len(rows) - statuses.count("success") - statuses.count("too_plain"),
        "contaminated": len(found),
        "stage": str(shard.stage),
        "input_shard": shard.tar.tar.name,
    }
    samples.mark_done(shard.name, stats, fingerprint)
    return stats
