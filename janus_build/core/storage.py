"""Local paths and object-store URIs behind one interface (pyarrow filesystems; fsspec as fallback).

``s3://bucket/prefix`` (credentials from the usual ``AWS_*`` variables; ``AWS_ENDPOINT_URL_S3``
or ``AWS_ENDPOINT_URL`` override the endpoint, e.g. MinIO or a test server), ``gs://``,
``hdfs://`` and ``file://`` are pyarrow's own filesystems; any other scheme fsspec knows
(``az://``, ``abfs://``, ...) goes through fsspec. A plain path is the local filesystem.

A stage output on an object store is a :class:`StoreStageDir`: the same layout and resume rule as
:class:`janus_build.core.stage.StageDir` (``_manifest.json``, ``_stats/NNNNN.json`` written
last), with two differences the stores impose: a shard is written under ``_tmp/`` and then moved
to its name (a rename on HDFS; a server-side copy + delete on S3/GCS, so the named object
appears whole or not at all), and there is no lock (object stores have no ``flock``): run one
``janus`` process per output prefix.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import json
import logging
import os
import secrets
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

from janus_build.errors import ConfigError, InputError, OutputError

log = logging.getLogger(__name__)

TMP_DIR = "_tmp"
ARROW_SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs")


def scheme_of(location: str) -> str:
    """The URI scheme of ``location`` (``""`` for a plain path; a Windows drive is no scheme)."""
    head, sep, _ = str(location).partition("://")
    return head.lower() if sep and len(head) > 1 and head.replace("+", "").isalnum() else ""


def is_remote(location: str) -> bool:
    """True for a URI that is not on the local filesystem (``file://`` and plain paths are local)."""
    return scheme_of(location) not in ("", "file")


def local_path(location: str) -> str:
    """The local path of a plain path or ``file://`` URI."""
    if scheme_of(location) == "file":
        return unquote(urlsplit(location).path)
    return os.fspath(location)


def filesystem(location: str) -> tuple[Any, str]:
    """``(pyarrow filesystem, path within it)`` for a path or URI.

    Raises:
        ConfigError: the scheme is unknown or its filesystem cannot be created (missing library,
            bad options); the message names the location.
    """
    scheme = scheme_of(location)
    if not scheme or scheme == "file":
        from pyarrow import fs

        return fs.LocalFileSystem(), os.path.abspath(local_path(location))
    parts = urlsplit(location)
    handle = _filesystem(scheme, parts.netloc, parts.query)
    path = f"{parts.netloc}{parts.path}" if scheme in ("s3", "gs", "gcs") else parts.path
    if scheme not in ARROW_SCHEMES:
        path = f"{parts.netloc}{parts.path}"
    return handle, path.rstrip("/") or "/"


@lru_cache(maxsize=32)
def _filesystem(scheme: str, netloc: str, query: str) -> Any:
    from pyarrow import fs

    try:
        if scheme == "s3":
            return _s3(query)
        if scheme in ARROW_SCHEMES:
            return fs.FileSystem.from_uri(f"{scheme}://{netloc}/" + (f"?{query}" if query else ""))[0]
        import fsspec

        return fs.PyFileSystem(fs.FSSpecHandler(fsspec.filesystem(scheme)))
    except (ImportError, ValueError, OSError) as exc:  # pyarrow's errors subclass these
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"{scheme}://{netloc}: cannot open this filesystem ({first})") from None


def _s3(query: str) -> Any:
    from urllib.parse import parse_qs

    from pyarrow import fs

    options = {k: v[-1] for k, v in parse_qs(query).items()}
    endpoint = (
        options.get("endpoint_override") or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )
    kwargs: dict[str, Any] = {}
    if endpoint:
        split = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs.update(endpoint_override=split.netloc, scheme=split.scheme)
    region = options.get("region") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        kwargs["region"] = region
    return fs.S3FileSystem(**kwargs)


def join(location: str, *names: str) -> str:
    """``location`` + ``/name``... for a path or URI."""
    out = str(location).rstrip("/")
    for name in names:
        out = f"{out}/{name}"
    return out


def expand(location: str) -> list[str]:
    """The parquet files a remote input names: itself, every ``*.parquet`` below a prefix, or a glob.

    Returned as URIs in the input's own scheme, sorted. (Local inputs are expanded by the caller.)

    Raises:
        InputError: nothing matches, or the store cannot be listed.
    """
    from pyarrow import fs as pafs

    handle, path = filesystem(location)
    try:
        if not any(c in path for c in "*?["):
            info = handle.get_file_info(path)
            if info.type == pafs.FileType.File:
                return [location]
            if info.type != pafs.FileType.Directory:
                raise InputError(f"INPUT {location}: no such file, directory or glob match")
            found = _listing(handle, path)
            if not found:
                raise InputError(f"INPUT {location}: holds no .parquet files")
        else:
            static = path[: min(path.find(c) for c in "*?[" if c in path)].rsplit("/", 1)[0]
            found = [p for p in _listing(handle, static, any_suffix=True) if fnmatch.fnmatchcase(p, path)]
    except OSError as exc:
        raise InputError(f"INPUT {location}: cannot list ({str(exc).splitlines()[0]})") from None
    if not found:
        raise InputError(f"INPUT {location}: no such file, directory or glob match")
    return [uri_of(location, p) for p in found]


def uri_of(location: str, path: str) -> str:
    """The URI, in ``location``'s scheme (and host), of ``path`` on its filesystem."""
    scheme = scheme_of(location)
    if scheme in ARROW_SCHEMES and scheme not in ("s3", "gs", "gcs"):
        return f"{scheme}://{urlsplit(location).netloc}{path}"
    return f"{scheme}://{path}"


def _listing(handle: Any, root: str, any_suffix: bool = False) -> list[str]:
    from pyarrow import fs as pafs

    infos = handle.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    out = []
    for info in infos:
        if info.type != pafs.FileType.File or any(part.startswith((".", "_")) for part in info.path.split("/")[-1:]):
            continue
        if any_suffix or info.path.endswith(".parquet"):
            out.append(info.path)
    return sorted(out)


def fingerprint(location: str) -> dict[str, Any]:
    """An input's fingerprint: location, size and modification time (ns) - see ``fingerprint_file``.

    A local location is taken as resolved when absolute (as ``resolve_inputs`` gives it).
    """
    if not is_remote(location):
        from janus_build.core.stage import fingerprint_file

        path = local_path(location)
        return fingerprint_file(path, resolved=os.path.isabs(path))
    handle, path = filesystem(location)
    try:
        info = handle.get_file_info(path)
    except OSError as exc:
        raise InputError(f"{location}: cannot read ({str(exc).splitlines()[0]})") from None
    mtime = info.mtime_ns if info.mtime is not None else None
    return {"path": location, "size": info.size, "mtime_ns": mtime}


def open_input(location: str) -> Any:
    """A seekable pyarrow input file for a path or URI (the caller closes it)."""
    if not is_remote(location):
        return local_path(location)
    handle, path = filesystem(location)
    return handle.open_input_file(path)


# --- stage outputs on object stores ---------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class StoreShardDir:
    """:class:`janus_build.core.stage.ShardDir` on any pyarrow filesystem (picklable: a URI)."""

    uri: str

    @property
    def path(self) -> str:
        return self.uri

    @property
    def fs(self) -> Any:
        return filesystem(self.uri)[0]

    @property
    def root(self) -> str:
        return filesystem(self.uri)[1]

    def _path(self, *names: str) -> str:
        return join(self.root, *names)

    def shard_path(self, name: str, suffix: str = ".parquet") -> str:
        return join(self.uri, f"{name}{suffix}")

    def _read_json(self, *names: str) -> dict[str, Any] | None:
        try:
            with self.fs.open_input_stream(self._path(*names)) as handle:
                return json.loads(handle.read())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as exc:
            if "not exist" in str(exc).lower() or "NoSuchKey" in str(exc):
                return None
            raise OutputError(f"{join(self.uri, *names)}: unreadable ({str(exc).splitlines()[0]})") from None

    def write_bytes(self, name: str, data: bytes) -> None:
        """Write one small object whole (a single PUT: it appears complete or not at all)."""
        try:
            with self.fs.open_output_stream(self._path(name)) as handle:
                handle.write(data)
        except OSError as exc:
            raise OutputError(f"--out {join(self.uri, name)}: cannot write ({str(exc).splitlines()[0]})") from None

    def write_json(self, name: str, obj: Any) -> None:
        from janus_build.core.fsio import json_default

        self.write_bytes(name, (json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n").encode())

    def read_stats(self, name: str) -> dict[str, Any]:
        return self._read_json("_stats", f"{name}.json") or {}

    def is_done(self, name: str, input_fingerprint: Mapping[str, Any] | None = None) -> bool:
        from janus_build.core.stage import marker_current

        record = self._read_json("_stats", f"{name}.json")
        return record is not None and marker_current(record, input_fingerprint, self.uri, name)

    def mark_done(
        self, name: str, stats: Mapping[str, Any], input_fingerprint: Mapping[str, Any] | None = None
    ) -> None:
        from janus_build.core.stage import marker_record

        self.write_json(f"_stats/{name}.json", marker_record(stats, input_fingerprint))

    def done_shards(self) -> list[str]:
        from pyarrow import fs as pafs

        infos = self.fs.get_file_info(pafs.FileSelector(self._path("_stats"), allow_not_found=True))
        return sorted(i.base_name[: -len(".json")] for i in infos if i.base_name.endswith(".json"))

    def prune(self, keep: Iterable[str]) -> list[str]:
        """:meth:`janus_build.core.stage.ShardDir.prune` on the store: markers first, then shard objects."""
        from pyarrow import fs as pafs

        from janus_build.core.stage import is_shard_stem

        keep = set(keep)
        infos = self.fs.get_file_info(pafs.FileSelector(self.root, allow_not_found=True))
        stems = {i.base_name.split(".")[0] for i in infos if i.type == pafs.FileType.File} | set(self.done_shards())
        stale = sorted(s for s in stems if is_shard_stem(s) and s not in keep)
        for name in stale:
            with contextlib.suppress(FileNotFoundError):
                self.fs.delete_file(self._path("_stats", f"{name}.json"))
            for info in infos:
                if info.type == pafs.FileType.File and info.base_name.split(".")[0] == name:
                    with contextlib.suppress(FileNotFoundError):
                        self.fs.delete_file(info.path)
        return stale

    @contextlib.contextmanager
    def parquet_writer(self, name: str, schema: Any, **kwargs: Any) -> Iterator[Any]:
        """A streaming parquet writer for ``<name>.parquet``: written under ``_tmp/``, moved on success."""
        import pyarrow.parquet as pq

        kwargs.setdefault("compression", "zstd")
        handle = self.fs
        tmp = self._path(TMP_DIR, f"{name}.{os.getpid()}-{secrets.token_hex(4)}.parquet")
        try:
            with handle.open_output_stream(tmp) as sink:
                writer = pq.ParquetWriter(sink, schema, **kwargs)
                try:
                    yield writer
                finally:
                    writer.close()
            handle.move(tmp, self._path(f"{name}.parquet"))
        finally:
            with contextlib.suppress(OSError):
                handle.delete_file(tmp)


class StoreStageDir(StoreShardDir):
    """A stage output directory on an object store (see the module docstring); no lock."""

    def __init__(
        self,
        uri: str,
        stage: str,
        config: Any,
        inputs: Iterable[Any] = (),
        *,
        overwrite: bool = False,
        volatile_keys: Iterable[str] = (),
    ) -> None:
        from janus_build.core.fsio import json_default
        from janus_build.core.stage import DEFAULT_VOLATILE, config_dict

        object.__setattr__(self, "uri", str(uri).rstrip("/"))
        self.stage = stage
        self.config = config_dict(config)
        self.inputs = json.loads(json.dumps(list(inputs), default=json_default))
        self.volatile = set(volatile_keys) | set(DEFAULT_VOLATILE) | {"out"}
        self.resumed = False
        self._open(overwrite)

    def __reduce__(self) -> tuple[Any, ...]:
        return (StoreShardDir, (self.uri,))

    def _open(self, overwrite: bool) -> None:
        from pyarrow import fs as pafs

        from janus_build.core.stage import config_differences

        try:
            entries = self.fs.get_file_info(pafs.FileSelector(self.root, allow_not_found=True))
        except OSError as exc:
            raise OutputError(f"--out {self.uri}: cannot list ({str(exc).splitlines()[0]})") from None
        manifest = self._read_json("_manifest.json")
        if manifest is None and entries:
            raise OutputError(
                f"--out {self.uri}: not empty and holds no janus manifest (found {entries[0].base_name!r}); "
                "choose an empty or new prefix"
            )
        if manifest is not None and overwrite:
            log.warning("--overwrite: removing the earlier %s output in %s", self.stage, self.uri)
            self.fs.delete_dir_contents(self.root, missing_dir_ok=True)
            manifest = None
        if manifest is not None:
            if manifest.get("stage") != self.stage:
                raise OutputError(f"--out {self.uri}: holds the output of 'janus {manifest.get('stage')}'")
            differing = config_differences(manifest.get("config", {}), self.config, self.volatile)
            if differing and self.done_shards():
                raise OutputError(
                    f"--out {self.uri}: an earlier run used other options ({'; '.join(differing)}); "
                    "resume with the same options, or pass --overwrite to start again"
                )
            self.resumed = True
        self._sweep()
        self.write_manifest(completed=False)

    def _sweep(self) -> None:
        """Remove what an interrupted run left under ``_tmp/`` (no other run writes here: see the docstring)."""
        with contextlib.suppress(OSError):
            self.fs.delete_dir(self._path(TMP_DIR))

    def write_manifest(self, *, completed: bool, summary: Mapping[str, Any] | None = None) -> None:
        from janus_build.core.stage import manifest_record

        self.write_json("_manifest.json", manifest_record(self.stage, self.config, self.inputs, completed, summary))

    def finish(self, summary: Mapping[str, Any] | None = None) -> None:
        self._sweep()
        self.write_manifest(completed=True, summary=summary)

    def close(self) -> None:
        """Nothing to release (object stores have no lock)."""

    def __enter__(self) -> StoreStageDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_stage_dir(location: str, stage: str, config: Any, inputs: Iterable[Any] = (), **kwargs: Any) -> Any:
    """A :class:`~janus_build.core.stage.StageDir` for a local path, a :class:`StoreStageDir` for a URI."""
    if is_remote(location):
        return StoreStageDir(location, stage, config, inputs, **kwargs)
    from janus_build.core.stage import StageDir

    return StageDir(local_path(location), stage, config, inputs, **kwargs)
