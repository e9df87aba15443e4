"""The ``janus caption`` stage: caption every image shard, one caption shard per input shard.

:func:`run` is the entry. It runs as one process, or as each process of a ``torchrun`` job
(data parallel: shards are dealt to ranks round robin, each rank captions its shards on its own
GPU and writes them, rank 0 owns the stage directory). Every batch's sampling seed depends on the
run seed, the shard and the batch only (:func:`batch_seed`), and batches never straddle shards,
so one process, N processes and a resumed run all write the same captions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from janus_build import schemas
from janus_build.caption.config import HUMAN_CAPTION_COLUMNS, VOLATILE_KEYS, CaptionConfig
from janus_build.caption.inputs import InputShard, MetadataColumns, Sample, find_shards, load_samples
from janus_build.caption.merge import merge_title, prose_caption
from janus_build.caption.spelling import SpellFixer, words_of
from janus_build.core import torchrun
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


@dataclasses.dataclass
class _Plan:
    """This process's work: shards, the flat sample list and batches of indices into it."""

    works: list[_ShardWork]
    flat: list[Sample]
    batches: list[list[int]]
    owners: list[tuple[int, int]]  # per batch: (work index, batch number within its shard)


@dataclasses.dataclass
class _Tally:
    """What this process wrote."""

    shards_written: int = 0
    rows: int = 0
    successes: int = 0
    captioned: int = 0
    failures: Counter[str] = dataclasses.field(default_factory=Counter)

    def add(self, stats: dict[str, Any]) -> None:
        self.failures.update(stats["failures"])
        self.shards_written += 1
        self.rows += stats["count"]
        self.successes += stats["successes"]


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


def run(config: CaptionConfig, progress: Progress = NULL_PROGRESS, captioner: Any = None) -> dict[str, Any]:
    """Caption the images of ``config.stage_dir`` into ``config.out``.

    Args:
        config: the stage options.
        progress: receives ``caption`` task progress in images (rank 0's under torchrun).
        captioner: an already loaded :class:`~janus_build.caption.model.Captioner` (benchmarks,
            tests); by default the model is loaded from ``config.model``.

    Returns:
        A summary: shards done and skipped, rows, successes, failures by status, images/s
        (over every process of a torchrun job).

    Raises:
        InputError: no usable input shards. ConfigError: a bad option or column.
        MissingResourceError: the model cannot be loaded. OutputError: ``--out`` unusable.
    """
    dist = torchrun.dist_from_env()
    if captioner is None:
        from janus_build.caption.model import resolve_device, resolve_dtype

        resolve_dtype(config.precision, resolve_device(config.device, dist.local_rank))  # fail before any work
    shards = find_shards(config.stage_dir)
    columns = MetadataColumns(config.title_col, config.human_caption_col, HUMAN_CAPTION_COLUMNS)
    # Resolve the metadata columns before any work, so a wrong --human-caption-col fails fast.
    first_samples = load_samples(shards[0], columns)
    # Load the term set and the model before --out is opened (which records the options): a typo
    # in --model or --classnames must not leave a manifest that refuses the corrected command.
    spell = None
    if config.overwrite or not all(ShardDir(config.out).is_done(s.name, s.fingerprint()) for s in shards):
        spell = SpellFixer(protected_words(config.classnames)) if config.spellcheck else None
        if captioner is None:
            from janus_build.caption.model import load_captioner

            captioner = load_captioner(config, dist.local_rank)
    with torchrun.process_group(dist):
        out = _open_output(config, shards, dist)
        try:
            todo = torchrun.deal(_pending(config, shards, dist), dist)
            tally, elapsed = _caption_shards(
                config, todo, shards, first_samples, columns, spell, captioner, progress if dist.is_main else None
            )
            return _finish(out, len(shards), torchrun.gather(dist, (tally, elapsed)))
        finally:
            if out is not None:
                out.close()


run_caption = run  # the name the API has had


def _pending(config: CaptionConfig, shards: list[InputShard], dist: Any) -> list[InputShard]:
    """The unfinished shards as rank 0 sees them before anyone writes (every rank deals the same list)."""
    done = ShardDir(config.out)
    names = [s.name for s in shards if not done.is_done(s.name, s.fingerprint())] if dist.is_main else None
    pending = set(torchrun.gather(dist, names)[0])
    return [s for s in shards if s.name in pending]


def _open_output(config: CaptionConfig, shards: list[InputShard], dist: Any) -> StageDir | None:
    """Rank 0 opens (locks, resumes or clears) the stage directory; the others wait for it."""
    out = None
    try:
        if dist.is_main:
            out = StageDir(
                config.out,
                STAGE,
                config,
                inputs=[{"shard": s.name, "files": s.fingerprints()} for s in shards],
                overwrite=config.overwrite,
                volatile_keys=VOLATILE_KEYS,
            )
            skipped = sum(1 for s in shards if out.is_done(s.name, s.fingerprint()))
            if skipped:
                log.info("%d of %d shard(s) already captioned; skipping them", skipped, len(shards))
    finally:
        torchrun.barrier(dist, ok=out is not None or not dist.is_main)
    return out


def _finish(out: StageDir | None, total_shards: int, results: list[tuple[_Tally, float]]) -> dict[str, Any]:
    """Rank 0 adds up every process's tally and marks the stage complete."""
    tally = _Tally()
    for part, _ in results:
        tally.shards_written += part.shards_written
        tally.rows += part.rows
        tally.successes += part.successes
        tally.captioned += part.captioned
        tally.failures.update(part.failures)
    elapsed = max((seconds for _, seconds in results), default=0.0)
    summary: dict[str, Any] = {
        "shards": total_shards,
        "shards_skipped": total_shards - tally.shards_written,
        "shards_written": tally.shards_written,
        "rows": tally.rows,
        "successes": tally.successes,
        "failures": dict(sorted(tally.failures.items())),
    }
    if tally.captioned:
        summary["images_per_second"] = round(tally.captioned / elapsed, 2) if elapsed > 0 else None
        log.info("captioned %d image(s) in %.1f s (%.1f images/s)", tally.captioned, elapsed, tally.captioned / elapsed)
    if out is not None:
        out.finish(summary)
    return summary


def _caption_shards(
    config: CaptionConfig,
    todo: list[InputShard],
    shards: list[InputShard],
    first_samples: list[Sample],
    columns: MetadataColumns,
    spell: SpellFixer | None,
    captioner: Any,
    progress: Progress | None,
) -> tuple[_Tally, float]:
    """Caption and write ``todo`` (this process's unfinished shards)."""
    progress = progress or NULL_PROGRESS
    tally = _Tally()
    if not todo:
        return tally, 0.0
    plan = _plan(todo, lambda s: first_samples if s is shards[0] else load_samples(s, columns), config.batch_size)
    out = ShardDir(config.out)

    def write_ready(upto: int) -> None:
        """Write every shard up to work index ``upto`` whose images are all captioned."""
        for work in plan.works[: upto + 1]:
            if work.pending == 0 and not out.is_done(work.shard.name, work.shard.fingerprint()):
                tally.add(_write_shard(out, work, spell))

    progress.start(PROGRESS_TASK, total=sum(len(b) for b in plan.batches), unit="images")
    started = time.perf_counter()
    for w, work in enumerate(plan.works):  # shards without any image are written straight away
        if work.pending == 0:
            work.started = time.perf_counter()
            write_ready(w)
    if plan.batches:
        for w, done in _generate(plan, captioner, config):
            tally.captioned += done
            progress.advance(PROGRESS_TASK, done)
            if plan.works[w].pending == 0:
                write_ready(w)
    progress.finish(PROGRESS_TASK)
    return tally, time.perf_counter() - started


def _plan(todo: list[InputShard], samples_of: Callable[[InputShard], list[Sample]], batch_size: int) -> _Plan:
    """Batches that never straddle shards; rows without an image are failures from the start."""
    plan = _Plan([], [], [], [])
    for shard in todo:
        samples = samples_of(shard)
        plan.works.append(_ShardWork(shard, samples, len(plan.flat), {}, {}, 0, 0.0))
        plan.flat.extend(samples)
    for w, work in enumerate(plan.works):
        with_image = [work.start + i for i, s in enumerate(work.samples) if s.tar is not None]
        for i, s in enumerate(work.samples):
            if s.tar is None:
                status = "input_failed" if s.input_status == "success" else s.input_status
                work.failures[work.start + i] = (status, s.input_error)
        work.pending = len(with_image)
        for b in range(0, len(with_image), batch_size):
            plan.batches.append(with_image[b : b + batch_size])
            plan.owners.append((w, b // batch_size))
    return plan


def _generate(plan: _Plan, captioner: Any, config: CaptionConfig) -> Any:
    """Caption the plan's batches in order; yields ``(work index, images done)`` per batch."""
    pin = str(captioner.device).startswith("cuda")
    loader = make_loader(plan.flat, plan.batches, captioner.image_processor, config, pin_memory=pin)
    for batch_number, batch in enumerate(loader):
        w, b = plan.owners[batch_number]
        work = plan.works[w]
        if b == 0:
            work.started = time.perf_counter()
        for index, status, message in batch["failures"]:
            work.failures[index] = (status, message)
        if batch["indices"]:
            texts = captioner.generate(batch["pixel_values"], seed=batch_seed(config.seed, work.shard.name, b))
            work.captions.update(zip(batch["indices"], texts))
        done = len(batch["indices"]) + len(batch["failures"])
        work.pending -= done
        yield w, done


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


def caption_texts(raw: str, title: str | None, spell: SpellFixer | None) -> tuple[str, str]:
    """``(caption_blip_spellchecked, caption_blip_title)`` of one BLIP caption."""
    from janus_build.caption.artefacts import clean_caption

    cleaned = clean_caption(raw)
    fixed = spell.fix(cleaned, title) if spell is not None else cleaned
    return fixed, merge_title(fixed, title) or fixed


def _write_shard(out: ShardDir, work: _ShardWork, spell: SpellFixer | None) -> dict[str, Any]:
    import pyarrow as pa

    rows: dict[str, list[Any]] = {name: [] for name in schemas.CAPTIONS.names}
    rows[PROSE_CAPTION_SOURCE] = []
    statuses: Counter[str] = Counter()
    for i, sample in enumerate(work.samples):
        index = work.start + i
        raw = work.captions.get(index)
        if raw is not None:
            status, message = "success", None
            fixed, merged = caption_texts(raw, sample.title, spell)
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
    successes = statuses.pop("success", 0)
    stats = {
        "count": len(work.samples),
        "successes": successes,
        "failed": len(work.samples) - successes,
        "failures": dict(sorted(statuses.items())),
        "prose_from_human": rows[PROSE_CAPTION_SOURCE].count("human"),
        "seconds": round(time.perf_counter() - work.started, 3),
        "input": work.shard.tar.name,
    }
    out.mark_done(work.shard.name, stats, work.shard.fingerprint())
    log.info("caption shard %s: %d row(s), %d captioned", work.shard.name, stats["count"], successes)
    return stats
