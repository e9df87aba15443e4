"""Image shards: webdataset ``.tar`` files with a parquet index that allows reading one image by key.

An image stage directory (``janus fetch``'s ``DIR/images/``, ``janus balance``'s output) holds
``NNNNN.tar`` (webdataset: members ``<key>.jpg``, ``<key>.json`` and optional others such as
``<key>.txt`` / ``<key>.cls``), ``NNNNN.parquet`` (one row per sample: :data:`IMAGE_INDEX` plus
any metadata columns) and ``NNNNN_stats.json`` (written last: the shard is done).

The index records each image member's byte offset and size inside the tar, so a reader (the
tagging page, captioning) can fetch one image by key without scanning or trusting a path.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from janus_build import schemas
from janus_build.errors import InputError
from janus_build.stage import STATS_SUFFIX, atomic_path, atomic_write_json, write_parquet_atomic

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")

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
    """Write one image shard (tar + index + stats) atomically.

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
        directory: the image stage directory.
        name: the shard stem (``NNNNN``).
        mtime: a fixed modification time for the tar members (e.g. 0 for byte-identical
            re-runs); None stamps them with the current time.
        index_schema: a stage's own index columns, validated and placed first in the index
            (before :data:`IMAGE_INDEX` and any other metadata columns).
        """
        import webdataset as wds

        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.tar_name = f"{name}.tar"
        self._atomic = atomic_path(self.directory / self.tar_name)
        self._tmp = self._atomic.__enter__()
        self._stream = open(self._tmp, "wb")
        self._tar = wds.TarWriter(self._stream, mtime=mtime)
        self._index_schema = pa.schema(
            [
                *(index_schema or []),
                *(f for f in IMAGE_INDEX if index_schema is None or f.name not in index_schema.names),
            ]
        )
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
        if key in self._keys:
            raise InputError(f"shard {self.tar_name}: key {key!r} written twice")
        if "." in key or "/" in key:
            raise InputError(
                f"shard {self.tar_name}: key {key!r} must not contain '.' or '/' (webdataset splits on them)"
            )
        self._keys.add(key)
        row = dict(metadata)
        row.update(
            key=key,
            shard=self.tar_name,
            status=status if image is not None else (status if status != "success" else "missing_image"),
            error_message=error_message,
            image_ext=image_ext if image is not None else None,
        )
        if image is not None:
            sample: dict[str, Any] = {
                "__key__": key,
                image_ext: image,
                "json": json.dumps(_jsonable(row), sort_keys=True).encode(),
            }
            for ext, value in (extra or {}).items():
                sample[ext] = value.encode() if isinstance(value, str) else value
            self._tar.write(sample)
        self._rows.append(row)

    def close(self, stats: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Finish the tar, write the index, then the stats marker. Returns the stats."""
        self._tar.close()
        if not self._stream.closed:
            self._stream.close()
        self._atomic.__exit__(None, None, None)
        offsets = _member_offsets(self.directory / self.tar_name)
        for row in self._rows:
            member = offsets.get((row["key"], row["image_ext"])) if row["image_ext"] else None
            row["image_offset"], row["image_size"] = member if member else (None, None)
        table = _rows_to_table(self._rows)
        table = schemas.validate(table, self._index_schema, f"image shard {self.directory / self.name}")
        write_parquet_atomic(self.directory / f"{self.name}.parquet", table)
        ok = sum(1 for r in self._rows if r["status"] == "success")
        result = {"count": len(self._rows), "successes": ok, "failed": len(self._rows) - ok, **dict(stats or {})}
        atomic_write_json(self.directory / f"{self.name}{STATS_SUFFIX}", result)
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


def _jsonable(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: (v.item() if hasattr(v, "item") else v) for k, v in row.items() if k not in ("image_offset", "image_size")
    }


def _rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    columns: dict[str, list[Any]] = {}
    for row in rows:
        for name in row:
            columns.setdefault(name, [])
    for row in rows:
        for name, values in columns.items():
            values.append(row.get(name))
    return pa.table(columns) if rows else IMAGE_INDEX.empty_table()


def _member_offsets(tar_path: Path) -> dict[tuple[str, str], tuple[int, int]]:
    out: dict[tuple[str, str], tuple[int, int]] = {}
    with tarfile.open(tar_path, "r:") as tar:
        for info in tar:
            key, _, ext = info.name.partition(".")
            out[(key, ext)] = (info.offset_data, info.size)
    return out


# --- reading -------------------------------------------------------------------------------
def shard_names(directory: str | os.PathLike[str]) -> list[str]:
    """Finished shards (those with a ``_stats.json``) that have an index, sorted."""
    directory = Path(directory)
    return sorted(
        p.name[: -len(STATS_SUFFIX)]
        for p in directory.glob(f"*{STATS_SUFFIX}")
        if (directory / f"{p.name[: -len(STATS_SUFFIX)]}.parquet").is_file()
    )


def read_index(directory: str | os.PathLike[str], columns: list[str] | None = None) -> pa.Table:
    """Concatenate the index of every finished shard of an image stage directory.

    Raises:
        InputError: the directory holds no finished image shard.
    """
    import pyarrow.parquet as pq

    directory = Path(directory)
    names = shard_names(directory)
    if not names:
        raise InputError(
            f"{directory}: no finished image shards (expected NNNNN.tar + NNNNN.parquet + NNNNN_stats.json)"
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


def iter_samples(directory: str | os.PathLike[str], shards: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """Yield webdataset-style dicts (``__key__``, ``jpg``/``png``, ``json`` decoded, ...) in shard order."""
    directory = Path(directory)
    for name in shards if shards is not None else shard_names(directory):
        current: dict[str, Any] = {}
        with tarfile.open(directory / f"{name}.tar", "r:") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                key, _, ext = info.name.partition(".")
                if current and current["__key__"] != key:
                    yield current
                    current = {}
                data = tar.extractfile(info).read()  # type: ignore[union-attr]
                current.setdefault("__key__", key)
                current["__shard__"] = name
                current[ext] = json.loads(data) if ext == "json" else data
        if current:
            yield current


def open_image(data: bytes):
    """Decode image bytes with PIL into RGB (CMYK, greyscale, palette and alpha converted)."""
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    image.load()
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        background = Image.new("RGB", image.size, (255, 255, 255))
        rgba = image.convert("RGBA")
        background.paste(rgba, mask=rgba.split()[-1])
        return background
    return image.convert("RGB")
