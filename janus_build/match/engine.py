"""The ``janus match`` stage: inputs resolved and checked, shards distributed, the summary written.

Each input file becomes one output shard (``NNNNN.parquet`` in sorted input order), except that
runs of small files are packed into one shard (:func:`plan_tasks`; ``--pack-rows``). See
:mod:`janus_build.match.shard` for what a shard holds and how it is written. This module owns
the run around the shards: it validates every option and input before work starts, opens the
output (a local :class:`~janus_build.core.stage.StageDir` or an object-store one), computes the
done-set once (markers whose input fingerprint still matches), hands the rest to the engine —
local worker processes (:func:`janus_build.core.procs.process_pool`) or Spark executors
(:mod:`janus_build.match.spark`), both running :func:`janus_build.match.shard.run_shard` — and
sums the markers into ``DIR/_stats.json``.
"""

from __future__ import annotations

import logging
import queue as queue_module
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from janus_build.core import storage
from janus_build.core.stage import shard_name
from janus_build.errors import GateError, InputError
from janus_build.labels import load_label_set
from janus_build.match.config import PACK_BYTES, VOLATILE, MatchConfig
from janus_build.match.inputs import file_key, key_root, resolve_inputs
from janus_build.match.shard import (
    ShardInput,
    ShardStats,
    ShardTask,
    build_matcher,
    check_columns,
    open_parquet,
    run_shard,
)
from janus_build.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)

STATS_FILE = "_stats.json"  # the run's summary; '_' keeps the directory a plain parquet dataset
CHART_FILE = "_per_class_accuracy.png"
REMOTE_THREADS = 32  # footers and fingerprints of object-store inputs read at once


@dataclass(frozen=True)
class InputInfo:
    """What :func:`prepare` learnt of one input from its footer (``schema`` None: unreadable)."""

    rows: int = 0
    nbytes: int = 0
    schema: Any = None


def prepare(config: MatchConfig) -> tuple[list[ShardTask], Any, dict[str, int]]:
    """Validate options and inputs, then open (or resume) the output directory.

    Returns the shard tasks (every input, in order, small ones packed), the stage directory and
    each input's rows.
    """
    build_matcher(config)  # label/term errors surface before any output is touched
    locations = resolve_inputs(config.inputs)
    root = key_root(locations, config.key_root)
    infos = dict(zip(locations, _each_input(lambda location: _inspect(location, config), locations)))
    resolved = replace(config, inputs=tuple(locations), key_root=root)
    fingerprints = _each_input(storage.fingerprint, locations)
    members = [ShardInput(loc, file_key(loc, root), fp) for loc, fp in zip(locations, fingerprints)]
    stage = storage.open_stage_dir(
        config.out,
        "match",
        resolved,
        inputs=[m.fingerprint for m in members],
        overwrite=config.overwrite,
        volatile_keys=VOLATILE,
    )
    # a stage directory pickles to its plain shard directory: what workers get
    tasks = [ShardTask(i, pack, stage, resolved) for i, pack in enumerate(plan_tasks(members, infos, config))]
    return tasks, stage, {location: info.rows for location, info in infos.items()}


def _each_input(function: Any, locations: list[str]) -> list[Any]:
    """``function`` of every input, in order: in threads when inputs are remote (a round trip each)."""
    if len(locations) < 2 or not storage.is_remote(locations[0]):
        return [function(location) for location in locations]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(REMOTE_THREADS, len(locations))) as pool:
        return list(pool.map(function, locations))


def _inspect(location: str, config: MatchConfig) -> InputInfo:
    """Check one input's columns (every input, before any work starts) and read its size."""
    try:
        parquet = open_parquet(location)
        try:
            schema = parquet.schema_arrow
            check_columns(location, schema, config)
            meta = parquet.metadata
            nbytes = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            return InputInfo(meta.num_rows, nbytes, schema)
        finally:
            parquet.close(force=True)
    except InputError:
        if not config.skip_bad_inputs:
            raise
        return InputInfo()  # reported when its shard runs


def plan_tasks(
    members: list[ShardInput], infos: dict[str, InputInfo], config: MatchConfig
) -> list[tuple[ShardInput, ...]]:
    """The inputs of each shard, in input order: one file each, except packs of small files.

    A file is small when it has fewer than ``--pack-rows`` rows and ``PACK_BYTES`` of decoded
    data; consecutive small files with the same columns share a shard while it stays within
    both limits. The plan depends only on the inputs and ``--pack-rows``, so a resumed run
    makes the same shards.
    """
    packs: list[list[ShardInput]] = []
    rows = nbytes = 0
    open_pack: Any = None  # the schema of the pack still taking members
    for member in members:
        info = infos[member.location]
        small = config.pack_rows > 0 and info.schema is not None
        small = small and info.rows < config.pack_rows and info.nbytes < PACK_BYTES
        fits = rows + info.rows <= config.pack_rows and nbytes + info.nbytes <= PACK_BYTES
        if small and open_pack is not None and fits and info.schema.equals(open_pack, check_metadata=False):
            packs[-1].append(member)
            rows, nbytes = rows + info.rows, nbytes + info.nbytes
            continue
        packs.append([member])
        rows, nbytes = info.rows, info.nbytes
        open_pack = info.schema if small else None
    return [tuple(pack) for pack in packs]


def run_match(config: MatchConfig, progress: Progress = NULL_PROGRESS) -> dict[str, Any]:
    """Run ``janus match``: label every input shard, write ``_stats.json``, apply the gates.

    Returns:
        The stats written to ``DIR/_stats.json``.

    Raises:
        JanusError: bad options or inputs (before work starts), a bad input without
            ``--skip-bad-inputs``, an output that cannot be written (``OutputError``), or
            (``GateError``) a quality gate that falls short — raised after everything is written.
    """
    tasks, stage, rows = prepare(config)
    with stage:
        stale = stage.prune(task.name for task in tasks)
        if stale:  # an input changed and moved the pack boundaries: the old shards would repeat rows
            log.warning("removed %d shard(s) of the earlier run's plan: %s", len(stale), ", ".join(stale))
        todo = [t for t in tasks if not stage.is_done(t.name, t.fingerprint)]
        if len(todo) < len(tasks):
            log.info("%d of %d shard(s) already done; skipping them", len(tasks) - len(todo), len(tasks))
        total = sum(rows.get(member.location, 0) for t in todo for member in t.inputs)
        progress.start("match", total=total, unit="captions")
        if config.engine == "spark":
            from janus_build.match.spark import run_spark

            outcomes = run_spark(largest_first(todo, rows), config, progress)
        else:
            outcomes = run_local(largest_first(todo, rows) if config.workers > 1 else todo, config, progress)
        progress.finish("match")
        bad = [o["bad"] for o in outcomes if "bad" in o]
        return finish(stage, tasks, config, bad)


def largest_first(todo: list[ShardTask], rows: dict[str, int]) -> list[ShardTask]:
    """The tasks by decreasing rows, input order among equals: the order parallel workers take them.

    Long shards start first, so the last to finish are short ones and no worker is left
    alone on a big file at the end. Shard names and contents do not depend on this order.
    """
    return sorted(todo, key=lambda task: -sum(rows.get(member.location, 0) for member in task.inputs))


def check_outcome(outcome: dict[str, Any], config: MatchConfig) -> dict[str, Any]:
    """Raise a bad input's error unless ``--skip-bad-inputs``; else log it. Returns the outcome.

    ``{"fatal": ...}`` (an error a Spark executor returned as data) is always raised.
    """
    if "fatal" in outcome:
        from janus_build import errors

        raise getattr(errors, outcome["fatal"]["kind"], errors.JanusError)(outcome["fatal"]["error"])
    if "bad" in outcome:
        if not config.skip_bad_inputs:
            from janus_build import errors

            raise getattr(errors, outcome["bad"].get("kind", "InputError"), InputError)(outcome["bad"]["error"])
        log.warning("skipping bad input: %s", outcome["bad"]["error"])
    return outcome


# --- local worker processes ----------------------------------------------------------------
_QUEUE: Any = None


def _init_worker(progress_queue: Any) -> None:
    global _QUEUE
    _QUEUE = progress_queue
    from janus_build.core.procs import disable_transparent_huge_pages

    disable_transparent_huge_pages()  # a fresh worker's heap: 4 KiB pages (see the function)


def _pool_shard(task: ShardTask) -> dict[str, Any]:
    return run_shard(task, _QUEUE.put if _QUEUE is not None else None)


def run_local(todo: list[ShardTask], config: MatchConfig, progress: Progress) -> list[dict[str, Any]]:
    """Run the shards here (``--workers 1``) or in worker processes that die with this one."""
    advance = lambda rows: progress.advance("match", rows)  # noqa: E731
    if config.workers == 1 or len(todo) <= 1:
        return [check_outcome(run_shard(task, advance, ahead), config) for task, ahead in _read_ahead(todo)]
    from concurrent.futures import FIRST_COMPLETED, wait

    from janus_build.core.procs import pool_context, process_pool

    context = pool_context()
    if context.get_start_method() == "fork":
        build_matcher(config).warm()  # built once here; forked workers inherit it
    rows_queue = context.Queue()
    outcomes: list[dict[str, Any]] = []
    pool = process_pool(min(config.workers, len(todo)), _init_worker, (rows_queue,))
    try:
        pending = {pool.submit(_pool_shard, task) for task in todo}
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(rows_queue, advance)
            outcomes += [check_outcome(future.result(), config) for future in done]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _drain(rows_queue, advance)
    return outcomes


def _read_ahead(todo: list[ShardTask]) -> Iterator[tuple[ShardTask, Any]]:
    """Each task, with the next pack's files read in a thread while this one is matched.

    The per-file cost of a pack is pyarrow opening and decoding each small file (about 0.7 ms);
    pyarrow releases the GIL there, so on a second core it overlaps the matching. At most one
    pack is held ahead.
    """
    from concurrent.futures import ThreadPoolExecutor

    from janus_build.match.shard import read_pack

    with ThreadPoolExecutor(1, thread_name_prefix="janus-read-ahead") as pool:
        pending = pool.submit(read_pack, todo[0]) if todo and todo[0].packed else None
        try:
            for i, task in enumerate(todo):
                current, pending = pending, None
                if i + 1 < len(todo) and todo[i + 1].packed:
                    pending = pool.submit(read_pack, todo[i + 1])
                yield task, current
        finally:
            if pending is not None:
                pending.cancel()


def _drain(rows_queue: Any, advance: Any) -> None:
    while True:
        try:
            advance(rows_queue.get_nowait())
        except (queue_module.Empty, OSError, ValueError):
            return


# --- the summary ---------------------------------------------------------------------------
def finish(stage: Any, tasks: list[ShardTask], config: MatchConfig, bad: list[dict[str, str]]) -> dict[str, Any]:
    """Sum the shard markers into ``_stats.json``, draw the chart, mark the stage complete, check gates."""
    from janus_build.match.quality import check_gates, per_class_accuracy_png, summarize

    total = ShardStats()
    done = set(stage.done_shards())
    shards = 0
    for task in tasks:
        if task.name in done:
            shard = ShardStats.from_json(stage.read_stats(task.name))
            total.add(shard)
            bad = bad + shard.skipped_inputs  # a pack's unreadable members (--skip-bad-inputs)
            shards += 1
    label_set = load_label_set(config.labels)
    table = build_matcher(config).table
    extra = {
        "shards": shards,
        "inputs": sum(len(task.inputs) for task in tasks),
        "skipped_inputs": [{"path": b["path"], "error": b["error"]} for b in bad],
        "unmatchable_terms": [{"class_id": c, "term": t} for c, t in table.too_long],
    }
    stats = summarize(total, config, label_set.names, extra)
    stage.write_json(STATS_FILE, stats)
    if config.plot and config.truth_col:
        chart = per_class_accuracy_png(stats, label_set.names)
        if chart is not None:
            stage.write_bytes(CHART_FILE, chart)
    stage.finish({k: stats[k] for k in ("rows", "labelled", "utilization") if k in stats})
    try:
        check_gates(stats, config.min_label_accuracy, config.min_utilization)
    except GateError as exc:
        exc.stats = stats  # the CLI prints the figures, wherever --out is
        raise
    return stats


__all__ = ["STATS_FILE", "MatchConfig", "prepare", "run_match", "shard_name"]
