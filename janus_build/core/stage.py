"""Stage directories: one lock, one manifest, shard done-markers, input fingerprints.

Layout of every stage output (see docs/data-contract.md)::

    DIR/_manifest.json        stage, version, config, input fingerprints, completed
    DIR/_lock                 held (flock) by the run writing DIR; names its pid
    DIR/_stats/NNNNN.json     a shard's done-marker, written last (it holds the shard's stats)
    DIR/NNNNN.parquet ...     the shards themselves
    DIR/<sub>/_stats/...      a sub-directory of shards (images/, train/, ...) has its own markers

Every janus file other than the shards starts with ``_`` (or ``.`` for temporaries), the names
pyarrow.dataset, pandas, DuckDB and Spark skip, so a parquet shard directory opens as-is.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from janus_build import __version__
from janus_build.core.fsio import atomic_write_json, json_default, sweep_temporaries
from janus_build.core.lock import StageLock
from janus_build.errors import InputError, OutputError

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
LEGACY_MANIFEST = "manifest.json"
MARKERS = "_stats"
LOCK = "_lock"
DEFAULT_VOLATILE = ("workers", "progress", "overwrite", "verbose", "out")


def shard_name(index: int) -> str:
    """The zero-padded shard stem, e.g. ``00007``."""
    return f"{index:05d}"


def is_shard_stem(stem: str) -> bool:
    """True for a name :func:`shard_name` makes (five or more digits)."""
    return len(stem) >= 5 and stem.isdigit()


def _redacted(value: Any) -> Any:
    from janus_build.log import redact

    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    return value


def config_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass: paths resolved to absolute strings, secrets redacted."""
    raw = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)

    def resolve(value: Any) -> Any:
        if isinstance(value, os.PathLike):
            return os.fspath(Path(value).expanduser().resolve())
        if isinstance(value, (list, tuple)):
            return [resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        return value

    return _redacted(json.loads(json.dumps(resolve(raw), default=json_default)))


def fingerprint_file(path: str | os.PathLike[str], resolved: bool = False) -> dict[str, Any]:
    """An input file's fingerprint: resolved path, size and modification time (ns).

    Size + mtime catches every ordinary rewrite (tools rewrite whole files) at the cost of one
    ``stat``; a content hash would read every input twice. A file replaced by one of the same
    size within the same nanosecond is not caught. ``resolved``: ``path`` is already resolved
    (saves a ``stat`` per directory level, for callers fingerprinting thousands of files).
    """
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    real = os.fspath(path) if resolved else os.fspath(Path(path).resolve())
    return {"path": real, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The manifest of a stage directory (``_manifest.json``, or an older ``manifest.json``), or None."""
    for name in (MANIFEST, LEGACY_MANIFEST):
        file = Path(path) / name
        if file.is_file():
            try:
                return json.loads(file.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise OutputError(f"{file}: unreadable manifest ({exc})") from None
    return None


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any], volatile: Iterable[str]) -> list[str]:
    """``["key: was X, now Y", ...]`` for every result-changing option that differs (the resume rule)."""
    keys = (set(old) | set(new)) - set(volatile)
    return [f"{k}: was {old.get(k)!r}, now {new.get(k)!r}" for k in sorted(keys) if old.get(k) != new.get(k)]


def manifest_record(
    stage: str, config: Mapping[str, Any], inputs: Any, completed: bool, summary: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The content of ``_manifest.json`` (one definition for local and object-store outputs)."""
    manifest: dict[str, Any] = {
        "stage": stage,
        "janus_build_version": __version__,
        "config": config,
        "config_sha256": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest(),
        "inputs": inputs,
        "completed": completed,
        "updated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if summary is not None:
        manifest["summary"] = _redacted(json.loads(json.dumps(dict(summary), default=json_default)))
    return manifest


def marker_record(stats: Mapping[str, Any], input_fingerprint: Mapping[str, Any] | None) -> dict[str, Any]:
    """A done-marker's content: the shard's stats and the fingerprint of the input it was made from."""
    record = dict(stats)
    if input_fingerprint is not None:
        record["input_fingerprint"] = dict(input_fingerprint)
    return record


def marker_current(
    record: Mapping[str, Any], input_fingerprint: Mapping[str, Any] | None, where: Any, name: str
) -> bool:
    """False when the marker recorded another input than ``input_fingerprint`` (the input changed)."""
    recorded = record.get("input_fingerprint")
    if input_fingerprint is not None and recorded is not None and recorded != dict(input_fingerprint):
        log.warning("%s: shard %s was made from an input that has changed since; redoing it", where, name)
        return False
    return True


@dataclasses.dataclass(frozen=True)
class ShardDir:
    """A directory of shards with done-markers; picklable, so worker processes get one.

    A shard ``NNNNN`` is done when ``_stats/NNNNN.json`` exists and, if it recorded the
    fingerprint of the input it was made from, that input is unchanged.
    """

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def markers(self) -> Path:
        return self.path / MARKERS

    def shard_path(self, name: str, suffix: str = ".parquet") -> Path:
        return self.path / f"{name}{suffix}"

    def marker_path(self, name: str) -> Path:
        return self.markers / f"{name}.json"

    def read_stats(self, name: str) -> dict[str, Any]:
        """The stats a done shard recorded."""
        return json.loads(self.marker_path(name).read_text())

    def is_done(self, name: str, input_fingerprint: Mapping[str, Any] | None = None) -> bool:
        """True when the shard is finished (and made from this input, when one is given)."""
        marker = self.marker_path(name)
        if not marker.is_file():
            return False
        try:
            record = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            return False
        return marker_current(record, input_fingerprint, self.path, name)

    def mark_done(
        self, name: str, stats: Mapping[str, Any], input_fingerprint: Mapping[str, Any] | None = None
    ) -> None:
        """Write the shard's marker: call it last, after every file of the shard is in place."""
        atomic_write_json(self.marker_path(name), marker_record(stats, input_fingerprint))

    def unmark(self, name: str) -> None:
        """Forget a shard (its files are overwritten by the next write)."""
        self.marker_path(name).unlink(missing_ok=True)

    def done_shards(self) -> list[str]:
        """Names of the finished shards, sorted."""
        if not self.markers.is_dir():
            return []
        return sorted(p.name[: -len(".json")] for p in self.markers.glob("*.json") if not p.name.startswith("."))

    def prune(self, keep: Iterable[str]) -> list[str]:
        """Remove every shard not named in ``keep`` (its marker first, then its files); returns their names.

        A resumed run whose shard plan changed (an input changed) calls it, so a shard of the
        earlier plan never stays beside the new ones holding the same rows twice.
        """
        keep = set(keep)
        stems = {p.name.split(".")[0] for p in self.path.iterdir() if p.is_file()} | set(self.done_shards())
        stale = sorted(s for s in stems if is_shard_stem(s) and s not in keep)
        for name in stale:
            self.unmark(name)
            for path in self.path.glob(f"{name}.*"):
                path.unlink(missing_ok=True)
        return stale

    def all_stats(self) -> dict[str, dict[str, Any]]:
        """``{shard: stats}`` of every finished shard."""
        return {name: self.read_stats(name) for name in self.done_shards()}

    def write_table(self, name: str, table: Any, schema: Any = None, where: str | None = None) -> Path:
        """Validate ``table`` against ``schema`` (if given) and write ``<name>.parquet`` atomically."""
        from janus_build.core.fsio import write_parquet_atomic

        if schema is not None:
            from janus_build.schemas import validate

            table = validate(table, schema, where or f"shard {self.path / name}")
        path = self.shard_path(name)
        write_parquet_atomic(path, table)
        return path

    def parquet_writer(self, name: str, schema: Any, **kwargs: Any) -> Any:
        """A streaming writer for ``<name>.parquet`` (context manager; the file appears when it closes cleanly)."""
        from janus_build.core.fsio import atomic_parquet_writer

        return atomic_parquet_writer(self.shard_path(name), schema, **kwargs)

    def write_json(self, name: str, obj: Any) -> None:
        """Write ``obj`` as JSON to ``<dir>/<name>`` atomically (a summary such as ``_stats.json``)."""
        atomic_write_json(self.path / name, obj)

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write ``data`` to ``<dir>/<name>`` atomically (a chart, a report)."""
        from janus_build.core.fsio import atomic_write_bytes

        atomic_write_bytes(self.path / name, data)

    def sub(self, name: str) -> ShardDir:
        """A sub-directory of shards (``images``, ``train``, ...) with its own markers."""
        return ShardDir(self.path / name)


class StageDir(ShardDir):
    """An output directory of one stage, opened for writing and locked for the run.

    Opening it takes the directory's lock (released when the process exits or dies), removes
    temporaries an interrupted run left, and resumes an earlier run when its result-changing
    options equal these; the output path itself never counts (the manifest lives inside the
    directory, so a moved or differently spelled ``--out`` resumes).

    Args:
        path: the output directory.
        stage: the stage name recorded in the manifest (``match``, ``fetch``, ...).
        config: the stage's options (a frozen dataclass or mapping), recorded in the manifest.
        inputs: input fingerprints or descriptions, recorded in the manifest.
        overwrite: delete an earlier output of this stage (never a foreign directory's files).
        volatile_keys: config keys that may differ on resume (worker counts, progress, ...).

    Raises:
        OutputError: the directory is locked by another run, holds something that is not this
            stage's output, or an earlier run with other result-changing options.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        stage: str,
        config: Any,
        inputs: Iterable[Any] = (),
        *,
        overwrite: bool = False,
        volatile_keys: Iterable[str] = DEFAULT_VOLATILE,
    ) -> None:
        super().__init__(Path(path))
        self.stage = stage
        self.config = config_dict(config)
        self.inputs = _redacted(json.loads(json.dumps(list(inputs), default=json_default)))
        self.resumed = False
        self._volatile = set(volatile_keys) | {"out"}
        self.lock = StageLock(self.path / LOCK, self.path, f"janus {stage}")
        self._open(overwrite)

    def __reduce__(self) -> tuple[Any, ...]:  # workers get the plain shard directory
        return (ShardDir, (self.path,))

    def _open(self, overwrite: bool) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise OutputError(f"--out {self.path}: exists and is not a directory")
        foreign = self._foreign_entries()
        if foreign:
            raise OutputError(
                f"--out {self.path}: the directory is not empty and holds no janus manifest "
                f"(found {foreign[0]!r}); choose an empty or new directory"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()
        sweep_temporaries(self.path)
        manifest = read_manifest(self.path)
        if manifest is not None and overwrite:
            self._clear()
            manifest = None
        if manifest is not None:
            self._check_resume(manifest)
        self.write_manifest(completed=False)

    def _foreign_entries(self) -> list[str]:
        if not self.path.is_dir() or read_manifest(self.path) is not None:
            return []
        return sorted(
            p.name for p in self.path.iterdir() if p.name not in (LOCK, MARKERS) and not p.name.startswith(".")
        )

    def _check_resume(self, manifest: Mapping[str, Any]) -> None:
        if manifest.get("stage") != self.stage:
            raise OutputError(
                f"--out {self.path}: holds the output of 'janus {manifest.get('stage')}', not 'janus {self.stage}'; "
                "choose another directory"
            )
        differing = config_differences(manifest.get("config", {}), self.config, self._volatile)
        if differing and not self.holds_work():
            log.info("%s: an earlier run with other options finished nothing; starting with the new options", self.path)
            differing = []
        if differing:
            detail = "; ".join(differing)
            raise OutputError(
                f"--out {self.path}: an earlier run used other options ({detail}); "
                "resume with the same options, or pass --overwrite to start again"
            )
        self.resumed = True
        log.info("resuming %s in %s", self.stage, self.path)

    def holds_work(self) -> bool:
        """True when anything besides janus's own files is in the directory."""
        return any(
            p.name not in (MANIFEST, LEGACY_MANIFEST, LOCK) and not p.name.startswith(".") for p in self.path.iterdir()
        )

    def _clear(self) -> None:
        import shutil

        log.warning("--overwrite: removing the earlier %s output in %s", self.stage, self.path)
        for child in self.path.iterdir():
            if child.name == LOCK:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    def write_manifest(self, *, completed: bool, summary: Mapping[str, Any] | None = None) -> None:
        """(Re)write ``_manifest.json`` with the stage, version, config, inputs and state."""
        atomic_write_json(
            self.path / MANIFEST, manifest_record(self.stage, self.config, self.inputs, completed, summary)
        )

    def finish(self, summary: Mapping[str, Any] | None = None) -> None:
        """Mark the stage complete in the manifest and release the lock."""
        self.write_manifest(completed=True, summary=summary)
        self.close()

    def close(self) -> None:
        """Release the lock (also released when the process exits or dies)."""
        self.lock.release()

    def __enter__(self) -> StageDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
