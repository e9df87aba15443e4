"""Evaluation sets: listing their images, hashing every view, caching the hashes in ``DIR/_eval/``."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from janus_build import schemas
from janus_build.core.imaging import IMAGE_EXTENSIONS, describe_error
from janus_build.core.stage import ShardDir, shard_name
from janus_build.dedup.config import DedupConfig, EvalSet
from janus_build.dedup.hashing import decode, detail, signed64, view_hashes
from janus_build.errors import InputError
from janus_build.progress import Progress

log = logging.getLogger(__name__)

EVAL_DIR = "_eval"
CHUNK = 256  # images per worker task
_SUFFIXES = tuple(f".{ext}" for ext in IMAGE_EXTENSIONS)


@dataclass(frozen=True)
class EvalListing:
    """The image files of one evaluation set and a fingerprint of the listing."""

    eval_set: EvalSet
    files: tuple[str, ...]  # POSIX paths relative to eval_set.path, sorted
    fingerprint: dict[str, Any]


def list_eval_set(eval_set: EvalSet) -> EvalListing:
    """Every image under the folder (recursively; hidden entries skipped), with a fingerprint.

    The fingerprint (file count and a SHA-256 over each path, size and mtime) tells a re-run
    whether the cached hashes still describe the folder.

    Raises:
        InputError: the folder is missing or holds no JPEG/PNG/WebP image.
    """
    flag = f"--eval {eval_set.name}={eval_set.path}"
    if not eval_set.path.is_dir():
        raise InputError(f"{flag}: no such directory")
    digest = hashlib.sha256()
    files = []
    for dirpath, dirnames, filenames in os.walk(eval_set.path):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            if filename.startswith(".") or not filename.lower().endswith(_SUFFIXES):
                continue
            full = os.path.join(dirpath, filename)
            files.append(Path(full).relative_to(eval_set.path).as_posix())
            stat = os.stat(full)
            digest.update(f"{files[-1]}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    if not files:
        raise InputError(f"{flag}: holds no images ({', '.join(IMAGE_EXTENSIONS)}), searched recursively")
    fingerprint = {"path": os.fspath(eval_set.path), "files": len(files), "sha256": digest.hexdigest()}
    return EvalListing(eval_set, tuple(files), fingerprint)


def hash_files(root: Path, files: list[str], crops: bool, flips: bool, min_detail: float) -> dict[str, list]:
    """Hash every view of each file (a worker task); unreadable files become status rows."""
    rows: dict[str, list] = {name: [] for name in schemas.DEDUP_EVAL_HASHES.names}

    def add(file: str, view: int | None, phash: int | None, dhash: int | None, status: str, error: str | None) -> None:
        for name, value in zip(rows, (file, view, phash, dhash, status, error)):
            rows[name].append(value)

    for file in files:
        try:
            image = decode((root / file).read_bytes())
        except Exception as exc:  # PIL raises many kinds on bad files; the file is reported, not fatal
            add(file, None, None, None, "decode_error", describe_error(exc))
            continue
        hashed = view_hashes(image, crops, flips, min_detail)
        if not hashed:
            add(file, None, None, None, "too_plain", f"near-uniform image (detail {detail(image):.2f})")
        for view, phash, dhash in hashed:
            add(file, view, signed64(phash), signed64(dhash), "success", None)
    return rows


def eval_shards(out: Path) -> ShardDir:
    """The cache of evaluation-set hashes inside a dedup output."""
    return ShardDir(out / EVAL_DIR)


def hash_eval_sets(listings: list[EvalListing], config: DedupConfig, pool: Any, progress: Progress) -> list[pa.Table]:
    """The hash table of every evaluation set, from the cache where its listing is unchanged."""
    cache = eval_shards(config.out)
    tables = []
    for number, listing in enumerate(listings):
        name = shard_name(number)
        if cache.is_done(name, listing.fingerprint) and cache.shard_path(name).is_file():
            import pyarrow.parquet as pq

            tables.append(pq.read_table(cache.shard_path(name)))
            continue
        task = f"hash {listing.eval_set.name}"
        progress.start(task, total=len(listing.files), unit="images")
        chunks = [list(listing.files[i : i + CHUNK]) for i in range(0, len(listing.files), CHUNK)]
        args = (listing.eval_set.path, config.crops, config.flips, config.min_detail)
        parts = []
        mapper = pool.map if pool is not None else map
        for chunk, rows in zip(chunks, mapper(_hash_chunk, [(args, c) for c in chunks])):
            parts.append(rows)
            progress.advance(task, len(chunk))
        progress.finish(task)
        merged = {name: [v for part in parts for v in part[name]] for name in schemas.DEDUP_EVAL_HASHES.names}
        table = pa.table(merged, schema=schemas.DEDUP_EVAL_HASHES)
        cache.write_table(name, table, schemas.DEDUP_EVAL_HASHES, f"evaluation hashes of {listing.eval_set.name}")
        stats = eval_stats(table)
        cache.mark_done(name, {**stats, "eval_set": listing.eval_set.name}, listing.fingerprint)
        _warn_failures(listing, table, stats)
        tables.append(table)
    return tables


def _hash_chunk(task: tuple[tuple[Path, bool, bool, float], list[str]]) -> dict[str, list]:
    (root, crops, flips, min_detail), files = task
    return hash_files(root, files, crops, flips, min_detail)


def eval_stats(table: pa.Table) -> dict[str, int]:
    columns = table.select(["eval_file", "status"]).to_pydict()
    by_file = dict(zip(columns["eval_file"], columns["status"]))
    statuses = list(by_file.values())
    return {
        "images": len(by_file),
        "unreadable": statuses.count("decode_error"),
        "too_plain": statuses.count("too_plain"),
        "views": int(np.sum(np.asarray(columns["status"]) == "success")),
    }


def _warn_failures(listing: EvalListing, table: pa.Table, stats: dict[str, int]) -> None:
    if stats["unreadable"]:
        import pyarrow.compute as pc

        failed = table.filter(pc.equal(table["status"], "decode_error")).slice(0, 1).to_pylist()[0]
        log.warning(
            "--eval %s: %d unreadable image(s) skipped, e.g. %s (%s)",
            listing.eval_set.name,
            stats["unreadable"],
            failed["eval_file"],
            failed["error_message"],
        )
