"""Running the embedding pass: cached evaluation embeddings, one ``clip/NNNNN.parquet`` per input shard."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from janus_build import schemas
from janus_build.core.fsio import atomic_path
from janus_build.core.shards import ImageReader
from janus_build.core.stage import ShardDir, StageDir, shard_name
from janus_build.dedup.check import locations
from janus_build.dedup.config import DedupConfig
from janus_build.dedup.embed import Embedder, similar_pairs
from janus_build.dedup.evalsets import EvalListing, eval_shards
from janus_build.dedup.hashing import decode
from janus_build.progress import Progress

log = logging.getLogger(__name__)

CLIP_DIR = "clip"
EMBED_SIDE = 224  # decode at least this large: CLIP towers look at 224 px
CHUNK = 256  # images decoded and embedded at once


def _model_fingerprint(config: DedupConfig) -> dict[str, Any]:
    return {"clip_model": config.clip_model, "clip_pretrained": config.clip_pretrained}


def _embed_files(root: Path, files: tuple[str, ...], embedder: Embedder, progress: Progress, task: str) -> np.ndarray:
    """One row per file; an unreadable file gets a zero row (similarity 0, never flagged)."""
    parts = []
    for start in range(0, len(files), CHUNK):
        images, readable = [], []
        for n, file in enumerate(files[start : start + CHUNK]):
            try:
                images.append(decode((root / file).read_bytes(), EMBED_SIDE))
                readable.append(n)
            except Exception:  # counted as unreadable by the hash pass already
                continue
        rows = embedder.embed(images) if images else None
        width = rows.shape[1] if rows is not None else (parts[0].shape[1] if parts else 1)
        block = np.zeros((len(files[start : start + CHUNK]), width), np.float32)
        if rows is not None:
            block[readable] = rows
        parts.append(block)
        progress.advance(task, len(files[start : start + CHUNK]))
    return np.concatenate(parts)


def embed_eval_sets(
    listings: list[EvalListing], config: DedupConfig, embedder: Embedder, progress: Progress
) -> tuple[np.ndarray, list[str], list[str]]:
    """``(embeddings, set of each row, file of each row)`` over every evaluation set, cached in ``_eval/``."""
    cache = eval_shards(config.out)
    blocks, sets, files = [], [], []
    for number, listing in enumerate(listings):
        name = f"clip-{shard_name(number)}"
        path = cache.path / f"{name}.npy"
        fingerprint = {**listing.fingerprint, **_model_fingerprint(config)}
        if cache.is_done(name, fingerprint) and path.is_file():
            block = np.load(path)
        else:
            task = f"embed {listing.eval_set.name}"
            progress.start(task, total=len(listing.files), unit="images")
            block = _embed_files(listing.eval_set.path, listing.files, embedder, progress, task)
            progress.finish(task)
            with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                np.save(handle, block)
            cache.mark_done(name, {"eval_set": listing.eval_set.name, "images": len(block)}, fingerprint)
        blocks.append(block)
        sets += [listing.eval_set.name] * len(block)
        files += list(listing.files)
    return np.concatenate(blocks), sets, files


def _clip_shard(shard: Any, embedder: Embedder, references: tuple, config: DedupConfig) -> pa.Table:
    embeddings, sets, files = references
    keys, images = [], []
    with ImageReader() as reader:
        for row in locations(shard):
            if row.get("status") not in (None, "success") or row.get("image_offset") is None:
                continue
            try:
                images.append(decode(reader.read(shard.tar.tar, row["image_offset"], row["image_size"]), EMBED_SIDE))
                keys.append(row["key"])
            except Exception:  # reported as decode_error by the hash pass
                continue
    rows: dict[str, list] = {name: [] for name in schemas.DEDUP_CLIP_PAIRS.names}
    for start in range(0, len(images), CHUNK):
        query = embedder.embed(images[start : start + CHUNK])
        q, r, sim = similar_pairs(query, embeddings, config.min_clip_similarity, embedder.device)
        for qi, ri, si in zip(q, r, sim):
            values = (keys[start + qi], str(shard.stage), shard.tar.tar.name, sets[ri], files[ri], float(si))
            for name, value in zip(rows, values):
                rows[name].append(value)
    return pa.table(rows, schema=schemas.DEDUP_CLIP_PAIRS)


def run_clip_pass(
    out: StageDir,
    inputs: list[Any],
    listings: list[EvalListing],
    config: DedupConfig,
    embedder: Embedder,
    progress: Progress,
) -> None:
    """Embed the evaluation sets (cached) and every input shard not yet done; write ``clip/NNNNN.parquet``."""
    references = embed_eval_sets(listings, config, embedder, progress)
    shards = clip_dir(out.path)
    model = _model_fingerprint(config)
    todo = [s for s in inputs if not shards.is_done(s.name, {**s.fingerprint(), **model})]
    progress.start("embed", total=len(todo), unit="shards")
    for shard in todo:
        table = _clip_shard(shard, embedder, references, config)
        shards.write_table(shard.name, table, schemas.DEDUP_CLIP_PAIRS, f"clip shard {shards.path / shard.name}")
        shards.mark_done(shard.name, {"pairs": table.num_rows}, {**shard.fingerprint(), **model})
        progress.advance("embed")
    progress.finish("embed")


def clip_dir(out: Path) -> ShardDir:
    """The embedding pass's per-shard pairs inside a dedup output."""
    return ShardDir(Path(out) / CLIP_DIR)
