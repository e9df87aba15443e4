"""Read each labelled source into a slim candidate index (no image bytes, no long text).

A candidate row is one labelled sample with its image location: ``key``, ``label``,
``shard``/``image_offset``/``image_size`` (where its bytes lie), ``meta_row`` (its row in the
source's metadata files, read again later only for the selected rows), ``id_value`` (photo id)
and ``url``. Everything else stays on disk until the selected samples are written.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from janus_build import schemas
from janus_build.balance.spec import SourceSpec
from janus_build.core import shards as images
from janus_build.errors import InputError, SchemaError
from janus_build.labels import LabelSet

log = logging.getLogger(__name__)

MAX_EXAMPLE_KEYS = 5
_ID_COLUMNS = ("photo_id", "photoid", "source_id")
_URL_COLUMNS = ("url", "URL", "photo_url", "image_url")
_SLIM_INDEX = ("key", "shard", "image_ext", "image_offset", "image_size", "status")

CANDIDATE_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string()),
        pa.field("label", pa.int32()),
        pa.field("shard", pa.string()),
        pa.field("image_ext", pa.string()),
        pa.field("image_offset", pa.int64()),
        pa.field("image_size", pa.int64()),
        pa.field("meta_row", pa.int64()),
        pa.field("id_value", pa.string()),
        pa.field("url", pa.string()),
    ]
)


@dataclass
class LoadedSource:
    """A source's candidates plus what is needed to read its metadata back later."""

    spec: SourceSpec
    position: int
    label_source: str
    candidates: pa.Table
    meta_files: list[tuple[Path, int]]  # metadata parquet files in row order, with row counts
    images_dir: Path  # the image stage holding the tars (``images=``, or its ``images/`` folder)
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def read_metadata(self, rows: np.ndarray) -> pa.Table:
        """Return the full metadata rows ``rows`` (sorted row numbers) with a ``_meta_row`` column."""
        pieces = []
        start = 0
        rows = np.asarray(rows, dtype=np.int64)
        for path, count in self.meta_files:
            lo, hi = np.searchsorted(rows, [start, start + count])
            if hi > lo:
                table = pq.read_table(path)
                local = rows[lo:hi] - start
                piece = table.take(pa.array(local))
                piece = piece.append_column("_meta_row", pa.array(rows[lo:hi], pa.int64()))
                pieces.append(piece)
            start += count
        if not pieces:
            return pa.table({"_meta_row": pa.array([], pa.int64())})
        return pa.concat_tables(pieces, promote_options="permissive")

    def index_metadata(self, keys: pa.Array, columns: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        """For a ``match=`` source: the image stage's own ``columns`` (licence, owner, title...)
        of ``keys``, by key. The match output carries only what the caption table had, while
        the download that made the image stage often recorded more (img2dataset's
        ``save_additional_columns``, a LAION ``LICENSE``); balance falls back to it per field."""
        if not self.spec.match:
            return {}
        found: dict[str, dict[str, Any]] = {}
        for path in _shard_files(self.images_dir):
            names = pq.read_schema(path).names
            wanted = [c for c in columns if c in names and c != "key"]
            if not wanted:
                continue
            table = pq.read_table(path, columns=["key", *wanted])
            table = table.filter(pc.is_in(table.column("key"), value_set=keys))
            for row in table.to_pylist():
                found.setdefault(str(row.pop("key")), row)
        return found


def _shard_files(directory: Path) -> list[Path]:
    return [directory / f"{n}.parquet" for n in images.shard_names(directory)]


def _read_files(files: list[Path], wanted: tuple[str, ...], where: str) -> tuple[pa.Table, list[tuple[Path, int]]]:
    """Read the ``wanted`` columns present in each file; return the concatenation and row counts."""
    tables, counts = [], []
    for path in files:
        try:
            names = pq.read_schema(path).names
            table = pq.read_table(path, columns=[c for c in wanted if c in names])
        except (OSError, pa.ArrowInvalid) as exc:
            raise InputError(f"{where}: cannot read {path} ({exc})") from None
        tables.append(table)
        counts.append((path, table.num_rows))
    if not tables:
        raise InputError(f"{where}: no parquet files")
    return pa.concat_tables(tables, promote_options="permissive"), counts


def _string_column(table: pa.Table, candidates: tuple[str, ...]) -> pa.Array:
    for name in candidates:
        if name in table.column_names:
            return pc.cast(table.column(name), pa.string()).combine_chunks()
    return pa.nulls(table.num_rows, pa.string())


def _image_index(spec: SourceSpec) -> tuple[pa.Table, list[tuple[Path, int]], Path]:
    directory = Path(spec.images)
    where = f"source {spec.name!r} images={directory}"
    if not directory.is_dir():
        raise InputError(f"{where}: no such directory")
    files = _shard_files(directory)
    if not files and _shard_files(directory / "images"):  # a janus fetch output: its images/ stage
        directory = directory / "images"
        files = _shard_files(directory)
    if not files:
        raise InputError(f"{where}: no finished image shards (expected NNNNN.tar + NNNNN.parquet + NNNNN_stats.json)")
    wanted = (*_SLIM_INDEX, "label", "class_id", *(c for c in (spec.label_col,) if c), *_ID_COLUMNS, *_URL_COLUMNS)
    table, counts = _read_files(files, tuple(dict.fromkeys(wanted)), where)
    schemas.require_columns(table.column_names, ("key", "shard", "image_offset", "image_size", "status"), where)
    return table, counts, directory


def _has_image(table: pa.Table) -> np.ndarray:
    status = pc.fill_null(pc.equal(table.column("status"), "success"), False)
    has = pc.and_(status, pc.is_valid(table.column("image_offset")))
    return np.asarray(has.to_numpy(zero_copy_only=False), dtype=bool)


def _labels_array(values: pa.ChunkedArray | pa.Array, where: str) -> np.ndarray:
    try:
        arr = pc.cast(values, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise SchemaError(f"{where}: labels are not integers ({exc})") from None
    return np.asarray(pc.fill_null(arr, schemas.NO_LABEL).to_numpy(zero_copy_only=False), dtype=np.int64)


def _tag_labels(spec: SourceSpec) -> tuple[dict[str, int], Counter, dict[str, list[str]]]:
    """Labels from a tags table: the latest decision per (key, class, annotator) counts; a
    (key, class) pair is a label when at least one annotator says ``in`` and none says ``out``
    (``unsure`` abstains); a key left with more than one class is ambiguous and dropped."""
    path = Path(spec.tags)  # type: ignore[arg-type]
    where = f"source {spec.name!r} tags={path}"
    if not path.exists():
        raise InputError(f"{where}: no such file")
    try:
        if path.is_dir():
            files = sorted(path.glob("*.parquet"))
            if not files:
                raise InputError(f"{where}: no parquet files in the directory")
            table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")
        else:
            table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{where}: unreadable ({exc})") from None
    schemas.require_columns(table.column_names, ("key", "class_id", "decision"), where)
    rows = table.select(
        [c for c in ("key", "class_id", "decision", "annotator", "time") if c in table.column_names]
    ).to_pylist()
    bad = [r for r in rows if r["decision"] not in schemas.TAG_DECISIONS]
    if bad:
        raise InputError(
            f"{where}: key {bad[0]['key']!r} has decision {bad[0]['decision']!r}; expected one of {', '.join(schemas.TAG_DECISIONS)}"
        )
    latest: dict[tuple[str, int, str], tuple[tuple[Any, ...], str]] = {}
    for i, r in enumerate(rows):
        ident = (r["key"], int(r["class_id"]), r.get("annotator") or "")
        # a later time wins; rows without a time lose to timed ones; file order breaks ties
        stamp = (True, r["time"], i) if r.get("time") is not None else (False, 0, i)
        if ident not in latest or stamp > latest[ident][0]:
            latest[ident] = (stamp, r["decision"])
    votes: dict[tuple[str, int], set[str]] = {}
    for (key, class_id, _annotator), (_stamp, decision) in latest.items():
        votes.setdefault((key, class_id), set()).add(decision)
    per_key: dict[str, list[int]] = {}
    counts: Counter = Counter()
    examples: dict[str, list[str]] = {}
    for (key, class_id), decisions in sorted(votes.items()):
        if "in" in decisions and "out" in decisions:
            counts["tag_disagreement"] += 1
            examples.setdefault("tag_disagreement", [])
            if len(examples["tag_disagreement"]) < MAX_EXAMPLE_KEYS:
                examples["tag_disagreement"].append(key)
        elif "in" in decisions:
            per_key.setdefault(key, []).append(class_id)
    labels: dict[str, int] = {}
    for key, classes in per_key.items():
        if len(classes) > 1:
            counts["tag_ambiguous"] += 1
            examples.setdefault("tag_ambiguous", [])
            if len(examples["tag_ambiguous"]) < MAX_EXAMPLE_KEYS:
                examples["tag_ambiguous"].append(key)
        else:
            labels[key] = classes[0]
    return labels, counts, examples


def _match_strategy(directory: Path, where: str) -> str:
    from janus_build.core.stage import read_manifest

    strategy = ((read_manifest(directory) or {}).get("config") or {}).get("strategy")
    if strategy not in ("sc", "strict", "mc"):
        log.warning("%s: manifest.json names no match strategy; label_source is recorded as 'sc'", where)
        strategy = "sc"
    return strategy


def load_source(
    spec: SourceSpec, position: int, label_set: LabelSet, *, unknown_labels: str, missing_images: str
) -> LoadedSource:
    """Read one source's slim candidate index.

    Raises:
        InputError: unreadable inputs, a source without labels, labels outside the label set
            (unless ``unknown_labels='drop'``), missing image bytes (``missing_images='error'``).
    """
    where = f"source {spec.name!r}"
    if spec.captions:  # checked now: the captions are read only after --out has recorded the options
        captions = Path(spec.captions)
        if not (captions.is_file() or (captions.is_dir() and any(captions.glob("*.parquet")))):
            raise InputError(f"{where} captions={captions}: no caption parquet files (expected janus caption output)")
    index, index_files, images_dir = _image_index(spec)
    has_image = _has_image(index)
    keys = index.column("key").combine_chunks()
    counts: Counter = Counter()
    examples: dict[str, list[str]] = {}

    if spec.match:
        match_dir = Path(spec.match)
        mwhere = f"{where} match={match_dir}"
        if not match_dir.is_dir():
            raise InputError(f"{mwhere}: no such directory")
        files = sorted(p for p in match_dir.glob("*.parquet"))
        if not files:
            raise InputError(f"{mwhere}: no parquet files (expected janus match output)")
        meta, meta_files = _read_files(files, ("key", "label", *_ID_COLUMNS, *_URL_COLUMNS), mwhere)
        schemas.require_columns(meta.column_names, ("key", "label"), mwhere)
        label_source = _match_strategy(match_dir, mwhere)
        labels = _labels_array(meta.column("label"), mwhere)
        meta_keys = meta.column("key").combine_chunks()
        # where is each matched key's image? (-1: not in the image stage)
        pos = np.asarray(
            pc.fill_null(pc.index_in(meta_keys, value_set=keys), -1).to_numpy(zero_copy_only=False), dtype=np.int64
        )
        located = pos >= 0
        image_ok = np.zeros(len(pos), dtype=bool)
        image_ok[located] = has_image[pos[located]]
        loc = np.where(located, pos, 0)
        cand = _assemble(meta_keys, labels, index, loc, np.arange(meta.num_rows), meta)
    else:
        meta, meta_files = index, index_files
        image_ok = has_image
        cand_keys = keys
        if spec.tags:
            label_source = "tagged"
            tag_labels, counts, examples = _tag_labels(spec)
            key_list = cand_keys.to_pylist()
            labels = np.fromiter(
                (tag_labels.get(k, schemas.NO_LABEL) for k in key_list), dtype=np.int64, count=len(key_list)
            )
            missing = sorted(set(tag_labels) - set(key_list))
            if missing:
                _missing(spec, missing, missing_images, counts, examples, "tagged key not in the image stage")
        else:
            label_source = spec.labels or "ground_truth"
            column = spec.label_col or ("label" if "label" in index.column_names else "class_id")
            if column not in index.column_names:
                wanted = repr(column) if spec.label_col else "'label' or 'class_id'"
                raise InputError(
                    f"{where}: no labels: the image index of {spec.images} has no {wanted} column "
                    f"(columns: {', '.join(pq.read_schema(index_files[0][0]).names)}); name it with label_col=COLUMN, or use tags= / match="
                )
            labels = _labels_array(index.column(column), f"{where} column {column!r}")
        cand = _assemble(cand_keys, labels, index, np.arange(index.num_rows), np.arange(index.num_rows), meta)

    labelled = labels != schemas.NO_LABEL
    counts["rows"] += int(len(labels))
    counts["unlabelled"] += int((~labelled).sum())
    known = np.zeros(len(labels), dtype=bool)
    ids = np.asarray(label_set.ids, dtype=np.int64)
    known[labelled] = np.isin(labels[labelled], ids)
    unknown = labelled & ~known
    cand_keys_np = cand.column("key")
    if unknown.any():
        first = int(np.flatnonzero(unknown)[0])
        if unknown_labels == "error":
            raise InputError(
                f"{where}: key {cand_keys_np[first].as_py()!r} has label {int(labels[first])}, which is not in label set "
                f"{label_set.name!r} ({int(unknown.sum())} such row(s)); use --labels with the right set or --unknown-labels drop"
            )
        sel = np.flatnonzero(unknown)
        _note(
            counts,
            examples,
            "label_not_in_label_set",
            [cand_keys_np[int(i)].as_py() for i in sel[:MAX_EXAMPLE_KEYS]],
            int(unknown.sum()),
        )
    missing_mask = known & ~image_ok
    if missing_mask.any():
        sel = np.flatnonzero(missing_mask)
        _missing(
            spec,
            [cand_keys_np[int(i)].as_py() for i in sel[:MAX_EXAMPLE_KEYS]],
            missing_images,
            counts,
            examples,
            "missing image bytes",
            total=int(missing_mask.sum()),
        )
    keep = known & image_ok
    if not keep.any():
        raise InputError(
            f"{where}: no usable sample (rows: {len(labels)}, labelled: {int(labelled.sum())}, "
            f"in the label set: {int(known.sum())}, with image bytes: {int(keep.sum())})"
        )
    cand = cand.filter(pa.array(keep))
    counts["candidates"] += cand.num_rows
    loaded = LoadedSource(
        spec=spec,
        position=position,
        label_source=label_source,
        candidates=cand,
        meta_files=meta_files,
        images_dir=images_dir,
        counts=counts,
        examples=examples,
    )
    log.info("%s: %d candidate(s) of %d row(s) (label source %s)", where, cand.num_rows, len(labels), label_source)
    return loaded


def _note(counts: Counter, examples: dict[str, list[str]], problem: str, keys: list[str], total: int) -> None:
    counts[problem] += total
    bucket = examples.setdefault(problem, [])
    bucket.extend(keys[: MAX_EXAMPLE_KEYS - len(bucket)])


def _missing(
    spec: SourceSpec,
    keys: list[str],
    policy: str,
    counts: Counter,
    examples: dict[str, list[str]],
    what: str,
    total: int | None = None,
) -> None:
    total = len(keys) if total is None else total
    if policy == "error":
        raise InputError(
            f"source {spec.name!r}: key {keys[0]!r}: {what} in images={spec.images} ({total} such row(s)); "
            "fetch the images or pass --missing-images skip"
        )
    log.warning(
        "source %r: %d labelled row(s) without image bytes, e.g. %s; skipped", spec.name, total, ", ".join(keys[:3])
    )
    _note(counts, examples, "missing_image", keys, total)


def _assemble(
    keys: pa.Array, labels: np.ndarray, index: pa.Table, loc: np.ndarray, meta_rows: np.ndarray, meta: pa.Table
) -> pa.Table:
    take = pa.array(loc, pa.int64())
    ext = (
        index.column("image_ext")
        if "image_ext" in index.column_names
        else pa.chunked_array([pa.nulls(index.num_rows, pa.string())])
    )
    id_value = _string_column(meta, _ID_COLUMNS)
    url = _string_column(meta, _URL_COLUMNS)
    if meta is not index:  # a match source: per row, what the match output lacks comes from the image stage
        id_value = pc.coalesce(id_value, _string_column(index, _ID_COLUMNS).take(take))
        url = pc.coalesce(url, _string_column(index, _URL_COLUMNS).take(take))
    return pa.table(
        {
            "key": keys,
            "label": pa.array(np.clip(labels, -(2**31), 2**31 - 1).astype(np.int32)),
            "shard": pc.cast(index.column("shard"), pa.string()).take(take),
            "image_ext": pc.cast(ext, pa.string()).take(take),
            "image_offset": pc.cast(index.column("image_offset"), pa.int64()).take(take),
            "image_size": pc.cast(index.column("image_size"), pa.int64()).take(take),
            "meta_row": pa.array(meta_rows.astype(np.int64)),
            "id_value": id_value,
            "url": url,
        },
        schema=CANDIDATE_SCHEMA,
    )
