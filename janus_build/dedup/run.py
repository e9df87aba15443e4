"""The ``janus dedup`` stage: flag training images that are near-copies of evaluation images.

Flow: list and hash the evaluation sets (cached in ``DIR/_eval/``), build one
:class:`~janus_build.dedup.index.HashIndex` over every view of every evaluation image, then
check each input image shard in a worker (one ``DIR/samples/NNNNN.parquet`` per input shard,
done-marker last, so a killed run resumes), and finally aggregate the shards into
``contaminated.parquet``, ``exclude_keys.parquet`` and ``_contamination.json``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from janus_build.core.procs import process_pool
from janus_build.core.shards import TarShard, find_tar_shards, resolve_image_stage
from janus_build.core.stage import ShardDir, StageDir, fingerprint_file, shard_name
from janus_build.dedup.config import VOLATILE_KEYS, DedupConfig
from janus_build.dedup.evalsets import EvalListing, hash_eval_sets, list_eval_set
from janus_build.dedup.hashing import view_names
from janus_build.dedup.index import HashIndex
from janus_build.dedup.report import write_reports
from janus_build.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)

STAGE = "dedup"
SAMPLES_DIR = "samples"
PROGRESS_TASK = "check"


@dataclass(frozen=True)
class InputShard:
    """One tar of one image stage, and the number of its output shard."""

    number: int
    stage: Path
    tar: TarShard

    @property
    def name(self) -> str:
        return shard_name(self.number)

    def fingerprint(self) -> dict[str, Any]:
        index = self.tar.index
        return {"tar": fingerprint_file(self.tar.tar), "index": fingerprint_file(index) if index else None}


def find_inputs(config: DedupConfig) -> list[InputShard]:
    """Every finished tar of every ``STAGE_DIR``, numbered in order.

    Raises:
        InputError: a stage directory is missing or holds no image shards.
    """
    inputs: list[InputShard] = []
    for stage in config.stages:
        directory = resolve_image_stage(stage, "STAGE_DIR")
        for tar in find_tar_shards(directory):
            inputs.append(InputShard(len(inputs), directory.resolve(), tar))
    return inputs


def run_dedup(config: DedupConfig, progress: Progress = NULL_PROGRESS, embedder: Any = None) -> dict[str, Any]:
    """Check every training image of ``config.stages`` against ``config.eval_sets``.

    Args:
        config: the stage options.
        progress: receives hashing, checking and embedding progress.
        embedder: for the embedding pass (``config.clip_model``), an already loaded
            :class:`~janus_build.dedup.embed.Embedder` (tests, benchmarks); by default the
            open_clip model is loaded from ``config.clip_model`` / ``config.clip_pretrained``.

    Returns:
        The summary written to ``DIR/_contamination.json`` (counts per evaluation set and per
        stage) plus ``shards_written``, ``shards_skipped`` and ``images_per_second``.

    Raises:
        ConfigError: a bad option. InputError: a missing stage or evaluation folder, or one
        without images. OutputError: ``--out`` unusable (another stage's output, locked, or an
        earlier run with other options). MissingResourceError: the CLIP weights cannot be loaded.
    """
    inputs = find_inputs(config)
    listings = [list_eval_set(e) for e in config.eval_sets]  # every input is checked before --out is opened
    if config.clip_model and embedder is None:
        from janus_build.dedup.embed import load_embedder

        embedder = load_embedder(config.clip_model, config.clip_pretrained, config.device, config.clip_batch_size)
    with StageDir(
        config.out,
        STAGE,
        config,
        inputs=[
            *({"stage": os.fspath(s.stage), "shard": s.tar.name} for s in inputs),
            *({"eval_set": lst.eval_set.name, **lst.fingerprint} for lst in listings),
        ],
        overwrite=config.overwrite,
        volatile_keys=VOLATILE_KEYS,
    ) as out:
        with _pool(config.workers) as pool:
            tables = hash_eval_sets(listings, config, pool, progress)
        state = _index_state(listings, tables, config)
        counts = _check_shards(out, inputs, state, config, progress)
        if config.clip_model:
            from janus_build.dedup.clip_pass import run_clip_pass

            run_clip_pass(out, inputs, listings, config, embedder, progress)
        summary = write_reports(out, inputs, listings, tables, config)
        summary.update(counts)
        out.finish(summary)
    return summary


def _index_state(listings: list[EvalListing], tables: list[pa.Table], config: DedupConfig) -> dict[str, Any]:
    """What a worker needs: the index, and evaluation image number -> (set, file)."""
    import pyarrow.compute as pc

    set_of_image: list[str] = []
    file_of_image: list[str] = []
    columns: dict[str, list[np.ndarray]] = {"phash": [], "dhash": [], "image": [], "view": []}
    for listing, table in zip(listings, tables):
        ok = table.filter(pc.equal(table["status"], "success"))
        files, inverse = np.unique(np.asarray(ok["eval_file"].to_pylist(), dtype=object), return_inverse=True)
        columns["image"].append(inverse.astype(np.int64) + len(file_of_image))
        columns["view"].append(ok["view"].to_numpy())
        for name in ("phash", "dhash"):
            columns[name].append(ok[name].to_numpy().view(np.uint64))
        set_of_image += [listing.eval_set.name] * len(files)
        file_of_image += [str(f) for f in files]
    merged = {k: np.concatenate(v) if v else np.empty(0) for k, v in columns.items()}
    index = HashIndex(
        merged["phash"], merged["dhash"], merged["image"], merged["view"], config.max_phash, config.max_dhash
    )
    log.info("indexed %d view(s) of %d evaluation image(s) in %d band(s)", len(index), len(file_of_image), index.bands)
    return {
        "index": index,
        "set_of_image": set_of_image,
        "file_of_image": file_of_image,
        "views": view_names(config.crops, config.flips),
        "min_detail": config.min_detail,
        "eval_fingerprint": [lst.fingerprint["sha256"] for lst in listings],
    }


def _check_shards(
    out: StageDir, inputs: list[InputShard], state: dict[str, Any], config: DedupConfig, progress: Progress
) -> dict[str, Any]:
    from janus_build.dedup import check

    samples = out.sub(SAMPLES_DIR)
    fingerprints = {s.number: {**s.fingerprint(), "eval": state["eval_fingerprint"]} for s in inputs}
    todo = [s for s in inputs if not samples.is_done(s.name, fingerprints[s.number])]
    if len(todo) < len(inputs):
        log.info("%d of %d shard(s) already checked; skipping them", len(inputs) - len(todo), len(inputs))
    progress.start(PROGRESS_TASK, total=len(todo), unit="shards")
    started, images = time.perf_counter(), 0
    tasks = [(samples, s, fingerprints[s.number]) for s in todo]
    check.set_state(state)
    # workers get the index through the initializer (inherited, not pickled, where they fork)
    with _pool(min(config.workers, max(1, len(todo))), check.set_state, (state,)) as pool:
        for stats in (pool.map if pool is not None else map)(check.check_shard, tasks):
            images += stats["count"]
            progress.advance(PROGRESS_TASK)
    progress.finish(PROGRESS_TASK)
    elapsed = time.perf_counter() - started
    return {
        "shards_written": len(todo),
        "shards_skipped": len(inputs) - len(todo),
        "images_per_second": round(images / elapsed, 1) if images and elapsed > 0 else None,
    }


@contextlib.contextmanager
def _pool(workers: int, initializer: Any = None, initargs: tuple[Any, ...] = ()) -> Iterator[Any]:
    """A worker pool, or None (work in this process) for one worker."""
    if workers <= 1:
        yield None
        return
    pool = process_pool(workers, initializer, initargs)
    try:
        yield pool
    finally:
        pool.shutdown(cancel_futures=True)


def samples_dir(out: str | os.PathLike[str]) -> ShardDir:
    """The per-sample shards of a dedup output."""
    return ShardDir(Path(out) / SAMPLES_DIR)
