"""One input file (or a pack of small ones) in, one labelled shard out: the worker both engines run.

:func:`run_shard` reads the task's input in record batches bounded by rows *and* bytes (no
pre-buffering, a 1 MiB read buffer: memory is flat in file size and caption length), labels
each batch, streams ``NNNNN.parquet`` to the output (atomically) and writes the shard's marker
``_stats/NNNNN.json`` last, with the input's fingerprint, so a changed input is redone. A pack's
members are read whole (each is small), joined and labelled in full batches, so the per-file
cost is one footer read, not a writer, a marker and a dozen Arrow calls per file; its marker
lists every member and their fingerprints (a change to any member redoes the pack).

Failures are split by side: a failure to *read* the input is an :class:`InputError` (which
``--skip-bad-inputs`` may skip); a failure to *write* is an :class:`OutputError` naming the
output (a full disk is never reported as a corrupt input).
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from janus_build import schemas
from janus_build.core import storage
from janus_build.core.stage import shard_name
from janus_build.errors import InputError, SchemaError
from janus_build.labels import load_label_set, load_term_set, terms_for
from janus_build.match.config import DEFAULT_TEXT_COLS, MatchConfig
from janus_build.match.matcher import FALSE, TRUE, Matcher, TermTable, bools, from_numpy, lit, numbers, strings

log = logging.getLogger(__name__)

ADDED_COLUMNS = (schemas.LABEL, schemas.LABELS, schemas.MATCHED_TERMS)
READ_BUFFER = 1 << 20  # bytes read from the input at a time (pre-buffering off)
# Why a row cannot be labelled, per row (_stats.json "unlabelled_reasons").
REASON_OK, REASON_EMPTY, REASON_NON_TEXT, REASON_TOO_LONG = 0, 1, 2, 3
_COUNTERS = ("per_class", "per_label", "truth_per_class", "correct_per_class")


@dataclass(frozen=True)
class ShardInput:
    """One input file of a shard task."""

    location: str  # local absolute path or URI
    file_key: str  # core.keys.path_key of the input relative to the key root
    fingerprint: dict[str, Any]


@dataclass(frozen=True)
class ShardTask:
    """One output shard and the input file(s) it is made from (picklable: sent to workers and executors).

    Usually one input file; a *pack* is a run of consecutive small files with the same columns
    (see :func:`janus_build.match.engine.plan_tasks`), labelled as one shard so that thousands of
    small files cost what one large file does.
    """

    index: int
    inputs: tuple[ShardInput, ...]
    out: Any  # a ShardDir or StoreShardDir
    config: MatchConfig

    @property
    def name(self) -> str:
        return shard_name(self.index)

    @property
    def packed(self) -> bool:
        return len(self.inputs) > 1

    @property
    def location(self) -> str:
        """The input, as messages name it (a pack: its first file and how many more)."""
        first = self.inputs[0].location
        return f"{first} (and {len(self.inputs) - 1} more packed input(s))" if self.packed else first

    @property
    def fingerprint(self) -> dict[str, Any]:
        """What the marker records: the input's fingerprint, or a pack's list of them."""
        if self.packed:
            return {"inputs": [member.fingerprint for member in self.inputs]}
        return self.inputs[0].fingerprint


@dataclass
class ShardStats:
    """Counts of one shard; summed into ``_stats.json``."""

    inputs: list[str] = field(default_factory=list)
    skipped_inputs: list[dict[str, str]] = field(default_factory=list)  # a pack's unreadable members
    rows: int = 0
    labelled: int = 0
    per_class: Counter = field(default_factory=Counter)  # rows per `label`
    per_label: Counter = field(default_factory=Counter)  # rows whose `labels` hold the class (mc)
    empty: int = 0  # null, empty or whitespace-only captions
    non_text: int = 0  # values that are not text (numbers, invalid UTF-8, ...)
    too_long: int = 0
    correct: int = 0
    truth_missing: int = 0
    truth_per_class: Counter = field(default_factory=Counter)
    correct_per_class: Counter = field(default_factory=Counter)  # keyed by the true class

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for name in _COUNTERS:
            out[name] = {str(k): v for k, v in sorted(getattr(self, name).items())}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ShardStats:
        stats = cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k not in _COUNTERS})
        for name in _COUNTERS:
            setattr(stats, name, Counter({int(k): v for k, v in data.get(name, {}).items()}))
        return stats

    def add(self, other: ShardStats) -> None:
        for name in ("rows", "labelled", "empty", "non_text", "too_long", "correct", "truth_missing"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in _COUNTERS:
            getattr(self, name).update(getattr(other, name))


# --- the matcher ---------------------------------------------------------------------------
_MATCHERS: dict[tuple[str, str, int], Matcher] = {}


def build_matcher(config: MatchConfig) -> Matcher:
    """The matcher of a config (cached per process: workers build it once)."""
    cache_key = (config.labels, config.classnames, config.max_ngram)
    matcher = _MATCHERS.get(cache_key)
    if matcher is None:
        terms = terms_for(load_label_set(config.labels), load_term_set(config.classnames))
        matcher = _MATCHERS[cache_key] = Matcher(TermTable(terms, max_ngram=config.max_ngram))
    return matcher


# --- captions ------------------------------------------------------------------------------
def default_text_cols(columns: list[str]) -> tuple[str, ...]:
    for name in DEFAULT_TEXT_COLS:
        if name in columns:
            return (name,)
    return (DEFAULT_TEXT_COLS[0],)


def _text_part(arr: pa.Array, non_text: np.ndarray) -> pa.Array:
    """One caption column as a string array; marks (in ``non_text``) values that are not text."""
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type):
        return arr.cast(pa.string())
    if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
        decoded = _decode_binary(arr)
        non_text |= bools(pc.is_valid(arr)) & bools(pc.is_null(decoded))
        return decoded
    if (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)) and (
        pa.types.is_string(arr.type.value_type) or pa.types.is_large_string(arr.type.value_type)
    ):
        return pc.binary_join(arr.cast(pa.list_(pa.string())), " ")  # YFCC-style tag lists
    if not pa.types.is_string(arr.type):
        non_text |= bools(pc.is_valid(arr))
        return pa.nulls(len(arr), pa.string())
    return arr


def caption_text(batch: pa.RecordBatch, cols: tuple[str, ...], max_chars: int) -> tuple[pa.Array, np.ndarray]:
    """The caption of each row (text columns joined by a space) and why a row has none.

    Returns the caption column (null where unusable) and an int8 reason per row:
    ``REASON_TOO_LONG`` (over ``max_chars``; nulled), ``REASON_NON_TEXT`` (no text, and a
    caption column held a value that is not text: a number, invalid UTF-8), ``REASON_EMPTY``
    (null, empty or blank), else ``REASON_OK``.
    """
    non_text = np.zeros(batch.num_rows, dtype=bool)
    parts = [_text_part(batch.column(col), non_text) for col in cols]
    if len(parts) == 1:
        text = parts[0]
    else:
        text = pc.binary_join_element_wise(*parts, " ", null_handling="replace", null_replacement="")
        all_null = functools.reduce(pc.and_, [pc.is_null(p) for p in parts])
        text = pc.if_else(all_null, pa.nulls(len(text), pa.string()), text)
    too_long_np = np.zeros(len(text), dtype=bool)
    nbytes = pc.binary_length(text)
    if (pc.max(nbytes).as_py() or 0) > max_chars:  # bytes >= characters: most batches stop here
        too_long = pc.fill_null(pc.greater(pc.utf8_length(text), lit(max_chars, pa.int32())), FALSE)
        too_long_np = bools(too_long)
        if too_long_np.any():
            text = pc.if_else(too_long, pa.nulls(len(text), pa.string()), text)
    # blank: empty, or nothing but ASCII white space (a regex on every row cost 4x as much)
    empty = pc.equal(nbytes, lit(0, pa.int32()))  # a row nulled as too long is null: blank anyway
    blank = bools(pc.fill_null(pc.or_(empty, pc.ascii_is_space(text)), TRUE))
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
        return strings(out)


# --- schemas and columns -------------------------------------------------------------------
def output_schema(input_schema: pa.Schema, add_key: bool) -> pa.Schema:
    """The shard schema: every input column, then ``key`` (unless the input has one) and the labels."""
    fields = list(input_schema)
    if add_key:
        fields.append(schemas.MATCH_ADDED.field(schemas.KEY))
    for name in ADDED_COLUMNS:
        fields.append(schemas.MATCH_ADDED.field(name))
    return pa.schema(fields, metadata=input_schema.metadata)


def renamed_collisions(schema: pa.Schema, where: str) -> dict[str, str]:
    """Input columns named like an added column are kept as ``input_<name>``."""
    renames = {}
    for name in ADDED_COLUMNS:
        if name in schema.names:
            renames[name] = f"input_{name}"
            log.warning(
                "%s: input column %r is kept as %r (janus match writes its own %r)", where, name, renames[name], name
            )
    return renames


def open_parquet(location: str) -> pq.ParquetFile:
    """Open a parquet file (local or remote) for streaming, or raise an InputError naming it."""
    try:
        return pq.ParquetFile(storage.open_input(location), pre_buffer=False, buffer_size=READ_BUFFER)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{location}: not a readable parquet file ({str(exc).splitlines()[0]})") from None


def check_columns(where: str, schema: pa.Schema, config: MatchConfig) -> tuple[str, ...]:
    """Validate the text, truth and key columns of one input; return the text columns to use."""
    cols = config.text_cols or default_text_cols(schema.names)
    missing = [c for c in cols if c not in schema.names]
    present = ", ".join(schema.names)
    if missing:
        flag = (
            "--text-col"
            if config.text_cols
            else "the default caption column (TEXT, else caption; choose with --text-col)"
        )
        raise SchemaError(
            f"{where}: caption column {', '.join(repr(c) for c in missing)} not found ({flag}); columns present: {present}"
        )
    for flag, col in (("--truth-col", config.truth_col), ("--key-col", config.key_col)):
        if col and col not in schema.names:
            raise SchemaError(f"{where}: {flag} {col!r} not found; columns present: {present}")
    return cols


def batch_rows(parquet: pq.ParquetFile, config: MatchConfig) -> int:
    """Rows per record batch: ``--batch-size`` at most, and about ``batch_bytes`` of decoded input."""
    meta = parquet.metadata
    if not meta.num_rows:
        return config.batch_size
    total = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    per_row = max(1.0, total / meta.num_rows)
    return max(1, min(config.batch_size, int(config.batch_bytes / per_row)))


# --- labelling -----------------------------------------------------------------------------
def match_table_batch(
    batch: pa.RecordBatch,
    matcher: Matcher,
    config: MatchConfig,
    text_cols: tuple[str, ...],
    stats: ShardStats,
    keys: pa.Array | None,
    out_schema: pa.Schema,
) -> pa.RecordBatch:
    """Label one record batch (counting into ``stats``); returns the output batch."""
    text, reasons = caption_text(batch, text_cols, config.max_caption_chars)
    counts = np.bincount(reasons, minlength=4)
    stats.empty += int(counts[REASON_EMPTY])
    stats.non_text += int(counts[REASON_NON_TEXT])
    stats.too_long += int(counts[REASON_TOO_LONG])
    result = matcher.match(text)
    label = matcher.choose(result, config.strategy)
    stats.rows += batch.num_rows
    label_np = numbers(label)
    has = label_np >= 0
    stats.labelled += int(has.sum())
    stats.per_class.update(_counts(label_np[has]))
    labels_flat = numbers(pc.list_flatten(result.labels))
    if config.strategy == "mc":
        stats.per_label.update(_counts(labels_flat))
    if config.truth_col:
        _truth_stats(batch.column(config.truth_col), label_np, result.labels, config.strategy, stats)
    columns = list(batch.columns)
    if keys is not None:
        columns.append(keys)
    columns += [label, result.labels, result.matched_terms]
    return pa.RecordBatch.from_arrays(columns, schema=out_schema)


def _counts(values: np.ndarray) -> dict[int, int]:
    if not len(values):
        return {}
    counts = np.bincount(values)
    present = counts.nonzero()[0]
    return dict(zip(present.tolist(), counts[present].tolist()))


def _truth_stats(truth: pa.Array, label_np: np.ndarray, labels: pa.ListArray, strategy: str, stats: ShardStats) -> None:
    """Count correct rows: ``label == truth`` (sc, strict), truth among ``labels`` (mc)."""
    try:
        truth_np = numbers(pc.fill_null(truth.cast(pa.int64()), lit(-1, pa.int64())))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise SchemaError(f"--truth-col: values must be integer class ids, got type {truth.type}") from None
    valid = truth_np >= 0
    stats.truth_missing += int((~valid).sum())
    stats.truth_per_class.update(_counts(truth_np[valid]))
    if strategy == "mc":
        flat = numbers(pc.list_flatten(labels))
        parents = numbers(pc.list_parent_indices(labels))
        hit = np.zeros(len(truth_np), dtype=bool)
        hit[parents[flat == truth_np[parents]]] = True
        correct = hit & valid
    else:
        correct = (label_np == truth_np) & valid & (label_np >= 0)
    stats.correct += int(correct.sum())
    stats.correct_per_class.update(_counts(truth_np[correct]))


# --- one shard -----------------------------------------------------------------------------
def _read_batches(parquet: pq.ParquetFile, rows: int, where: str) -> Iterator[pa.RecordBatch]:
    """The input's record batches; a failure to read is an InputError naming the row reached."""
    row = 0
    batches = parquet.iter_batches(batch_size=rows, use_threads=False)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise InputError(
                f"{where}: corrupt or unreadable parquet at row {row} ({str(exc).splitlines()[0]})"
            ) from None
        yield batch
        row += batch.num_rows


def _keys(batch: pa.RecordBatch, config: MatchConfig, member: ShardInput, first_row: int) -> pa.Array | None:
    """The ``key`` column of a batch of ``member`` (None when the input's own ``key`` column is kept)."""
    col = config.key_col
    if col:
        if col == schemas.KEY:
            keys = batch.column(col)
        else:
            keys = batch.column(col).cast(pa.string())
        ok = pc.fill_null(pc.match_substring_regex(keys.cast(pa.string()), r"^[^./\s]+$"), FALSE)
        if not pc.all(ok).as_py():
            bad = pc.indices_nonzero(pc.invert(ok))[0].as_py()
            raise InputError(
                f"{member.location}: row {first_row + bad}: --key-col {col!r} value {keys[bad].as_py()!r} is not "
                "a usable key (null, empty, or holds '.', '/' or white space)"
            )
        return None if col == schemas.KEY else keys
    if schemas.KEY in batch.schema.names:
        return None
    return row_keys([member.file_key], [batch.num_rows], first_row)


def row_keys(file_keys: list[str], counts: list[int], first_row: int = 0) -> pa.Array:
    """:func:`janus_build.core.keys.row_key`, vectorised: ``<file key>-<row>`` for ``counts[i]`` rows of each file."""
    if len(file_keys) == 1:
        numbers = from_numpy(np.arange(first_row, first_row + counts[0]), pa.int64()).cast(pa.string())
        return pc.binary_join_element_wise(lit(file_keys[0], pa.string()), numbers, lit("-", pa.string()))
    sizes = np.asarray(counts, dtype=np.int64)
    starts = np.repeat(np.cumsum(sizes) - sizes, sizes)
    numbers = from_numpy(np.arange(int(sizes.sum()), dtype=np.int64) - starts + first_row, pa.int64())
    owners = from_numpy(np.repeat(np.arange(len(sizes), dtype=np.int32), sizes), pa.int32())
    prefixes = pc.take(strings(file_keys), owners)
    return pc.binary_join_element_wise(prefixes, numbers.cast(pa.string()), lit("-", pa.string()))


@dataclass(frozen=True)
class _Layout:
    """How a shard's input columns map to its output (the first input's schema decides)."""

    schema: pa.Schema  # the input files' schema
    text_cols: tuple[str, ...]
    in_schema: pa.Schema  # the input columns as written (collisions renamed)
    out_schema: pa.Schema

    @property
    def dictionary(self) -> list[str]:
        """The output columns to dictionary-encode: all but ``key``."""
        return list(_dictionary_columns(self.out_schema))


def _layout(where: str, schema: pa.Schema, config: MatchConfig) -> _Layout:
    text_cols = check_columns(where, schema, config)
    renames = renamed_collisions(schema, where)
    in_schema = pa.schema([f.with_name(renames.get(f.name, f.name)) for f in schema], metadata=schema.metadata)
    add_key = schemas.KEY not in schema.names or (config.key_col not in (None, schemas.KEY))
    if add_key and schemas.KEY in schema.names:  # --key-col replaces an input `key` column
        raise SchemaError(f"{where}: has a 'key' column; --key-col {config.key_col!r} cannot replace it")
    return _Layout(schema, text_cols, in_schema, output_schema(in_schema, add_key=add_key))


@functools.lru_cache(maxsize=16)  # once per schema, not per shard: it writes a file to a buffer
def _dictionary_columns(schema: pa.Schema) -> tuple[str, ...]:
    """Every parquet column of ``schema`` but ``key``, by its path (a list's is ``name.list.element``):
    keys are unique, so dictionary-encoding them is wasted work (about 15 % of writing a shard)."""
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_batches([], schema=schema), sink)  # schema.empty_table() imports pandas
    paths = pq.ParquetFile(pa.BufferReader(sink.getvalue())).schema
    return tuple(paths.column(i).path for i in range(len(paths)) if paths.column(i).path != schemas.KEY)


def match_shard(task: ShardTask, progress: Any = None, read_ahead: Any = None) -> dict[str, Any]:
    """Label one task's input(s) into ``NNNNN.parquet``; returns its stats (also written as the marker).

    ``read_ahead``: a future of :func:`read_pack` for a pack whose members were read ahead.

    Raises:
        InputError / SchemaError: an input cannot be read or lacks a needed column (a pack's
            member is skipped instead, and listed in the marker, with ``--skip-bad-inputs``).
        OutputError: the shard or its marker cannot be written (full disk, read-only --out, ...).
    """
    stats = ShardStats(inputs=[member.location for member in task.inputs])
    if task.packed:
        return _write_shard(task, *_pack_source(task, stats, read_ahead), stats, progress)
    parquet = open_parquet(task.location)
    try:
        layout = _layout(task.location, parquet.schema_arrow, task.config)
        rows = batch_rows(parquet, task.config)
        return _write_shard(task, layout, _file_batches(parquet, rows, task.config, task.inputs[0]), stats, progress)
    finally:
        parquet.close(force=True)  # a remote input's handle too


def _file_batches(
    parquet: pq.ParquetFile, rows: int, config: MatchConfig, member: ShardInput
) -> Iterator[tuple[pa.RecordBatch, pa.Array | None]]:
    """``(batch, keys)`` of one input file, streamed."""
    row = 0
    for batch in _read_batches(parquet, rows, member.location):
        yield batch, _keys(batch, config, member, row)
        row += batch.num_rows


def read_pack(task: ShardTask) -> tuple[_Layout | None, list[tuple[ShardInput, Any]]]:
    """Every member of a pack read whole, in order: ``(member, batches or its InputError)``.

    Also returns the pack's layout (from its first readable member; None if there is none).
    Reading is I/O and pyarrow decoding (the GIL released), so the local engine calls this for
    the next pack in a thread while the current one is matched.
    """
    layout: _Layout | None = None
    out: list[tuple[ShardInput, Any]] = []
    for member in task.inputs:
        try:
            batches, layout = _read_member(member, task.config, layout)
        except InputError as exc:
            batches = exc
        out.append((member, batches))
    return layout, out


def _pack_source(task: ShardTask, stats: ShardStats, read_ahead: Any = None) -> tuple[_Layout, Iterator[Any]]:
    """The layout and ``(batch, keys)`` of a pack: its members read whole, joined, cut to batch size.

    ``read_ahead``: a future of :func:`read_pack`'s result, else the pack is read here. A member
    that cannot be read is skipped and listed in ``stats.skipped_inputs`` with
    ``--skip-bad-inputs``; without it, its InputError stops the shard (nothing is written).
    """
    config = task.config
    layout, members = read_ahead.result() if read_ahead is not None else read_pack(task)
    read: list[tuple[ShardInput, list[pa.RecordBatch]]] = []
    for member, got in members:
        if isinstance(got, InputError):
            if not config.skip_bad_inputs:
                got.path = member.location  # run_shard names the member, not the pack
                raise got
            log.warning("skipping bad input: %s", got)
            stats.skipped_inputs.append({"path": member.location, "error": str(got)})
            continue
        read.append((member, got))
    if layout is None:
        raise InputError(f"{task.location}: none of the packed inputs could be read")
    return layout, _pack_batches(read, config, layout)


def _pack_batches(
    read: list[tuple[ShardInput, list[pa.RecordBatch]]], config: MatchConfig, layout: _Layout
) -> Iterator[tuple[pa.RecordBatch, pa.Array | None]]:
    keys = _pack_keys(read, config, layout)
    batches = [pa.RecordBatch.from_arrays(b.columns, schema=layout.in_schema) for _, got in read for b in got]
    table = pa.Table.from_batches(batches, schema=layout.in_schema).combine_chunks()
    rows = max(1, min(config.batch_size, int(config.batch_bytes * table.num_rows / max(1, table.nbytes))))
    for start in range(0, table.num_rows, rows):
        for batch in table.slice(start, rows).to_batches():
            yield batch, (keys.slice(start, batch.num_rows) if keys is not None else None)


def _pack_keys(read: list[tuple[ShardInput, list[pa.RecordBatch]]], config: MatchConfig, layout: _Layout) -> Any:
    """The ``key`` column of a whole pack (None when the inputs' own ``key`` column is kept)."""
    if not config.key_col:
        if schemas.KEY in layout.schema.names:
            return None
        counts = [sum(b.num_rows for b in got) for _, got in read]
        return row_keys([member.file_key for member, _ in read], counts)
    parts = []
    for member, got in read:
        row = 0
        for batch in got:
            parts.append(_keys(batch, config, member, row))
            row += batch.num_rows
    return None if config.key_col == schemas.KEY else pa.chunked_array(parts, pa.string()).combine_chunks()


def _read_member(
    member: ShardInput, config: MatchConfig, layout: _Layout | None
) -> tuple[list[pa.RecordBatch], _Layout]:
    """A pack member read whole (it is small), checked against the pack's columns."""
    parquet = open_parquet(member.location)
    try:
        schema = parquet.schema_arrow
        if layout is None:
            layout = _layout(member.location, schema, config)
        elif not schema.equals(layout.schema, check_metadata=False):
            raise InputError(f"{member.location}: its columns changed while the run was going; run again to redo it")
        return list(_read_batches(parquet, max(1, parquet.metadata.num_rows), member.location)), layout
    finally:
        parquet.close(force=True)


def _write_shard(
    task: ShardTask, layout: _Layout, source: Iterator[Any], stats: ShardStats, progress: Any
) -> dict[str, Any]:
    """Label ``source`` (``(batch, keys)`` pairs) into the shard, then write the marker."""
    config = task.config
    matcher = build_matcher(config)
    target = task.out.shard_path(task.name)
    try:
        with task.out.parquet_writer(task.name, layout.out_schema, use_dictionary=layout.dictionary) as writer:
            first = True
            for batch, keys in source:
                out = match_table_batch(batch, matcher, config, layout.text_cols, stats, keys, layout.out_schema)
                if first:
                    schemas.validate(
                        pa.Table.from_batches([out]), schemas.MATCH_ADDED, f"match output of {task.location}"
                    )
                    first = False
                writer.write_batch(out)
                if progress is not None:
                    progress(batch.num_rows)
        result = stats.to_json()
        result.update(shard=task.name, output=f"{task.name}.parquet")
        task.out.mark_done(task.name, result, task.fingerprint)
    except OSError as exc:  # only the output side gets here: reads raise InputError above
        # The same OSError, naming the output file, so the CLI reports it as every stage's write error.
        reason = exc.strerror or str(exc).splitlines()[0]
        raise OSError(exc.errno, reason, str(target)) from exc
    return result


def run_shard(task: ShardTask, progress: Any = None, read_ahead: Any = None) -> dict[str, Any]:
    """:func:`match_shard`, with a bad input returned as ``{"bad": {...}}`` instead of raised.

    Both engines call this: the caller decides whether a bad input stops the run
    (``--skip-bad-inputs``). Output errors are raised.
    """
    try:
        return {"stats": match_shard(task, progress, read_ahead)}
    except InputError as exc:
        path = getattr(exc, "path", task.location)
        return {"bad": {"path": path, "error": str(exc), "kind": type(exc).__name__}}
