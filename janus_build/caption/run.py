"""The ``janus caption`` stage: caption every image shard, one caption shard per input shard."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections import Counter
from typing import Any

from janus_build import schemas
from janus_build.caption.config import HUMAN_CAPTION_COLUMNS, VOLATILE_KEYS, CaptionConfig
from janus_build.caption.inputs import InputShard, MetadataColumns, Sample, find_shards, load_samples
from janus_build.caption.merge import merge_title, prose_caption
from janus_build.caption.spelling import SpellFixer, words_of
from janus_build.core.stage import ShardDir, StageDir
from janus_build.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)

STAGE = "caption"
PROGRESS_TASK = "caption"
PROSE_CAPTION_SOURCE = "prose_caption_source"  # extra column: "human" or "blip_title"


@dataclasses.dataclass
class _ShardWork:
    shard: InputShard
    samples: list[Sample]
    start: int  # index of the shard's first sample in the run's flat sample list
    captions: dict[int, str]
    failures: dict[int, tuple[str, str | None]]
    pending: int
    started: float


def batch_seed(seed: int, shard: str, batch: int) -> int:
    """The sampling seed of one batch: depends on the run seed, the shard and the batch only,
    so a resumed run writes exactly what an uninterrupted one would have."""
    digest = hashlib.sha256(f"{seed}/{shard}/{batch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


def protected_words(classnames: str) -> set[str]:
    """Every word of every class name and matching term of the term set (never spell-corrected)."""
    from janus_build.labels import load_term_set

    terms = load_term_set(classnames)
    texts = list(terms.names.values())
    for values in terms.terms.values():
        texts.extend(values)
    return words_of(texts)


def run_caption(config: CaptionConfig, progress: Progress = NULL_PROGRESS, captioner: Any = None) -> dict[str, Any]:
    """Caption the images of ``config.stage_dir`` into ``config.out``.

    Args:
        config: the stage options.
        progress: receives ``caption`` task progress in images.
        captioner: an already loaded :class:`~janus_build.caption.model.Captioner` (benchmarks,
            tests); by default the model is loaded from ``config.model``.

    Returns:
        A summary: shards done and skipped, rows, successes, failures by status, images/s.

    Raises:
        InputError: no usable input shards. ConfigError: a bad option or column.
        MissingResourceError: the model cannot be loaded. OutputError: ``--out`` unusable.
    """
    if captioner is None:
        from janus_build.caption.model import resolve_device, resolve_dtype

        resolve_dtype(config.precision, resolve_device(config.device))  # a bad --device fails before any work
    shards = find_shards(config.stage_dir)
    columns = MetadataColumns(config.title_col, config.human_caption_col, HUMAN_CAPTION_COLUMNS)
    # Resolve the metadata columns before any work, so a wrong --human-caption-col fails fast.
    first_samples = load_samples(shards[0], columns)

    # Load the term set and the model before --out is opened (which records the options): a typo
    # in --model or --classnames must not leave a manifest that refuses the corrected command.
    spell = None
    if config.overwrite or not all(ShardDir(config.out).is_done(s.name) for s in shards):
        spell = SpellFixer(protected_words(config.classnames)) if config.spellcheck else None
        if captioner is None:
            from janus_build.caption.model import load_captioner

            captioner = load_captioner(config)

    out = StageDir(
        config.out,
        STAGE,
        config,
        inputs=[{"shard": s.name, "files": s.fingerprints()} for s in shards],
        overwrite=config.overwrite,
        volatile_keys=VOLATILE_KEYS,
    )
    todo = [s for s in shards if not out.is_done(s.name)]
    skipped = len(shards) - len(todo)
    if skipped:
        log.info("%d of %d shard(s) already captioned; skipping them", skipped, len(shards))
    summary: dict[str, Any] = {
        "shards": len(shards),
        "shards_skipped": skipped,
        "shards_written": 0,
        "rows": 0,
        "successes": 0,
    }
    failures: Counter[str] = Counter()
    if not todo:
        out.finish(summary | {"failures": {}})
        return summary | {"failures": {}}

    works: list[_ShardWork] = []
    flat: list[Sample] = []
    for shard in todo:
        samples = first_samples if shard is shards[0] else load_samples(shard, columns)
        works.append(_ShardWork(shard, samples, len(flat), {}, {}, 0, 0.0))
        flat.extend(samples)

    # Batches never straddle shards, and each batch has its own seed (see batch_seed).
    batches: list[list[int]] = []
    batch_owner: list[tuple[int, int]] = []  # (work index, batch number within the shard)
    for w, work in enumerate(works):
        with_image = [work.start + i for i, s in enumerate(work.samples) if s.tar is not None]
        for i, s in enumerate(work.samples):
            if s.tar is None:
                work.failures[work.start + i] = (
                    "input_failed" if s.input_status == "success" else s.input_status,
                    s.input_error,
                )
        work.pending = len(with_image)
        for b in range(0, len(with_image), config.batch_size):
            batches.append(with_image[b : b + config.batch_size])
            batch_owner.append((w, b // config.batch_size))

    total_images = sum(len(b) for b in batches)
    progress.start(PROGRESS_TASK, total=total_images, unit="images")
    started = time.perf_counter()
    captioned = 0

    def finish_ready(upto: int) -> None:
        """Write every shard up to work index ``upto`` whose images are all captioned."""
        for work in works[: upto + 1]:
            if work.pending == 0 and not out.is_done(work.shard.name):
                stats = _write_shard(out, work, spell, config)
                failures.update(stats["failures"])
                summary["shards_written"] += 1
                summary["rows"] += stats["count"]
                summary["successes"] += stats["successes"]

    for w, work in enumerate(works):  # shards without any image are written straight away
        if work.pending == 0:
            work.started = time.perf_counter()
            finish_ready(w)

    if batches:
        loader = make_loader(flat, batches, captioner.image_processor, config, pin_memory=captioner.device == "cuda")
        for batch_number, batch in enumerate(loader):
            w, b = batch_owner[batch_number]
            work = works[w]
            if b == 0:
                work.started = time.perf_counter()
            for index, status, message in batch["failures"]:
                work.failures[index] = (status, message)
            if batch["indices"]:
                texts = captioner.generate(batch["pixel_values"], seed=batch_seed(config.seed, work.shard.name, b))
                work.captions.update(zip(batch["indices"], texts))
            done = len(batch["indices"]) + len(batch["failures"])
            work.pending -= done
            captioned += done
            progress.advance(PROGRESS_TASK, done)
            if work.pending == 0:
                finish_ready(w)
    progress.finish(PROGRESS_TASK)
    elapsed = time.perf_counter() - started
    summary["failures"] = dict(sorted(failures.items()))
    summary["images_per_second"] = round(captioned / elapsed, 2) if elapsed > 0 else None
    out.finish(summary)
    log.info(
        "captioned %d image(s) in %.1f s (%.1f images/s)", captioned, elapsed, captioned / elapsed if elapsed else 0.0
    )
    return summary


def make_loader(
    flat: list[Sample], batches: list[list[int]], image_processor: Any, config: CaptionConfig, pin_memory: bool = False
) -> Any:
    """A DataLoader decoding and preprocessing ``batches`` (lists of indices into ``flat``) in workers."""
    import torch
    from torch.utils.data import DataLoader

    from janus_build.caption.decode import CaptionDataset, collate

    dataset = CaptionDataset(flat, image_processor, config.max_image_pixels)
    workers = min(config.num_workers, len(batches))
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory and torch.cuda.is_available(),
        prefetch_factor=2 if workers else None,
        persistent_workers=False,
    )


def _write_shard(out: StageDir, work: _ShardWork, spell: SpellFixer | None, config: CaptionConfig) -> dict[str, Any]:
    import pyarrow as pa

    rows: dict[str, list[Any]] = {name: [] for name in schemas.CAPTIONS.names}
    rows[PROSE_CAPTION_SOURCE] = []
    statuses: Counter[str] = Counter()
    for i, sample in enumerate(work.samples):
        index = work.start + i
        raw = work.captions.get(index)
        if raw is not None:
            status, message = "success", None
            fixed = spell.fix(raw, sample.title) if spell is not None else raw
            merged = merge_title(fixed, sample.title)
        else:
            status, message = work.failures.get(index, ("missing_caption", "no caption was produced"))
            fixed = merged = None
        prose, source = prose_caption(sample.human_caption, merged)
        statuses[status] += 1
        for name, value in (
            (schemas.KEY, sample.key),
            ("caption_blip", raw),
            ("caption_blip_spellchecked", fixed),
            ("caption_blip_title", merged),
            ("prose_caption", prose),
            (schemas.STATUS, status),
            (schemas.ERROR_MESSAGE, message),
            (PROSE_CAPTION_SOURCE, source if prose is not None else None),
        ):
            rows[name].append(value)
    table = pa.table({name: pa.array(values, pa.string()) for name, values in rows.items()})
    out.write_table(work.shard.name, table, schemas.CAPTIONS, f"caption shard {out.shard_path(work.shard.name)}")
    seconds = time.perf_counter() - work.started
    successes = statuses.pop("success", 0)
    stats = {
        "count": len(work.samples),
        "successes": successes,
        "failed": len(work.samples) - successes,
        "failures": dict(sorted(statuses.items())),
        "prose_from_human": rows[PROSE_CAPTION_SOURCE].count("human"),
        "seconds": round(seconds, 3),
        "input": work.shard.tar.name,
    }
    out.mark_done(work.shard.name, stats)
    log.info("caption shard %s: %d row(s), %d captioned", work.shard.name, stats["count"], successes)
    return stats
