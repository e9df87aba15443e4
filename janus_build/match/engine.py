"""The ``janus match`` stage on one machine: parquet shards in, labelled shards and stats out.

Each input file becomes one output shard (``NNNNN.parquet`` in sorted input order) holding every
input column plus ``key``, ``label``, ``labels`` and ``matched_terms``; ``NNNNN_stats.json`` marks
it done, so a re-run skips finished shards. Shards are streamed in record batches (memory is
bounded by ``batch_size``, not the file) and spread over ``workers`` processes.
"""

from __future__ import annotations

import functools
import glob
import logging
import os
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from janus_build import schemas
from janus_build.core.fsio import atomic_parquet_writer, atomic_write_json
from janus_build.core.stage import ShardDir, StageDir, fingerprint_file, shard_name
from janus_build.errors import ConfigError, InputError, SchemaError
from janus_build.labels import load_label_set, load_term_set, terms_for
from janus_build.match.matcher import STRATEGIES, Matcher, TermTable
from janus_build.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)

STATS_FILE = "_stats.json"  # the run's summary; '_' keeps the directory a plain parquet dataset

ENGINES = ("local", "spark")
DEFAULT_TEXT_COLS = ("TEXT", "caption")
ADDED_COLUMNS = (schemas.LABEL, schemas.LABELS, schemas.MATCHED_TERMS)


@dataclass(frozen=True)
class MatchConfig:
    """Options of ``janus match`` (the CLI maps its flags onto these one to one)."""

    inputs: tuple[str, ...]
    out: str
    strategy: str = "sc"
    labels: str = "in100"
    classnames: str = "openai"
    text_cols: tuple[str, ...] = ()  # empty: TEXT if present, else caption
    truth_col: str | None = None
    min_label_accuracy: float | None = None
    min_utilization: float | None = None
    max_ngram: int = 3
    max_caption_chars: int = 100_000  # longer captions are counted as too_long, not matched
    batch_size: int = 65_536
    workers: int = 1
    engine: str = "local"
    skip_bad_inputs: bool = False
    overwrite: bool = False
    plot: bool = True

    def validate(self) -> None:
        """Check every option before any work starts (messages name the flag)."""
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"--strategy: {self.strategy!r} is not one of {', '.join(STRATEGIES)}")
        if self.engine not in ENGINES:
            raise ConfigError(f"--engine: {self.engine!r} is not one of {', '.join(ENGINES)}")
        if self.workers < 1:
            raise ConfigError(f"--workers: must be at least 1, got {self.workers}")
        if not 1 <= self.max_ngram <= 6:
            raise ConfigError(f"--max-ngram: must be between 1 and 6, got {self.max_ngram}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size: must be at least 1, got {self.batch_size}")
        for flag, value in (
            ("--min-label-accuracy", self.min_label_accuracy),
            ("--min-utilization", self.min_utilization),
        ):
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"{flag}: must be between 0 and 1, got {value}")
        if self.min_label_accuracy is not None and not self.truth_col:
            raise ConfigError("--min-label-accuracy needs --truth-col (accuracy is measured against ground truth)")
        if not self.inputs:
            raise ConfigError("no INPUT given: pass parquet files, directories or globs")


@dataclass
class ShardTask:
    index: int
    path: str
    out_dir: str
    config: MatchConfig
    stem: str = ""


@dataclass
class ShardStats:
    """Counts of one shard; summed into ``stats.json``."""

    input: str = ""
    rows: int = 0
    labelled: int = 0
    per_class: Counter = field(default_factory=Counter)
    empty: int = 0  # null, empty or whitespace-only captions
    non_text: int = 0  # values that are not text (numbers, invalid UTF-8, ...)
    too_long: int = 0
    correct: int = 0
    truth_missing: int = 0
    truth_per_class: Counter = field(default_factory=Counter)
    correct_per_class: Counter = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for name in ("per_class", "truth_per_class", "correct_per_class"):
            out[name] = {str(k): v for k, v in sorted(getattr(self, name).items())}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShardStats:
        stats = cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})
        for name in ("per_class", "truth_per_class", "correct_per_class"):
            setattr(stats, name, Counter({int(k): v for k, v in data.get(name, {}).items()}))
        return stats

    def add(self, other: ShardStats) -> None:
        for name in ("rows", "labelled", "empty", "non_text", "too_long", "correct", "truth_missing"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("per_class", "truth_per_class", "correct_per_class"):
            getattr(self, name).update(getattr(other, name))


# --- inputs --------------------------------------------------------------------------------
def resolve_inputs(inputs: tuple[str, ...] | list[str]) -> list[Path]:
    """Expand files, directories (their ``*.parquet``, recursively) and globs; sorted, unique.

    Raises:
        InputError: an input matches nothing, or no parquet file is found at all.
    """
    found: dict[str, Path] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*.parquet") if p.is_file() and not p.name.startswith("."))
            if not matches:
                raise InputError(f"INPUT {item}: directory holds no .parquet files")
        elif path.is_file():
            matches = [path]
        else:
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not matches:
                raise InputError(f"INPUT {item}: no such file, directory or glob match")
        for match in matches:
            found.setdefault(os.fspath(match.resolve()), match.resolve())
    if not found:
        raise InputError("no input parquet files found")
    return [found[k] for k in sorted(found)]


def _stem(path: Path) -> str:
    stem = path.name[: -len(".parquet")] if path.name.endswith(".parquet") else path.name
    return re.sub(r"[^A-Za-z0-9_-]+", "_", stem)


def default_text_cols(columns: list[str]) -> tuple[str, ...]:
    for name in DEFAULT_TEXT_COLS:
        if name in columns:
            return (name,)
    return (DEFAULT_TEXT_COLS[0],)


# --- one shard -----------------------------------------------------------------------------
_MATCHERS: dict[tuple[str, str, int], Matcher] = {}


def build_matcher(config: MatchConfig) -> Matcher:
    """The matcher of a config (cached per process: workers build it once)."""
    cache_key = (config.labels, config.classnames, config.max_ngram)
    matcher = _MATCHERS.get(cache_key)
    if matcher is None:
        terms = terms_for(load_label_set(config.labels), load_term_set(config.classnames))
        matcher = _MATCHERS[cache_key] = Matcher(TermTable(terms, max_ngram=config.max_ngram))
    return matcher


# Why a row cannot be labelled, per row (stats.json "unlabelled_reasons").
REASON_OK, REASON_EMPTY, REASON_NON_TEXT, REASON_TOO_LONG = 0, 1, 2, 3


def caption_text(batch: pa.RecordBatch, cols: tuple[str, ...], max_chars: int) -> tuple[pa.Array, np.ndarray]:
    """The caption of each row (text columns joined by a space) and why a row has none.

    Returns the caption column (null where unusable) and an int8 reason per row:
    ``REASON_TOO_LONG`` (over ``max_chars``; nulled), ``REASON_NON_TEXT`` (no text, and a
    caption column held a value that is not text: a number, invalid UTF-8), ``REASON_EMPTY``
    (null, empty or blank), else ``REASON_OK``.
    """
    parts = []
    non_text = np.zeros(batch.num_rows, dtype=bool)
    for col in cols:
        arr = batch.column(col)
        if pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_decode()
        if pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type):
            arr = arr.cast(pa.string())
        elif pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
            decoded = _decode_binary(arr)
            non_text |= pc.is_valid(arr).to_numpy(zero_copy_only=False) & pc.is_null(decoded).to_numpy(
                zero_copy_only=False
            )
            arr = decoded
        elif (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)) and (
            pa.types.is_string(arr.type.value_type) or pa.types.is_large_string(arr.type.value_type)
        ):
            arr = pc.binary_join(arr.cast(pa.list_(pa.string())), " ")  # YFCC-style tag lists
        elif not pa.types.is_string(arr.type):
            non_text |= pc.is_valid(arr).to_numpy(zero_copy_only=False)
            arr = pa.nulls(len(arr), pa.string())
        parts.append(arr)
    if len(parts) == 1:
        text = parts[0]
    else:
        text = pc.binary_join_element_wise(*parts, " ", null_handling="replace", null_replacement="")
        all_null = functools.reduce(pc.and_, [pc.is_null(p) for p in parts])
        text = pc.if_else(all_null, pa.nulls(len(text), pa.string()), text)
    too_long = pc.fill_null(pc.greater(pc.utf8_length(text), max_chars), False)
    too_long_np = too_long.to_numpy(zero_copy_only=False)
    if too_long_np.any():
        text = pc.if_else(too_long, pa.nulls(len(text), pa.string()), text)
    blank = pc.fill_null(pc.match_substring_regex(text, r"^\s*$"), True).to_numpy(zero_copy_only=False)
    reasons = np.where(
        too_long_np,
        REASON_TOO_LONG,
        np.where(blank & non_text, REASON_NON_TEXT, np.where(blank, REASON_EMPTY, REASON_OK)),
    ).astype(np.int8)
    return text, reasons


def _decode_binary(arr: pa.Array) -> pa.Array:
    try:
        return arr.cast(pa.string())
    except pa.ArrowInvalid:  # invalid UTF-8 somewhere: decode value by value, bad ones -> null
        out = []
        for value in arr.to_pylist():
            try:
                out.append(value.decode("utf-8") if value is not None else None)
            except UnicodeDecodeError:
                out.append(None)
        return pa.array(out, pa.string())


def _output_schema(input_schema: pa.Schema, add_key: bool) -> pa.Schema:
    fields = list(input_schema)
    if add_key:
        fields.append(schemas.MATCH_ADDED.field(schemas.KEY))
    for name in ADDED_COLUMNS:
        fields.append(schemas.MATCH_ADDED.field(name))
    return pa.schema(fields, metadata=input_schema.metadata)


def _renamed_collisions(schema: pa.Schema, where: str) -> dict[str, str]:
    renames = {}
    for name in ADDED_COLUMNS:
        if name in schema.names:
            renames[name] = f"input_{name}"
            log.warning(
                "%s: input column %r is kept as %r (janus match writes its own %r)", where, name, renames[name], name
            )
    return renames


def open_parquet(path: Path) -> pq.ParquetFile:
    """Open a parquet file or raise an InputError naming it."""
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable parquet file ({exc})") from None


def check_columns(path: Path, schema: pa.Schema, config: MatchConfig) -> tuple[str, ...]:
    """Validate the text and truth columns of one input; return the text columns to use."""
    cols = config.text_cols or default_text_cols(schema.names)
    where = f"{path}"
    missing = [c for c in cols if c not in schema.names]
    if missing:
        flag = (
            "--text-col"
            if config.text_cols
            else "the default caption column (TEXT, else caption; choose with --text-col)"
        )
        raise SchemaError(
            f"{where}: caption column {', '.join(repr(c) for c in missing)} not found ({flag}); "
            f"columns present: {', '.join(schema.names)}"
        )
    if config.truth_col and config.truth_col not in schema.names:
        raise SchemaError(
            f"{where}: --truth-col {config.truth_col!r} not found; columns present: {', '.join(schema.names)}"
        )
    return cols


def match_table_batch(
    batch: pa.RecordBatch,
    matcher: Matcher,
    config: MatchConfig,
    text_cols: tuple[str, ...],
    stats: ShardStats,
    keys: pa.Array | None,
    renames: dict[str, str],
    out_schema: pa.Schema,
) -> tuple[pa.RecordBatch, np.ndarray]:
    """Label one record batch; returns the output batch and each row's reason code (see :func:`caption_text`)."""
    text, reasons = caption_text(batch, text_cols, config.max_caption_chars)
    counts = np.bincount(reasons, minlength=4)
    stats.empty += int(counts[REASON_EMPTY])
    stats.non_text += int(counts[REASON_NON_TEXT])
    stats.too_long += int(counts[REASON_TOO_LONG])
    result = matcher.match(text)
    label = matcher.choose(result, config.strategy)
    stats.rows += batch.num_rows
    label_np = label.to_numpy(zero_copy_only=False)
    has = label_np >= 0
    stats.labelled += int(has.sum())
    stats.per_class.update(label_np[has].tolist())
    if config.truth_col:
        _truth_stats(batch.column(config.truth_col), label_np, stats)
    columns = list(batch.columns)
    names = [renames.get(n, n) for n in batch.schema.names]
    if keys is not None:
        columns.append(keys)
        names.append(schemas.KEY)
    columns += [label, result.labels, result.matched_terms]
    names += list(ADDED_COLUMNS)
    return pa.RecordBatch.from_arrays(columns, schema=out_schema), reasons


def _truth_stats(truth: pa.Array, label_np: np.ndarray, stats: ShardStats) -> None:
    try:
        truth_np = pc.fill_null(truth.cast(pa.int64()), -1).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise SchemaError(f"--truth-col: values must be integer class ids, got type {truth.type}") from None
    valid = truth_np >= 0
    stats.truth_missing += int((~valid).sum())
    stats.truth_per_class.update(truth_np[valid].tolist())
    correct = (label_np == truth_np) & valid & (label_np >= 0)
    stats.correct += int(correct.sum())
    stats.correct_per_class.update(label_np[correct].tolist())


def match_shard(task: ShardTask, progress_queue: Any = None) -> dict[str, Any]:
    """Label one input file into ``NNNNN.parquet``; returns its stats (also written as the marker).

    Raises:
        InputError / SchemaError: the file is unreadable or lacks a needed column.
    """
    config = task.config
    path = Path(task.path)
    matcher = build_matcher(config)
    stage_dir = Path(task.out_dir)
    name = shard_name(task.index)
    parquet = open_parquet(path)
    schema = parquet.schema_arrow
    text_cols = check_columns(path, schema, config)
    renames = _renamed_collisions(schema, str(path))
    has_key = schemas.KEY in schema.names
    in_schema = pa.schema([f.with_name(renames.get(f.name, f.name)) for f in schema], metadata=schema.metadata)
    out_schema = _output_schema(in_schema, add_key=not has_key)
    stats = ShardStats(input=os.fspath(path))
    stem = task.stem or _stem(path)
    row = 0
    try:
        with atomic_parquet_writer(stage_dir / f"{name}.parquet", out_schema) as writer:
            for batch in parquet.iter_batches(batch_size=config.batch_size):
                keys = None
                if not has_key:
                    numbers = pa.array(range(row, row + batch.num_rows), pa.int64()).cast(pa.string())
                    keys = pc.binary_join_element_wise(pa.scalar(stem), numbers, "-")
                out, _ = match_table_batch(batch, matcher, config, text_cols, stats, keys, renames, out_schema)
                if row == 0:
                    schemas.validate(pa.Table.from_batches([out]), schemas.MATCH_ADDED, f"match output of {path}")
                writer.write_batch(out)
                row += batch.num_rows
                if progress_queue is not None:
                    progress_queue.put(batch.num_rows)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: corrupt or unreadable parquet at row {row} ({exc})") from None
    result = stats.to_json()
    result.update(shard=name, output=f"{name}.parquet")
    ShardDir(stage_dir).mark_done(name, result)
    return result


# --- the whole stage -----------------------------------------------------------------------
def _volatile() -> tuple[str, ...]:
    return (
        "workers",
        "overwrite",
        "skip_bad_inputs",
        "min_label_accuracy",
        "min_utilization",
        "plot",
        "batch_size",
        "engine",
    )


def prepare(config: MatchConfig) -> tuple[list[Path], StageDir]:
    """Validate options and inputs, then open (or resume) the output directory."""
    config.validate()
    build_matcher(config)  # label/term errors surface before any output is touched
    paths = resolve_inputs(config.inputs)
    if not config.skip_bad_inputs:
        for path in paths:  # validate every input schema up front
            check_columns(path, open_parquet(path).schema_arrow, config)
    resolved = replace(config, inputs=tuple(os.fspath(p) for p in paths))
    stage = StageDir(
        config.out,
        "match",
        resolved,
        inputs=[fingerprint_file(p) for p in paths],
        overwrite=config.overwrite,
        volatile_keys=_volatile(),
    )
    return paths, stage


def run_match(config: MatchConfig, progress: Progress = NULL_PROGRESS) -> dict[str, Any]:
    """Run ``janus match``: label every input shard, write ``stats.json``, apply the gates.

    Returns:
        The stats written to ``DIR/stats.json``.

    Raises:
        JanusError: bad options or inputs (before work starts), a bad input without
            ``--skip-bad-inputs``, or (``GateError``) a quality gate that falls short —
            raised after the outputs and stats are written.
    """
    paths, stage = prepare(config)
    tasks = [ShardTask(i, os.fspath(p), os.fspath(stage.path), config, _stem(p)) for i, p in enumerate(paths)]
    todo = [t for t in tasks if not stage.is_done(shard_name(t.index))]
    if len(todo) < len(tasks):
        log.info("%d of %d shard(s) already done; skipping them", len(tasks) - len(todo), len(tasks))
    total_rows = sum(_row_count(Path(t.path)) for t in todo)
    progress.start("match", total=total_rows, unit="captions")
    bad: list[dict[str, str]] = []
    if config.engine == "spark":
        from janus_build.match.spark import run_spark

        run_spark(todo, stage, config, progress, bad)
    else:
        _run_local(todo, config, progress, bad)
    progress.finish("match")
    return finish(stage, tasks, config, bad)


def _row_count(path: Path) -> int:
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowException, OSError):
        return 0


def _run_local(todo: list[ShardTask], config: MatchConfig, progress: Progress, bad: list[dict[str, str]]) -> None:
    if config.workers == 1 or len(todo) <= 1:
        for task in todo:
            _guard(task, config, bad, lambda t=task: match_shard(t, _Forward(progress)))
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    context = mp.get_context("spawn")  # Arrow's thread pools make fork unsafe
    with context.Manager() as manager:
        queue = manager.Queue()
        with ProcessPoolExecutor(max_workers=min(config.workers, len(todo)), mp_context=context) as pool:
            futures = {pool.submit(match_shard, task, queue): task for task in todo}
            pending = set(futures)
            while pending:
                _drain(queue, progress)
                done = {f for f in pending if f.done()}
                for future in done:
                    _guard(futures[future], config, bad, future.result)
                pending -= done
                if pending:
                    import time

                    time.sleep(0.05)
            _drain(queue, progress)


class _Forward:
    """A queue-like object that advances the progress directly (single-process runs)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress

    def put(self, rows: int) -> None:
        self.progress.advance("match", rows)


def _drain(queue: Any, progress: Progress) -> None:
    import queue as queue_module

    while True:
        try:
            progress.advance("match", queue.get_nowait())
        except queue_module.Empty:
            return


def _guard(task: ShardTask, config: MatchConfig, bad: list[dict[str, str]], call: Any) -> None:
    try:
        call()
    except InputError as exc:
        if not config.skip_bad_inputs:
            raise
        log.warning("skipping bad input: %s", exc)
        bad.append({"path": task.path, "error": str(exc)})


def finish(stage: StageDir, tasks: list[ShardTask], config: MatchConfig, bad: list[dict[str, str]]) -> dict[str, Any]:
    """Sum the shard stats into ``stats.json``, draw the chart, mark the stage complete, check gates."""
    from janus_build.match.quality import check_gates, plot_per_class_accuracy, summarize

    total = ShardStats()
    shards = 0
    for task in tasks:
        name = shard_name(task.index)
        if stage.is_done(name):
            total.add(ShardStats.from_json(stage.read_stats(name)))
            shards += 1
    label_set = load_label_set(config.labels)
    table = build_matcher(config).table
    extra = {
        "shards": shards,
        "inputs": len(tasks),
        "skipped_inputs": bad,
        "unmatchable_terms": [{"class_id": c, "term": t} for c, t in table.too_long],
    }
    stats = summarize(total, config, label_set.names, extra)
    atomic_write_json(stage.path / STATS_FILE, stats)
    if config.plot and config.truth_col:
        plot_per_class_accuracy(stats, label_set.names, stage.path / "_per_class_accuracy.png")
    stage.finish({k: stats[k] for k in ("rows", "labelled", "utilization") if k in stats})
    check_gates(stats, config.min_label_accuracy, config.min_utilization)
    return stats
