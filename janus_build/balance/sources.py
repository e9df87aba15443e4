"""Read each labelled source into a slim candidate index (no image bytes, no long text).

A candidate row is one labelled sample with its image location: ``key``, ``label``,
``shard``/``image_offset``/``image_size`` (where its bytes lie), ``meta_row`` (its row in the
source's metadata files, read again later only for the selected rows), ``id_value`` (photo id),
``url`` and ``all_labels`` (every class a match row matched; used by ``--balance metaclip``).
Everything else stays on disk until the selected samples are written.

:class:`SourceFiles` is what the resharder needs to read a source back (its metadata files,
image stage, captions); it is recorded in the selection plan so a resume reads no index again.
"""

from __future__ import annotations

import dataclasses
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
from janus_build.balance.captions import TEXT_COLUMNS
from janus_build.balance.spec import SourceSpec
from janus_build.core.shards import resolve_image_stage, shard_names
from janus_build.core.stage import fingerprint_file, read_manifest
from janus_build.errors import InputError, SchemaError
from janus_build.labels import LabelSet

log = logging.getLogger(__name__)

MAX_EXAMPLE_KEYS = 5
ID_COLUMNS = ("photo_id", "photoid", "source_id")
URL_COLUMNS = ("url", "URL", "photo_url", "image_url")
_SLIM_INDEX = ("key", "shard", "image_ext", "image_offset", "image_size", "status")
CAPTION_COLUMNS = ("caption_blip", "caption_blip_spellchecked", "caption_blip_title", "prose_caption")

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
        pa.field("all_labels", pa.list_(pa.int32())),
    ]
)


@dataclass
class SourceFiles:
    """Where a source's data lies on disk, and how to read the selected rows back."""

    spec: SourceSpec
    position: int
    label_source: str
    meta_files: list[tuple[Path, int]]  # metadata parquet files in row order, with row counts
    images_dir: Path  # the image shard directory holding the tars

    def to_json(self) -> dict[str, Any]:
        return {  # absolute paths: a resume from another working directory reads the same files
            "spec": dataclasses.asdict(self.spec.resolved()),  # not the text form: a path may hold a comma
            "position": self.position,
            "label_source": self.label_source,
            "meta_files": [[str(p.resolve()), n] for p, n in self.meta_files],
            "images_dir": str(self.images_dir.resolve()),
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> SourceFiles:
        return cls(
            spec=SourceSpec(**value["spec"]),
            position=int(value["position"]),
            label_source=value["label_source"],
            meta_files=[(Path(p), int(n)) for p, n in value["meta_files"]],
            images_dir=Path(value["images_dir"]),
        )

    def input_files(self) -> list[Path]:
        """Every file the selection read (fingerprinted in the plan, so a changed input is caught)."""
        files = [p for p, _ in self.meta_files]
        files += [self.images_dir / f"{n}.parquet" for n in shard_names(self.images_dir)]
        for extra in (self.spec.tags, self.spec.captions):
            if extra and Path(extra).is_file():
                files.append(Path(extra))
            elif extra and Path(extra).is_dir():
                files += sorted(Path(extra).glob("*.parquet"))
        return sorted(set(files))

    def fingerprints(self) -> list[dict[str, Any]]:
        return [fingerprint_file(p) for p in self.input_files()]

    def read_metadata(self, rows: np.ndarray) -> pa.Table:
        """Return the full metadata rows ``rows`` (sorted row numbers) with a ``_meta_row`` column."""
        pieces = []
        start = 0
        rows = np.asarray(rows, dtype=np.int64)
        for path, count in self.meta_files:
            lo, hi = np.searchsorted(rows, [start, start + count])
            if hi > lo:
                piece = pq.read_table(path).take(pa.array(rows[lo:hi] - start))
                pieces.append(piece.append_column("_meta_row", pa.array(rows[lo:hi], pa.int64())))
            start += count
        if not pieces:
            return pa.table({"_meta_row": pa.array([], pa.int64())})
        return pa.concat_tables(pieces, promote_options="permissive")

    def index_metadata(self, keys: pa.Array, columns: tuple[str, ...]) -> dict[str, dict[str, Any]]:
        """For a ``match=`` source: the image stage's own ``columns`` (licence, owner, title...)
        of ``keys``, by key. The match output carries only what the caption table had, while
        the download that made the image stage often recorded more (img2dataset's
        ``save_additional_columns``, a LAION ``LICENSE``); balance falls back to it per field
        (see :mod:`janus_build.balance.provenance` for the precedence)."""
        if not self.spec.match:
            return {}
        found: dict[str, dict[str, Any]] = {}
        for name in shard_names(self.images_dir):
            path = self.images_dir / f"{name}.parquet"
            names = pq.read_schema(path).names
            wanted = [c for c in columns if c in names and c != "key"]
            if not wanted:
                continue
            table = pq.read_table(path, columns=["key", *wanted])
            table = table.filter(pc.is_in(table.column("key"), value_set=keys))
            for row in table.to_pylist():
                found.setdefault(str(row.pop("key")), row)
        return found

    def read_captions(self, keys: pa.Array) -> pa.Table | None:
        """The ``captions=`` rows of ``keys`` (None without ``captions=``)."""
        if not self.spec.captions:
            return None
        directory = Path(self.spec.captions)
        where = f"source {self.spec.name!r} captions={directory}"
        files = caption_files(directory)
        if not files:
            raise InputError(f"{where}: no caption parquet files")
        wanted = ("key", *CAPTION_COLUMNS, *TEXT_COLUMNS, *self.spec.caption_columns)
        pieces = []
        for path in files:
            names = pq.read_schema(path).names
            if "key" not in names:
                raise InputError(f"{where}: {path.name} has no 'key' column")
            table = pq.read_table(path, columns=[c for c in dict.fromkeys(wanted) if c in names])
            pieces.append(table.filter(pc.is_in(table.column("key"), value_set=keys)))
        return pa.concat_tables(pieces, promote_options="permissive")


def caption_files(directory: Path) -> list[Path]:
    if directory.is_dir():
        return sorted(p for p in directory.glob("*.parquet") if not p.name.startswith(("_", ".")))
    return [directory] if directory.is_file() else []


@dataclass
class LoadedSource(SourceFiles):
    """A source's files plus its candidates and what loading it found."""

    candidates: pa.Table = None  # type: ignore[assignment]
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def files(self) -> SourceFiles:
        return SourceFiles(self.spec, self.position, self.label_source, self.meta_files, self.images_dir)


def _parquet_files(directory: Path) -> list[Path]:
    return [directory / f"{n}.parquet" for n in shard_names(directory)]


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
    where = f"source {spec.name!r} images={spec.images}"
    try:
        directory = resolve_image_stage(spec.images, f"source {spec.name!r} images=")
    except InputError as exc:
        raise InputError(f"{where}: {str(exc).split(': ', 1)[-1]}") from None
    directory = directory.resolve()  # one stage spelled two ways is one stage (keys are namespaced by it)
    files = _parquet_files(directory)
    if not files:
        raise InputError(f"{where}: no finished image shards (expected NNNNN.tar + NNNNN.parquet + _stats/NNNNN.json)")
    wanted = (*_SLIM_INDEX, "label", "class_id", *(c for c in (spec.label_col,) if c), *ID_COLUMNS, *URL_COLUMNS)
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


def _read_tags(spec: SourceSpec) -> list[dict[str, Any]]:
    path = Path(spec.tags)  # type: ignore[arg-type]
    where = f"source {spec.name!r} tags={path}"
    if not path.exists():
        raise InputError(f"{where}: no such file")
    try:
        if path.is_dir():
            files = sorted(p for p in path.glob("*.parquet") if not p.name.startswith(("_", ".")))
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
    return rows


def _tag_votes(rows: list[dict[str, Any]]) -> dict[tuple[str, int], set[str]]:
    """The latest decision per (key, class, annotator), gathered per (key, class)."""
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
    return votes


def _tag_labels(spec: SourceSpec) -> tuple[dict[str, int], Counter, dict[str, list[str]]]:
    """Labels from a tags table: the latest decision per (key, class, annotator) counts; a
    (key, class) pair is a label when at least one annotator says ``in`` and none says ``out``
    (``unsure`` abstains); a key left with more than one class is ambiguous and dropped."""
    per_key: dict[str, list[int]] = {}
    counts: Counter = Counter()
    examples: dict[str, list[str]] = {}
    for (key, class_id), decisions in sorted(_tag_votes(_read_tags(spec)).items()):
        if "in" in decisions and "out" in decisions:
            _note(counts, examples, "tag_disagreement", [key], 1)
        elif "in" in decisions:
            per_key.setdefault(key, []).append(class_id)
    labels: dict[str, int] = {}
    for key, classes in per_key.items():
        if len(classes) > 1:
            _note(counts, examples, "tag_ambiguous", [key], 1)
        else:
            labels[key] = classes[0]
    return labels, counts, examples


def _model_label_source(directory: Path, manifest: dict[str, Any], where: str) -> str:
    """A ``janus label`` output's label source (``zeroshot:MODEL``, ``classifier:MODEL``)."""
    found = (manifest.get("summary") or {}).get("label_source")
    if not found:  # a run still under way has no summary yet: the rows say it
        files = sorted(p for p in directory.glob("*.parquet") if not p.name.startswith(("_", ".")))
        values = pq.read_table(files[0], columns=["label_source"]).column(0) if files else None
        found = values[0].as_py() if values is not None and len(values) else None
    if not found:
        raise InputError(f"{where}: a janus label output without a label_source (run janus label again)")
    return str(found)


def _match_strategy(directory: Path, where: str) -> str:
    """The label source of a ``match=`` directory: the match strategy, or a label output's model."""
    manifest = read_manifest(directory) or {}
    if manifest.get("stage") == "label":
        return _model_label_source(directory, manifest, where)
    strategy = (manifest.get("config") or {}).get("strategy")
    if strategy not in ("sc", "strict", "mc"):
        log.warning("%s: the manifest names no match strategy; label_source is recorded as 'sc'", where)
        strategy = "sc"
    return strategy


@dataclass
class _Labelled:
    """One source's rows before filtering: candidates, labels, which have image bytes."""

    candidates: pa.Table
    labels: np.ndarray
    image_ok: np.ndarray
    label_source: str
    meta_files: list[tuple[Path, int]]
    counts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)


def _load_match(spec: SourceSpec, index: pa.Table, has_image: np.ndarray) -> _Labelled:
    match_dir = Path(spec.match)  # type: ignore[arg-type]
    where = f"source {spec.name!r} match={match_dir}"
    if not match_dir.is_dir():
        raise InputError(f"{where}: no such directory")
    files = sorted(p for p in match_dir.glob("*.parquet") if not p.name.startswith(("_", ".")))
    if not files:
        raise InputError(f"{where}: no parquet files (expected janus match output)")
    meta, meta_files = _read_files(files, ("key", "label", "labels", *ID_COLUMNS, *URL_COLUMNS), where)
    schemas.require_columns(meta.column_names, ("key", "label"), where)
    labels = _labels_array(meta.column("label"), where)
    meta_keys = meta.column("key").combine_chunks()
    # where is each matched key's image? (-1: not in the image stage)
    pos = pc.index_in(meta_keys, value_set=index.column("key").combine_chunks())
    pos = np.asarray(pc.fill_null(pos, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    image_ok = np.zeros(len(pos), dtype=bool)
    image_ok[pos >= 0] = has_image[pos[pos >= 0]]
    cand = _assemble(meta_keys, labels, index, np.where(pos >= 0, pos, 0), np.arange(meta.num_rows), meta)
    return _Labelled(cand, labels, image_ok, _match_strategy(match_dir, where), meta_files)


def _load_tagged(spec: SourceSpec, index: pa.Table, files: list[tuple[Path, int]], missing: str) -> _Labelled:
    tag_labels, counts, examples = _tag_labels(spec)
    key_list = index.column("key").to_pylist()
    labels = np.fromiter((tag_labels.get(k, schemas.NO_LABEL) for k in key_list), dtype=np.int64, count=len(key_list))
    absent = sorted(set(tag_labels) - set(key_list))
    if absent:
        _missing(spec, absent, missing, counts, examples, "tagged key not in the image stage")
    rows = np.arange(index.num_rows)
    cand = _assemble(index.column("key").combine_chunks(), labels, index, rows, rows, index)
    return _Labelled(cand, labels, _has_image(index), "tagged", files, counts, examples)


def _load_indexed(spec: SourceSpec, index: pa.Table, files: list[tuple[Path, int]]) -> _Labelled:
    column = spec.label_col or ("label" if "label" in index.column_names else "class_id")
    if column not in index.column_names:
        wanted = repr(column) if spec.label_col else "'label' or 'class_id'"
        raise InputError(
            f"source {spec.name!r}: no labels: the image index of {spec.images} has no {wanted} column "
            f"(columns: {', '.join(pq.read_schema(files[0][0]).names)}); name it with label_col=COLUMN, or use tags= / match="
        )
    labels = _labels_array(index.column(column), f"source {spec.name!r} column {column!r}")
    rows = np.arange(index.num_rows)
    cand = _assemble(index.column("key").combine_chunks(), labels, index, rows, rows, index)
    return _Labelled(cand, labels, _has_image(index), spec.labels or "ground_truth", files)


def load_source(
    spec: SourceSpec, position: int, label_set: LabelSet, *, unknown_labels: str, missing_images: str
) -> LoadedSource:
    """Read one source's slim candidate index.

    Raises:
        InputError: unreadable inputs, a source without labels, labels outside the label set
            (unless ``unknown_labels='drop'``), missing image bytes (``missing_images='error'``).
    """
    where = f"source {spec.name!r}"
    if spec.captions and not caption_files(Path(spec.captions)):  # checked before --out records the options
        raise InputError(f"{where} captions={spec.captions}: no caption parquet files (expected janus caption output)")
    index, index_files, images_dir = _image_index(spec)
    if spec.match:
        got = _load_match(spec, index, _has_image(index))
    elif spec.tags:
        got = _load_tagged(spec, index, index_files, missing_images)
    else:
        got = _load_indexed(spec, index, index_files)
    keep = _usable(spec, label_set, got, unknown_labels, missing_images)
    cand = got.candidates.filter(pa.array(keep))
    got.counts["candidates"] += cand.num_rows
    log.info("%s: %d candidate(s) of %d row(s) (label source %s)", where, cand.num_rows, len(keep), got.label_source)
    return LoadedSource(
        spec=spec,
        position=position,
        label_source=got.label_source,
        meta_files=got.meta_files,
        images_dir=images_dir,
        candidates=cand,
        counts=got.counts,
        examples=got.examples,
    )


def _usable(spec: SourceSpec, label_set: LabelSet, got: _Labelled, unknown_labels: str, missing: str) -> np.ndarray:
    """The rows that become candidates (labelled, in the label set, with image bytes); counts the rest."""
    where = f"source {spec.name!r}"
    labels, counts, keys = got.labels, got.counts, got.candidates.column("key")
    labelled = labels != schemas.NO_LABEL
    counts["rows"] += int(len(labels))
    counts["unlabelled"] += int((~labelled).sum())
    known = np.zeros(len(labels), dtype=bool)
    known[labelled] = np.isin(labels[labelled], np.asarray(label_set.ids, dtype=np.int64))
    unknown = np.flatnonzero(labelled & ~known)
    if len(unknown):
        first = int(unknown[0])
        if unknown_labels == "error":
            raise InputError(
                f"{where}: key {keys[first].as_py()!r} has label {int(labels[first])}, which is not in label set "
                f"{label_set.name!r} ({len(unknown)} such row(s)); use --labels with the right set or --unknown-labels drop"
            )
        sample = [keys[int(i)].as_py() for i in unknown[:MAX_EXAMPLE_KEYS]]
        _note(counts, got.examples, "label_not_in_label_set", sample, len(unknown))
    absent = np.flatnonzero(known & ~got.image_ok)
    if len(absent):
        sample = [keys[int(i)].as_py() for i in absent[:MAX_EXAMPLE_KEYS]]
        _missing(spec, sample, missing, counts, got.examples, "missing image bytes", total=len(absent))
    keep = known & got.image_ok
    if not keep.any():
        raise InputError(
            f"{where}: no usable sample (rows: {len(labels)}, labelled: {int(labelled.sum())}, "
            f"in the label set: {int(known.sum())}, with image bytes: {int(keep.sum())})"
        )
    return keep


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


def _all_labels(meta: pa.Table, labels: np.ndarray) -> pa.Array:
    """Every class a row matched (a match output's ``labels``), else just its label."""
    if "labels" in meta.column_names and pa.types.is_list(meta.schema.field("labels").type):
        return pc.cast(meta.column("labels"), pa.list_(pa.int32())).combine_chunks()
    return pa.nulls(len(labels), pa.list_(pa.int32()))


def _assemble(
    keys: pa.Array, labels: np.ndarray, index: pa.Table, loc: np.ndarray, meta_rows: np.ndarray, meta: pa.Table
) -> pa.Table:
    take = pa.array(loc, pa.int64())
    ext = (
        index.column("image_ext")
        if "image_ext" in index.column_names
        else pa.chunked_array([pa.nulls(index.num_rows, pa.string())])
    )
    id_value = _string_column(meta, ID_COLUMNS)
    url = _string_column(meta, URL_COLUMNS)
    if meta is not index:  # a match source: per row, what the match output lacks comes from the image stage
        id_value = pc.coalesce(id_value, _string_column(index, ID_COLUMNS).take(take))
        url = pc.coalesce(url, _string_column(index, URL_COLUMNS).take(take))
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
            "all_labels": _all_labels(meta, labels),
        },
        schema=CANDIDATE_SCHEMA,
    )
