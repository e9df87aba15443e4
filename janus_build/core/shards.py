"""Image shards: webdataset ``.tar`` files with a parquet index that reads one image by key.

An image shard directory (``janus fetch``'s ``DIR/images/``, an import, ``janus balance``'s
``train/`` and ``val/``) holds ``NNNNN.tar`` (webdataset: members ``<key>.jpg``, ``<key>.json``
and others such as ``<key>.txt`` / ``<key>.cls``), ``NNNNN.parquet`` (one row per sample:
:data:`IMAGE_INDEX` plus metadata columns) and the marker ``_stats/NNNNN.json`` written last.

The index records each image member's byte offset and size inside the tar, so a reader (the
tagging page, captioning, balance) fetches one image by key without scanning or trusting a path.
This module is the only tar scanner and the only image-shard writer in janus.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from janus_build import schemas
from janus_build.core.fsio import atomic_path, write_parquet_atomic
from janus_build.core.imaging import IMAGE_EXTENSIONS
from janus_build.core.keys import check_key, split_member
from janus_build.core.stage import ShardDir, read_manifest
from janus_build.errors import InputError

IMAGE_INDEX = pa.schema(
    [
        pa.field(schemas.KEY, pa.string(), nullable=False),
        pa.field("shard", pa.string(), nullable=False),  # tar file name, e.g. 00000.tar
        pa.field("image_ext", pa.string()),  # jpg | png | webp | None when no image
        pa.field("image_offset", pa.int64()),  # byte offset of the image data in the tar
        pa.field("image_size", pa.int64()),
        pa.field(schemas.STATUS, pa.string(), nullable=False),  # success | <failure kind>
        pa.field(schemas.ERROR_MESSAGE, pa.string()),
    ]
)


class ImageShardWriter:
    """Write one image shard (tar + index + marker) atomically.

    Samples whose download or decoding failed are still recorded in the index (``status`` and
    ``error_message``) without an image member: failures are data, not gaps.

    Example::

        with ImageShardWriter(out_dir, "00000") as writer:
            writer.write("flickr-1", jpg_bytes, {"class_id": 291, "title": "lion"})
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        name: str,
        *,
        mtime: float | None = None,
        index_schema: pa.Schema | None = None,
    ) -> None:
        """Args:
        directory: the image shard directory.
        name: the shard stem (``NNNNN``).
        mtime: a fixed modification time for the tar members (e.g. 0 for byte-identical
            re-runs); None stamps them with the current time.
        index_schema: a stage's own index columns, validated and placed first in the index
            (before :data:`IMAGE_INDEX` and any other metadata columns).
        """
        import webdataset as wds

        self.shards = ShardDir(Path(directory))
        self.shards.path.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.tar_name = f"{name}.tar"
        self._atomic = atomic_path(self.shards.path / self.tar_name)
        self._tmp = self._atomic.__enter__()
        self._stream = open(self._tmp, "wb")
        self._tar = wds.TarWriter(self._stream, mtime=mtime)
        own = list(index_schema or [])
        names = {f.name for f in own}
        self._index_schema = pa.schema([*own, *(f for f in IMAGE_INDEX if f.name not in names)])
        self._rows: list[dict[str, Any]] = []
        self._keys: set[str] = set()

    def write(
        self,
        key: str,
        image: bytes | None,
        metadata: Mapping[str, Any],
        *,
        image_ext: str = "jpg",
        extra: Mapping[str, bytes | str] | None = None,
        status: str = "success",
        error_message: str | None = None,
    ) -> None:
        """Add one sample. ``metadata`` goes to the index and to the ``.json`` member."""
        check_key(key, f"shard {self.shards.path / self.tar_name}")
        if key in self._keys:
            raise InputError(f"shard {self.shards.path / self.tar_name}: key {key!r} written twice")
        self._keys.add(key)
        if image is None and status == "success":
            status = "missing_image"
        row = dict(metadata)
        row.update(
            key=key,
            shard=self.tar_name,
            status=status,
            error_message=error_message,
            image_ext=image_ext if image is not None else None,
        )
        if image is not None:
            sample: dict[str, Any] = {"__key__": key, image_ext: image, "json": _json_member(row)}
            for ext, value in (extra or {}).items():
                sample[ext] = value.encode() if isinstance(value, str) else value
            self._tar.write(sample)
        self._rows.append(row)

    def close(self, stats: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Finish the tar, write the index, then the marker. Returns the stats."""
        self._tar.close()
        if not self._stream.closed:
            self._stream.close()
        self._atomic.__exit__(None, None, None)
        offsets = {(k, e): (o, s) for k, e, o, s in scan_members(self.shards.path / self.tar_name)}
        for row in self._rows:
            member = offsets.get((row["key"], row["image_ext"])) if row["image_ext"] else None
            row["image_offset"], row["image_size"] = member if member else (None, None)
        table = _rows_to_table(self._rows)
        table = schemas.validate(table, self._index_schema, f"image shard {self.shards.path / self.name}")
        write_parquet_atomic(self.shards.shard_path(self.name), table)
        ok = sum(1 for r in self._rows if r["status"] == "success")
        result = {"count": len(self._rows), "successes": ok, "failed": len(self._rows) - ok, **dict(stats or {})}
        self.shards.mark_done(self.name, result)
        return result

    def abort(self) -> None:
        """Drop the shard (nothing is left behind)."""
        try:
            self._tar.close()
        finally:
            if not self._stream.closed:
                self._stream.close()
            self._atomic.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def __enter__(self) -> ImageShardWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _json_member(row: Mapping[str, Any]) -> bytes:
    clean = {
        k: (v.item() if hasattr(v, "item") else v) for k, v in row.items() if k not in ("image_offset", "image_size")
    }
    return json.dumps(clean, sort_keys=True).encode()


def _rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    return pa.table({n: [r.get(n) for r in rows] for n in names}) if rows else IMAGE_INDEX.empty_table()


# --- reading -------------------------------------------------------------------------------
def scan_members(tar_path: str | os.PathLike[str]) -> Iterator[tuple[str, str, int, int]]:
    """``(key, ext, data offset, size)`` of every file member, reading headers only.

    Raises:
        InputError: the tar is unreadable or corrupt (named).
    """
    try:
        with tarfile.open(tar_path, "r:") as tar:
            for info in tar:
                if info.isfile():
                    key, ext = split_member(info.name)
                    yield key, ext, info.offset_data, info.size
    except (tarfile.TarError, EOFError) as exc:
        raise InputError(f"{tar_path}: corrupt or truncated tar ({exc})") from None


def image_members(tar_path: str | os.PathLike[str]) -> dict[str, tuple[str, int, int]]:
    """``{key: (ext, offset, size)}`` of the first image member of each key in a tar."""
    out: dict[str, tuple[str, int, int]] = {}
    for key, ext, offset, size in scan_members(tar_path):
        if ext in IMAGE_EXTENSIONS:
            out.setdefault(key, (ext, offset, size))
    return out


def shard_names(directory: str | os.PathLike[str]) -> list[str]:
    """Finished image shards of a directory (marker and index present), sorted."""
    shards = ShardDir(Path(directory))
    return [n for n in shards.done_shards() if shards.shard_path(n).is_file()]


def read_index(directory: str | os.PathLike[str], columns: list[str] | None = None) -> pa.Table:
    """Concatenate the index of every finished shard of an image shard directory.

    Raises:
        InputError: the directory holds no finished image shard.
    """
    import pyarrow.parquet as pq

    directory = Path(directory)
    names = shard_names(directory)
    if not names:
        raise InputError(
            f"{directory}: no finished image shards (expected NNNNN.tar + NNNNN.parquet + _stats/NNNNN.json)"
        )
    tables = [pq.read_table(directory / f"{n}.parquet", columns=columns) for n in names]
    return pa.concat_tables(tables, promote_options="default")


def read_image(directory: str | os.PathLike[str], shard: str, offset: int, size: int) -> bytes:
    """Read one image's bytes from a tar by the offset and size the index recorded."""
    path = Path(directory) / Path(shard).name  # never a path from the caller beyond the file name
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read(size)
    if len(data) != size:
        raise InputError(f"{path}: truncated (wanted {size} bytes at offset {offset})")
    return data


class ImageReader:
    """Read image bytes by offset, keeping a bounded number of tars open (for random access)."""

    def __init__(self, limit: int = 64) -> None:
        self._open: OrderedDict[Path, Any] = OrderedDict()
        self._limit = limit

    def read(self, path: str | os.PathLike[str], offset: int, size: int) -> bytes:
        path = Path(path)
        handle = self._open.get(path)
        if handle is None:
            if len(self._open) >= self._limit:
                self._open.popitem(last=False)[1].close()
            handle = self._open[path] = open(path, "rb")
        else:
            self._open.move_to_end(path)
        handle.seek(offset)
        data = handle.read(size)
        if len(data) != size:
            raise InputError(f"{path}: truncated (wanted {size} bytes at offset {offset})")
        return data

    def close(self) -> None:
        for handle in self._open.values():
            handle.close()
        self._open.clear()

    def __enter__(self) -> ImageReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_samples(directory: str | os.PathLike[str], shards: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Yield webdataset-style dicts (``__key__``, ``jpg``/``png``, ``json`` decoded, ...) in shard order."""
    directory = Path(directory)
    for name in shards if shards is not None else shard_names(directory):
        current: dict[str, Any] = {}
        path = directory / f"{name}.tar"
        with open(path, "rb") as handle:
            for key, ext, offset, size in scan_members(path):
                if current and current["__key__"] != key:
                    yield current
                    current = {}
                handle.seek(offset)
                data = handle.read(size)
                current.setdefault("__key__", key)
                current["__shard__"] = name
                current[ext] = json.loads(data) if ext == "json" else data
        if current:
            yield current


# --- finding an image stage ----------------------------------------------------------------
@dataclass(frozen=True)
class TarShard:
    """One tar of an image shard directory, with its index when it has one."""

    name: str
    tar: Path
    index: Path | None


def find_tar_shards(directory: str | os.PathLike[str]) -> list[TarShard]:
    """The tars of an image shard directory: the finished ones when it has janus markers, every
    ``*.tar`` of a plain webdataset folder otherwise. Sorted by name.

    Raises:
        InputError: no (finished) tar.
    """
    directory = Path(directory)
    shards = ShardDir(directory)
    tars = sorted(p for p in directory.glob("*.tar") if not p.name.startswith("."))
    if shards.markers.is_dir():
        done = set(shards.done_shards())
        tars = [t for t in tars if t.stem in done]
    if not tars:
        raise InputError(f"{directory}: no finished .tar shards (expected NNNNN.tar with _stats/NNNNN.json)")
    return [
        TarShard(t.stem, t, t.with_suffix(".parquet") if t.with_suffix(".parquet").is_file() else None) for t in tars
    ]


def resolve_image_stage(path: str | os.PathLike[str], flag: str = "STAGE_DIR") -> Path:
    """The image shard directory behind any stage directory.

    A fetch output gives its ``images/``; a caption output the image stage it captioned; an
    import or any directory holding tars itself. A balance output has two (``train/``,
    ``val/``): name the one you want.

    Raises:
        InputError: not a directory, or no image shards can be found from it.
    """
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"{flag} {root}: no such directory")
    manifest = read_manifest(root) or {}
    stage = manifest.get("stage")
    if stage == "caption" and manifest.get("config", {}).get("stage_dir"):
        return resolve_image_stage(manifest["config"]["stage_dir"], flag)
    if stage == "balance" or ((root / "train").is_dir() and not any(root.glob("*.tar"))):
        raise InputError(
            f"{flag} {root}: a balance output holds two image stages; name {root / 'train'} or {root / 'val'}"
        )
    if (root / "images").is_dir() and not any(root.glob("*.tar")):
        return root / "images"
    if any(root.glob("*.tar")):
        return root
    raise InputError(
        f"{flag} {root}: no finished image shards (expected NNNNN.tar + NNNNN.parquet + _stats/NNNNN.json, "
        "or a fetch output with images/)"
    )
