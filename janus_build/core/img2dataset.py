"""img2dataset adapters: its output folder read as it writes it, re-keyed into janus image shards.

img2dataset writes ``NNNNN.tar`` + ``NNNNN.parquet`` + ``NNNNN_stats.json`` (its own marker
convention, written when a shard finishes) and numbers samples with its own ``key``. janus
re-keys every row into an image shard (:mod:`janus_build.core.shards`) by a column it saved.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from janus_build.core.imaging import sniff_image_ext
from janus_build.core.shards import ImageShardWriter, image_members

log = logging.getLogger(__name__)

I2D_STATS_SUFFIX = "_stats.json"


def img2dataset_shards(directory: Path) -> tuple[list[str], list[str]]:
    """(finished, unfinished) img2dataset shard stems in ``directory``: finished ones have
    img2dataset's ``NNNNN_stats.json`` and a ``.parquet``; unfinished ones only a tar or parquet."""
    finished = sorted(
        p.name[: -len(I2D_STATS_SUFFIX)]
        for p in directory.glob(f"*{I2D_STATS_SUFFIX}")
        if (directory / f"{p.name[: -len(I2D_STATS_SUFFIX)]}.parquet").is_file()
    )
    started = {p.stem for p in directory.glob("*.tar")} | {p.stem for p in directory.glob("*.parquet")}
    return finished, sorted(started - set(finished))


def _sample_image(
    sample: Mapping[str, Any], members: Mapping[str, tuple[str, int, int]], handle: Any
) -> tuple[bytes | None, str]:
    member = members.get(str(sample.get("key"))) if sample.get("status") == "success" else None
    if member is None:
        return None, "jpg"
    ext, offset, size = member
    handle.seek(offset)
    data = handle.read(size)
    return data, sniff_image_ext(data) or ext


def rekey_img2dataset_shard(
    src_dir: Path,
    name: str,
    out_dir: Path,
    row_for: Callable[[dict[str, Any]], tuple[str, Mapping[str, Any]] | None],
    *,
    mtime: float | None = None,
    index_schema: Any = None,
    stats: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Rewrite one finished img2dataset shard as the janus image shard ``out_dir/<name>``.

    Rows are taken in img2dataset key order (its parquet lists them in completion order), so
    the output is deterministic. Image bytes are read by offset one at a time (the shard is never
    held in memory) and their format is sniffed. Failed downloads stay rows with img2dataset's
    ``status`` and ``error_message``.

    Args:
        src_dir: img2dataset's output folder.
        name: the shard stem (``00000``), the same in and out.
        out_dir: the image shard directory to write.
        row_for: maps an img2dataset parquet row to ``(key, metadata)``, or None to leave the
            row out (counted as ``skipped``).
        mtime: tar member mtime (0 for byte-identical re-runs).
        index_schema: the stage's own index columns (see :class:`ImageShardWriter`).
        stats: extra fields for the shard's marker.

    Returns:
        The shard's stats (count, successes, failed, skipped, duplicate_keys, ...).
    """
    import pyarrow.parquet as pq

    rows = sorted(pq.read_table(src_dir / f"{name}.parquet").to_pylist(), key=lambda r: str(r.get("key")))
    tar_path = src_dir / f"{name}.tar"
    members = image_members(tar_path) if tar_path.is_file() else {}
    skipped = duplicates = 0
    seen: set[str] = set()
    writer = ImageShardWriter(out_dir, name, mtime=mtime, index_schema=index_schema)
    try:
        with open(tar_path, "rb") if tar_path.is_file() else io.BytesIO() as handle:
            for sample in rows:
                mapped = row_for(sample)
                if mapped is None:
                    skipped += 1
                    continue
                key, metadata = mapped
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
                data, ext = _sample_image(sample, members, handle)
                status = "success" if data is not None else (sample.get("status") or "failed_to_download")
                if status == "success" and data is None:
                    status = "missing_image"
                error = None if data is not None else (sample.get("error_message") or status)
                writer.write(key, data, metadata, image_ext=ext, status=status, error_message=error)
    except BaseException:
        writer.abort()
        raise
    if duplicates:
        log.warning(
            "img2dataset shard %s: %d row(s) repeat a key already in the shard; the first is kept", name, duplicates
        )
    extra = {"img2dataset_shard": name, "skipped": skipped, "duplicate_keys": duplicates}
    return writer.close({**dict(stats or {}), **extra})
