"""Finding the images to caption: janus image stages, img2dataset output, or any webdataset.

Accepted ``STAGE_DIR`` layouts, tried in this order:

1. a ``janus fetch`` output: its ``images/`` sub-directory is used;
2. a janus image stage (:mod:`janus_build.images`): ``NNNNN.tar`` + ``NNNNN.parquet`` index with
   ``image_offset``/``image_size``; the index also supplies the metadata (title, ...) and the
   rows whose download failed (they get a caption row with ``status`` ``input_failed``);
3. img2dataset output: ``NNNNN.tar`` + ``NNNNN.parquet`` with ``key``/``status``; the tar is
   scanned once for member offsets and the parquet supplies metadata and failed rows;
4. any webdataset: ``*.tar`` whose samples hold an image (jpg/jpeg/png/webp/...) and an
   optional ``json`` member with metadata.

Shards are found by the core (:func:`~janus_build.core.shards.resolve_image_stage`,
:func:`~janus_build.core.shards.find_tar_shards`): when the directory has done-markers, only
finished shards are read. Tars without an offset index are listed by the core's one tar scanner
(webdataset's key rule). Workers later read each image by its byte offset, so no tar is unpacked.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

from janus_build.core.imaging import IMAGE_EXTENSIONS
from janus_build.core.stage import fingerprint_file
from janus_build.errors import ConfigError, InputError

log = logging.getLogger(__name__)

# The core's image extensions first (preferred when a sample has several), then other formats PIL decodes.
IMAGE_EXTS = (*IMAGE_EXTENSIONS, "gif", "bmp", "tif", "tiff")


@dataclasses.dataclass(frozen=True)
class Sample:
    """One row to caption: where its image bytes lie, and the text fields merging needs."""

    key: str
    tar: str | None  # None: the input row has no image
    offset: int | None
    size: int | None
    title: str | None = None
    human_caption: str | None = None
    input_status: str = "success"
    input_error: str | None = None


@dataclasses.dataclass(frozen=True)
class InputShard:
    """One input shard; its caption shard gets the same name."""

    name: str
    tar: Path
    index: Path | None  # the parquet beside the tar, if any

    def fingerprints(self) -> list[dict[str, Any]]:
        return [fingerprint_file(p) for p in (self.tar, self.index) if p is not None]

    def fingerprint(self) -> dict[str, Any]:
        """What the shard's done-marker records: a changed input shard is captioned again."""
        return {"files": self.fingerprints()}


def find_shards(stage_dir: str | os.PathLike[str]) -> list[InputShard]:
    """The input shards of ``stage_dir`` (any stage directory with images), in name order.

    Raises:
        InputError: no (finished) ``.tar`` shard was found.
    """
    from janus_build.core.img2dataset import img2dataset_shards
    from janus_build.core.shards import find_tar_shards, resolve_image_stage

    directory = resolve_image_stage(stage_dir)
    shards = find_tar_shards(directory)
    finished, unfinished = img2dataset_shards(directory)
    if finished:  # img2dataset's own markers (NNNNN_stats.json): its unfinished shards are skipped
        if unfinished:
            log.info("%s: skipping %d unfinished img2dataset shard(s)", directory, len(unfinished))
        shards = [s for s in shards if s.name in set(finished)]
    if not shards:
        raise InputError(f"{directory}: no finished .tar shards")
    return [InputShard(s.name, s.tar, s.index) for s in shards]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN
        return None
    return str(value)


class MetadataColumns:
    """Resolves which title and human-caption fields to read, from the first shard's columns."""

    def __init__(self, title_col: str, human_caption_col: str | None, candidates: tuple[str, ...]) -> None:
        self.title_col = title_col
        self.requested_human = human_caption_col
        self.candidates = candidates
        self.human_col: str | None = None
        self.resolved = False

    def resolve(self, columns: list[str], where: str) -> None:
        if self.resolved:
            return
        self.resolved = True
        if self.requested_human is not None:
            if self.requested_human not in columns:
                raise ConfigError(
                    f"--human-caption-col {self.requested_human!r}: no such column in {where}; "
                    f"columns present: {', '.join(columns) or '(none)'}"
                )
            self.human_col = self.requested_human
        else:
            self.human_col = next((c for c in self.candidates if c in columns), None)
        if self.title_col not in columns:
            log.warning("%s: no %r column: captions are not merged with a title", where, self.title_col)
        if self.human_col:
            log.info("prose_caption prefers the human caption column %r", self.human_col)


def _scan_tar(tar_path: Path) -> tuple[list[str], dict[str, tuple[int, int]], dict[str, dict[str, Any]]]:
    """Keys in tar order, each key's preferred image member (offset, size), and decoded json members.

    Members are listed by the core's scanner (:func:`janus_build.core.shards.scan_members`, the
    one key rule); json members are then read by offset.
    """
    from janus_build.core.shards import scan_members

    order: dict[str, None] = {}
    images: dict[str, tuple[int, int, int]] = {}
    json_members: dict[str, tuple[int, int]] = {}
    try:
        for key, ext, offset, size in scan_members(tar_path):
            order.setdefault(key)
            if ext in IMAGE_EXTS:
                rank = IMAGE_EXTS.index(ext)
                if key not in images or rank < images[key][2]:
                    images[key] = (offset, size, rank)
            elif ext == "json":
                json_members[key] = (offset, size)
    except InputError as exc:
        # A truncated tar: keep the members read so far; the rest become missing-image rows.
        log.warning("%s; later samples are reported as missing", exc)
    meta = _read_json_members(tar_path, json_members)
    return list(order), {k: (o, s) for k, (o, s, _) in images.items()}, meta


def _read_json_members(tar_path: Path, members: dict[str, tuple[int, int]]) -> dict[str, dict[str, Any]]:
    from janus_build.core.shards import ImageReader

    meta: dict[str, dict[str, Any]] = {}
    with ImageReader(limit=1) as reader:
        for key, (offset, size) in members.items():
            try:
                value = json.loads(reader.read(tar_path, offset, size))
            except (ValueError, OSError, InputError) as exc:
                log.warning("%s: unreadable %s.json (%s)", tar_path, key, exc)
                continue
            meta[key] = value if isinstance(value, dict) else {}
    return meta


def load_samples(shard: InputShard, columns: MetadataColumns) -> list[Sample]:
    """The samples of one shard, in index order (janus / img2dataset) or tar order (webdataset)."""
    import pyarrow.parquet as pq

    index_cols = pq.read_schema(shard.index).names if shard.index is not None else []
    if {"key", "image_offset", "image_size"} <= set(index_cols):
        return _indexed_samples(shard, columns, index_cols)
    return _scanned_samples(shard, columns, index_cols)


def _sample(row: dict[str, Any], columns: MetadataColumns, tar: str, member: tuple[int, int] | None) -> Sample:
    """A sample from an index or json row; ``member`` is the image's (offset, size), None without one."""
    status = _text(row.get("status")) or "success"
    return Sample(
        key=str(row["key"]),
        tar=tar if member else None,
        offset=member[0] if member else None,
        size=member[1] if member else None,
        title=_text(row.get(columns.title_col)),
        human_caption=_text(row.get(columns.human_col)) if columns.human_col else None,
        input_status="success" if member else (status if status != "success" else "missing_image"),
        input_error=None if member else (_text(row.get("error_message")) or "no image in the input shard"),
    )


def _indexed_samples(shard: InputShard, columns: MetadataColumns, index_cols: list[str]) -> list[Sample]:
    """A janus image shard: the index holds every row and each image's offset and size."""
    import pyarrow.parquet as pq

    columns.resolve(index_cols, os.fspath(shard.index))
    wanted = ("key", "image_offset", "image_size", "status", "error_message", columns.title_col, columns.human_col)
    names = list(dict.fromkeys(c for c in wanted if c and c in index_cols))
    rows = pq.read_table(shard.index, columns=names).to_pylist()
    tar = os.fspath(shard.tar)
    return [
        _sample(
            row,
            columns,
            tar,
            (row["image_offset"], row["image_size"])
            if row.get("image_offset") is not None and row.get("image_size") is not None
            else None,
        )
        for row in rows
    ]


def _scanned_samples(shard: InputShard, columns: MetadataColumns, index_cols: list[str]) -> list[Sample]:
    """img2dataset output or a plain webdataset: members listed by the core's tar scanner."""
    import pyarrow.parquet as pq

    order, images, meta = _scan_tar(shard.tar)
    rows: list[dict[str, Any]]
    if "key" in index_cols:  # img2dataset: the parquet lists every row, failed downloads included
        table = pq.read_table(shard.index)
        columns.resolve(table.column_names, os.fspath(shard.index))
        rows = table.to_pylist()
        listed = {str(r["key"]) for r in rows}
        rows += [dict(meta.get(k, {}), key=k) for k in order if k not in listed]
    else:
        if not order:
            raise InputError(f"{shard.tar}: no samples in the tar")
        columns.resolve(sorted(meta.get(order[0], {})), f"{shard.tar} (json members)")
        rows = [dict(meta.get(k, {}), key=k) for k in order]
    tar = os.fspath(shard.tar)
    return [_sample(row, columns, tar, images.get(str(row["key"]))) for row in rows]
