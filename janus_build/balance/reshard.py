"""The resharder: write a selection plan's samples into ``train/`` and ``val/`` image shards.

Each output shard is written by the core's :class:`~janus_build.core.shards.ImageShardWriter`
(tar + index + marker last); a shard whose marker exists is skipped, so a resumed run writes
only what is missing. Every image is validated (its header must parse as JPEG/PNG/WebP) before
it enters a shard; one that fails stays a row of the index with ``status`` and
``error_message`` and no tar member, and is counted in the cards. At the end the written
shards are checked against the plan: every planned shard done, with exactly the planned rows.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from janus_build import schemas
from janus_build.balance import provenance
from janus_build.balance.captions import NO_CAPTION, TEXT_COLUMNS, CaptionRule
from janus_build.balance.plan import SELECTION, SPLITS, Plan
from janus_build.balance.sources import SourceFiles
from janus_build.core.fsio import atomic_write_json
from janus_build.core.imaging import check_image, to_jpeg
from janus_build.core.shards import ImageReader, ImageShardWriter
from janus_build.core.stage import ShardDir
from janus_build.errors import InputError, OutputError
from janus_build.labels import LabelSet
from janus_build.progress import Progress

log = logging.getLogger(__name__)

INDEX_SCHEMA = pa.schema([*schemas.BALANCE_INDEX, *schemas.BALANCE_EXTRA])


@dataclass
class ReshardResult:
    written: int  # samples (rows) written by this run
    resumed: int  # shards already done
    shards: dict[str, list[str]]


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


class _SourceRows:
    """The pending rows of one source with full metadata, captions and the image stage's provenance."""

    def __init__(self, source: SourceFiles, meta_rows: np.ndarray, rule: CaptionRule) -> None:
        self.source = source
        self.rule = rule
        self.meta = source.read_metadata(np.unique(meta_rows))
        self._rows = self.meta.column("_meta_row").to_numpy()
        keys = (
            self.meta.column("key").combine_chunks() if "key" in self.meta.column_names else pa.array([], pa.string())
        )
        captions = source.read_captions(keys)
        self.captions = None
        if captions is not None:  # null rows where a key has no caption
            self.captions = captions.take(pc.index_in(keys, value_set=captions.column("key")))
        self.stage_meta = source.index_metadata(keys, (*provenance.FALLBACK_COLUMNS, *TEXT_COLUMNS))

    def records(self, meta_rows: np.ndarray) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        """``(source row with captions merged in, image stage row or None)`` of ``meta_rows``, in order."""
        take = pa.array(np.searchsorted(self._rows, meta_rows), pa.int64())
        rows = self.meta.drop_columns(["_meta_row"]).take(take).to_pylist()
        if self.captions is not None:
            for row, caption in zip(rows, self.captions.take(take).to_pylist()):
                row.update({k: v for k, v in caption.items() if k != "key"})
        return [(row, self.stage_meta.get(str(row.get("key"))) if self.stage_meta else None) for row in rows]

    def caption(self, row: dict[str, Any], stage_row: dict | None, class_name: str) -> tuple[str, str | None]:
        """The sample's caption by the source's caption rule, and what it came from."""
        return self.rule.caption(row, stage_row, class_name)


def _record(plan_row: dict[str, Any], source: _SourceRows, row: dict, stage_row: dict | None, label_set) -> dict:
    """The index row (and json member) of one sample, provenance by :mod:`.provenance`'s precedence."""
    spec = source.source.spec
    cid = int(plan_row["label"])
    caption, caption_field = source.caption(row, stage_row, label_set.names.get(cid, ""))
    return {
        "key": plan_row["key"],
        "label": cid,
        "caption": caption,
        "source": spec.source_kind,
        "source_id": plan_row["id_value"] or plan_row["source_key"],
        "url": plan_row["url"],
        **provenance.fields(row, stage_row),
        "label_source": source.source.label_source,
        "split": plan_row["split"],
        "source_name": spec.name,
        "class_name": label_set.names.get(cid, ""),
        "caption_field": caption_field,
        "source_key": plan_row["source_key"],
        "labels": _all_labels(cid, row.get("labels"), label_set),
    }


def _all_labels(label: int, matched: Any, label_set: LabelSet) -> list[int]:
    """The sample's label then every other matched class of the label set (``mc`` multi-label training)."""
    if not isinstance(matched, (list, tuple)):  # only a list column (a match/label output's) holds classes
        return [label]
    classes = [int(c) for c in matched if isinstance(c, int) and not isinstance(c, bool)]
    others = [c for c in classes if c != label and c in label_set.names]
    return [label, *dict.fromkeys(others)]


def _image(reader: ImageReader, source: SourceFiles, plan_row: dict[str, Any]) -> tuple[bytes | None, str, str | None]:
    """``(jpeg bytes or None, status, error)``: the header must parse before an image enters a shard."""
    path = source.images_dir / Path(plan_row["image_shard"]).name
    try:
        data = reader.read(path, int(plan_row["image_offset"]), int(plan_row["image_size"]))
    except OSError as exc:  # a tar removed or unreadable since the selection
        raise InputError(
            f"source {source.spec.name!r}: key {plan_row['source_key']!r}: cannot read {path} ({exc.strerror or exc})"
        ) from None
    check = check_image(data)
    if not check.ok:
        return None, check.status, check.error
    try:
        return to_jpeg(data, check.ext), "success", None
    except Exception as exc:  # PIL raises many kinds on a body that does not decode
        return None, "decode_error", f"{type(exc).__name__}: {exc}"


def _write_shard(
    shards: ShardDir,
    name: str,
    chunk: pa.Table,
    rows_of: dict[int, _SourceRows],
    reader: ImageReader,
    label_set: LabelSet,
) -> int:
    plan_rows = chunk.to_pylist()
    found: dict[int, tuple[dict, dict | None]] = {}
    sources = np.asarray(chunk.column("source").to_numpy())
    meta_rows = np.asarray(chunk.column("meta_row").to_numpy())
    for position in np.unique(sources).tolist():
        mine = np.flatnonzero(sources == position)
        found.update(zip(mine.tolist(), rows_of[position].records(meta_rows[mine])))
    writer = ImageShardWriter(shards.path, name, mtime=0, index_schema=INDEX_SCHEMA)  # mtime 0: byte-identical
    try:
        for i, plan_row in enumerate(plan_rows):
            source = rows_of[plan_row["source"]]
            row, stage_row = found[i]
            record = _record(plan_row, source, row, stage_row, label_set)
            image, status, error = _image(reader, source.source, plan_row)
            if image is not None and not record["caption"] and source.rule.empty == "drop":
                image, status, error = None, NO_CAPTION, f"no caption (caption policy {source.rule.policy})"
            full = dict(record, source_metadata=provenance.merged_metadata(row, stage_row))
            member = json.dumps(full, sort_keys=True, ensure_ascii=False, default=_json_value)
            extra = {
                "cls": str(record["label"]),
                schemas.TRAIN_LABELS_MEMBER: json.dumps(record["labels"]),
                "txt": record["caption"],
                "json": member,
            }
            writer.write(record["key"], image, record, image_ext="jpg", extra=extra, status=status, error_message=error)
            if image is None:
                log.warning("%s: key %r: %s; recorded as %s, not written", shards.path, record["key"], error, status)
    except BaseException:
        writer.abort()
        raise
    writer.close({"split": shards.path.name, "planned": len(plan_rows)})
    return len(plan_rows)


def reshard(
    plan: Plan, out: Path, label_set: LabelSet, progress: Progress, rules: dict[str, CaptionRule] | None = None
) -> ReshardResult:
    """Write every planned shard not yet done, then check the output against the plan.

    ``rules`` maps a source name to its caption rule (default: its caption columns).

    Raises:
        OutputError: a written shard does not hold the rows the plan gave it.
    """
    expected = plan.expected()
    written = resumed = 0
    with ImageReader() as reader:
        for split in SPLITS:
            shards = ShardDir(out / split)
            shards.path.mkdir(parents=True, exist_ok=True)
            rows = plan.split_rows(split)  # in output order: each shard is one contiguous slice
            starts = dict(zip(expected[split], np.cumsum([0, *expected[split].values()]).tolist()))
            pending = [n for n in expected[split] if not shards.is_done(n)]
            resumed += len(expected[split]) - len(pending)
            chunks = {n: rows.slice(starts[n], expected[split][n]) for n in pending}
            todo = pa.concat_tables(chunks.values()) if chunks else rows.slice(0, 0)
            progress.start(f"write {split}", rows.num_rows, "samples")
            progress.advance(f"write {split}", rows.num_rows - todo.num_rows)
            rows_of = _pending_sources(plan.sources, todo, rules or {})
            for name, chunk in chunks.items():
                if pc.any(pc.not_equal(chunk.column("shard"), name)).as_py():
                    raise OutputError(f"{out / SELECTION}: rows of shard {split}/{name} are not together; --overwrite")
                written += _write_shard(shards, name, chunk, rows_of, reader, label_set)
                progress.advance(f"write {split}", chunk.num_rows)
            progress.finish(f"write {split}")
    check_counts(plan, out)
    for split in SPLITS:
        write_sizes(out / split, expected[split])
    return ReshardResult(written, resumed, {s: list(expected[s]) for s in SPLITS})


def _pending_sources(
    sources: list[SourceFiles], todo: pa.Table, rules: dict[str, CaptionRule]
) -> dict[int, _SourceRows]:
    """Read, once per split, the metadata of every source row still to be written."""
    positions = np.asarray(todo.column("source").to_numpy())
    meta_rows = np.asarray(todo.column("meta_row").to_numpy())
    return {
        s.position: _SourceRows(
            s, meta_rows[positions == s.position], rules.get(s.spec.name) or CaptionRule(columns=s.spec.caption_columns)
        )
        for s in sources
        if (positions == s.position).any()
    }


def write_sizes(directory: Path, shards: dict[str, int]) -> None:
    """``sizes.json`` ({tar name: samples in it}): what open_clip's trainer reads to count a split's samples."""
    sizes = {}
    for name in shards:
        table = pq.read_table(directory / f"{name}.parquet", columns=["status"])
        sizes[f"{name}.tar"] = int(pc.sum(pc.equal(table.column("status"), "success")).as_py() or 0)
    atomic_write_json(directory / "sizes.json", sizes)


def check_counts(plan: Plan, out: Path) -> None:
    """DataComp's closing check: every planned shard is done and holds exactly its planned rows."""
    for split, planned in plan.expected().items():
        shards = ShardDir(out / split)
        extra = sorted(set(shards.done_shards()) - set(planned))
        if extra:
            raise OutputError(f"{shards.path}: shard(s) {', '.join(extra)} are not in the selection plan")
        for name, count in planned.items():
            if not shards.is_done(name):
                raise OutputError(f"{shards.path}: shard {name} was planned but is not done")
            rows = pq.read_metadata(shards.shard_path(name)).num_rows
            recorded = shards.read_stats(name).get("count")
            if rows != count or recorded != count:
                raise OutputError(
                    f"{shards.path}: shard {name} holds {rows} row(s) (marker: {recorded}), the plan gave it {count}; "
                    "pass --overwrite to write it again"
                )
