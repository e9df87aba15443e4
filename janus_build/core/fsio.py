"""Atomic, permission-honest file writes and the sweep of temporaries a killed run left.

Every file janus writes goes to a temporary name in the target's directory
(``.<name>.janus-<pid>-<random>.tmp``), is fsynced, then renamed into place, so a reader sees
either the old file or the whole new one. Temporaries are created with mode ``0o666`` less the
umask, like any ``open(path, "w")``, so a shared dataset directory stays readable to colleagues.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

TMP_MARK = ".janus-"
TMP_SUFFIX = ".tmp"


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """fsync a directory so a rename inside it survives a crash (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def temporary_name(target: Path) -> Path:
    """A fresh temporary path beside ``target`` that :func:`sweep_temporaries` recognises."""
    return target.parent / f".{target.name}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}{TMP_SUFFIX}"


def is_temporary(name: str) -> bool:
    """True for a janus temporary file name (current or the older ``mkstemp`` style)."""
    return name.startswith(".") and name.endswith(TMP_SUFFIX)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it into place.

    The temporary file exists (empty, umask permissions) when the body starts. On an exception
    it is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback for dataclasses, paths, sets and numpy scalars."""
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n").encode())


def write_parquet_atomic(path: str | os.PathLike[str], table: Any, **kwargs: Any) -> None:
    """Write a pyarrow table to ``path`` atomically (zstd-compressed by default)."""
    import pyarrow.parquet as pq

    kwargs.setdefault("compression", "zstd")
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, **kwargs)


@contextlib.contextmanager
def atomic_parquet_writer(path: str | os.PathLike[str], schema: Any, **kwargs: Any) -> Iterator[Any]:
    """Yield a streaming ``pyarrow.parquet.ParquetWriter``; the file appears only when it closes cleanly."""
    import pyarrow.parquet as pq

    kwargs.setdefault("compression", "zstd")
    with atomic_path(path) as tmp:
        writer = pq.ParquetWriter(tmp, schema, **kwargs)
        try:
            yield writer
        finally:
            writer.close()


def sweep_temporaries(directory: str | os.PathLike[str]) -> int:
    """Remove the temporary files a killed run left anywhere below ``directory``.

    Call it only while holding the directory's lock (:class:`janus_build.core.stage.StageDir`
    does), so no live writer's temporary is removed. Returns how many were removed.
    """
    removed = 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            if is_temporary(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(root, name))
                    removed += 1
    if removed:
        log.info("%s: removed %d temporary file(s) left by an interrupted run", directory, removed)
    return removed
