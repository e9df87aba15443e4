"""Stage directories: shards written atomically, ``NNNNN_stats.json`` done-markers, ``manifest.json``.

A stage output is a directory of shards. A shard is done when its ``<name>_stats.json`` exists;
that marker is always written last, so a killed run never leaves a shard that looks finished.
Every file is written to a temporary name in the same directory, fsynced, then renamed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from janus_build import __version__
from janus_build.errors import OutputError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
STATS_SUFFIX = "_stats.json"


# --- atomic writes -------------------------------------------------------------------------
def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it into place."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON to ``path`` atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n").encode())


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


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (Path, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def config_dict(config: Any) -> dict[str, Any]:
    """Return a JSON-ready dict of a config dataclass (paths as strings, tuples as lists)."""
    raw = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    return json.loads(json.dumps(raw, default=_json_default))


def fingerprint_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A cheap fingerprint of an input file: path, size and modification time."""
    stat = os.stat(path)
    return {"path": os.fspath(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def shard_name(index: int) -> str:
    """The zero-padded shard stem, e.g. ``00007``."""
    return f"{index:05d}"


# --- the stage directory -------------------------------------------------------------------
class StageDir:
    """An output directory of one stage, opened for writing (resuming if it was started before).

    Args:
        path: the output directory.
        stage: the stage name recorded in the manifest (``match``, ``fetch``, ...).
        config: the stage's options (a frozen dataclass or mapping), recorded in the manifest.
        inputs: input fingerprints or descriptions, recorded in the manifest.
        overwrite: delete an existing output of any kind and start afresh.
        resume_keys: config keys that must agree with an earlier run for it to be resumed;
            ``None`` means all keys except ``volatile_keys``.
        volatile_keys: config keys that may differ on resume (worker counts, progress, ...).

    Raises:
        OutputError: the directory holds something that is not this stage's output, or an earlier
            run with different result-affecting options (unless ``overwrite``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        stage: str,
        config: Any,
        inputs: Iterable[Any] = (),
        *,
        overwrite: bool = False,
        resume_keys: Iterable[str] | None = None,
        volatile_keys: Iterable[str] = ("workers", "progress", "overwrite", "verbose"),
    ) -> None:
        self.path = Path(path)
        self.stage = stage
        self.config = config_dict(config)
        self.inputs = list(inputs)
        self.resumed = False
        volatile = set(volatile_keys)
        keys = set(resume_keys) if resume_keys is not None else set(self.config) - volatile
        self._open(overwrite, keys)

    # -- opening ----------------------------------------------------------------------------
    def _open(self, overwrite: bool, compare_keys: set[str]) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(f"--out {self.path}: exists and is not a directory")
        existing = [p for p in self.path.iterdir()] if self.path.is_dir() else []
        if existing and overwrite:
            self._clear()
            existing = []
        if existing:
            manifest = self.read_manifest(self.path)
            if manifest is None:
                raise OutputError(
                    f"--out {self.path}: the directory is not empty and holds no janus manifest.json; "
                    "choose an empty directory or pass --overwrite to replace its contents"
                )
            if manifest.get("stage") != self.stage:
                raise OutputError(
                    f"--out {self.path}: holds the output of 'janus {manifest.get('stage')}', not 'janus {self.stage}'; "
                    "choose another directory or pass --overwrite"
                )
            old = manifest.get("config", {})
            differing = sorted(k for k in compare_keys if old.get(k) != self.config.get(k))
            if differing and not self._holds_work():
                log.info(
                    "%s: an earlier run with other options finished nothing; starting with the new options", self.path
                )
                differing = []
            if differing:
                detail = "; ".join(f"{k}: was {old.get(k)!r}, now {self.config.get(k)!r}" for k in differing)
                raise OutputError(
                    f"--out {self.path}: an earlier run used other options ({detail}); "
                    "resume with the same options, or pass --overwrite to start again"
                )
            self.resumed = True
            log.info("resuming %s in %s (%d shard(s) done)", self.stage, self.path, len(self.done_shards()))
        self.path.mkdir(parents=True, exist_ok=True)
        self.write_manifest(completed=False)

    def _holds_work(self) -> bool:
        """True when anything besides the manifest (and hidden temporary files) is in the directory."""
        return any(child.name != MANIFEST and not child.name.startswith(".") for child in self.path.iterdir())

    def _clear(self) -> None:
        """Remove a previous output. Only files and folders we would write are expected here."""
        import shutil

        log.warning("--overwrite: removing the contents of %s", self.path)
        for child in self.path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    # -- manifest ---------------------------------------------------------------------------
    @staticmethod
    def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any] | None:
        """Return the manifest of a stage directory, or None if it has none."""
        file = Path(path) / MANIFEST
        if not file.is_file():
            return None
        try:
            return json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise OutputError(f"{file}: unreadable manifest ({exc})") from None

    def write_manifest(self, *, completed: bool, summary: Mapping[str, Any] | None = None) -> None:
        """(Re)write ``manifest.json`` with the stage, version, config, inputs and state."""
        manifest: dict[str, Any] = {
            "stage": self.stage,
            "janus_build_version": __version__,
            "config": self.config,
            "config_sha256": hashlib.sha256(json.dumps(self.config, sort_keys=True).encode()).hexdigest(),
            "inputs": self.inputs,
            "completed": completed,
            "updated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        if summary is not None:
            manifest["summary"] = dict(summary)
        atomic_write_json(self.path / MANIFEST, manifest)

    def finish(self, summary: Mapping[str, Any] | None = None) -> None:
        """Mark the stage complete in the manifest."""
        self.write_manifest(completed=True, summary=summary)

    # -- shards -----------------------------------------------------------------------------
    def shard_path(self, name: str, suffix: str = ".parquet") -> Path:
        return self.path / f"{name}{suffix}"

    def stats_path(self, name: str) -> Path:
        return self.path / f"{name}{STATS_SUFFIX}"

    def is_done(self, name: str) -> bool:
        """True when the shard's ``_stats.json`` marker exists."""
        return self.stats_path(name).is_file()

    def mark_done(self, name: str, stats: Mapping[str, Any]) -> None:
        """Write the shard's ``_stats.json`` (always last: it is what marks the shard done)."""
        atomic_write_json(self.stats_path(name), dict(stats))

    def read_stats(self, name: str) -> dict[str, Any]:
        return json.loads(self.stats_path(name).read_text())

    def done_shards(self) -> list[str]:
        """Names of the finished shards, sorted."""
        return sorted(p.name[: -len(STATS_SUFFIX)] for p in self.path.glob(f"*{STATS_SUFFIX}"))

    def write_table(self, name: str, table: Any, schema: Any = None, where: str | None = None) -> Path:
        """Validate ``table`` against ``schema`` (if given) and write ``<name>.parquet`` atomically."""
        if schema is not None:
            from janus_build.schemas import validate

            table = validate(table, schema, where or f"{self.stage} shard {name}")
        path = self.shard_path(name)
        write_parquet_atomic(path, table)
        return path
