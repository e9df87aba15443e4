"""What every importer shares: compressed inputs, input fingerprints, licence names and the
two shard writers (rows -> parquet metadata shards; files -> image shards), both resumable.

Resume: a shard is ``NNNNN`` of the importer's deterministic output order; its marker records
the fingerprint of every input file, so a re-run skips finished shards of unchanged inputs and
redoes the rest (streams are re-read, only missing shards are written). Shards beyond the end
of a shorter new output are removed.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import html
import io
import json
import logging
import os
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any

from janus_build.core.imaging import ImageCheck, check_image
from janus_build.core.shards import ImageShardWriter
from janus_build.core.stage import ShardDir, StageDir, fingerprint_file, shard_name
from janus_build.errors import InputError
from janus_build.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)

MAX_EXAMPLES = 10


# --- inputs ---------------------------------------------------------------------------------
def open_binary(path: Path, member_suffix: str = "") -> IO[bytes]:
    """Open a file as distributed: plain, ``.gz``, ``.bz2`` (streamed), or a ``.zip`` whose first
    member ending in ``member_suffix`` is read."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    name = path.name.lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".bz2"):
        return bz2.open(path, "rb")
    if name.endswith(".zip"):
        archive = zipfile.ZipFile(path)
        members = [m for m in archive.namelist() if m.lower().endswith(member_suffix) and not m.endswith("/")]
        if not members:
            raise InputError(f"{path}: the zip archive holds no {member_suffix or 'file'} member")
        return archive.open(sorted(members)[0])
    return open(path, "rb")


def open_text(path: Path, member_suffix: str = "") -> IO[str]:
    """:func:`open_binary` decoded as UTF-8 (undecodable bytes replaced), universal newlines off."""
    return io.TextIOWrapper(open_binary(path, member_suffix), encoding="utf-8", errors="replace", newline="")


def inputs_fingerprint(paths: Iterable[Path | None]) -> dict[str, Any]:
    """One fingerprint of several input files (path, size, mtime of each), for shard markers."""
    prints = [fingerprint_file(p) for p in paths if p is not None]
    digest = hashlib.sha256(json.dumps(prints, sort_keys=True).encode()).hexdigest()
    return {"inputs_sha256": digest}


def describe_inputs(paths: Iterable[Path | None]) -> list[dict[str, Any]]:
    """The manifest's ``inputs``: each file's fingerprint."""
    return [fingerprint_file(p) for p in paths if p is not None]


# --- the stage directory ----------------------------------------------------------------------
def open_stage(config: Any, stage: str, inputs: list[Any]) -> StageDir:
    """The output ``StageDir`` of an import (``config.out``), locked; ``VOLATILE`` options
    (workers, overwrite, out) may differ on resume, every other option must match."""
    from janus_build.importers.config import VOLATILE

    return StageDir(config.out, stage, config, inputs, overwrite=config.overwrite, volatile_keys=VOLATILE)


# --- text ---------------------------------------------------------------------------------------
_HTML_TAG = re.compile(r"<[^<>]*>")


def clean_html(text: str, *, strip_tags: bool = False) -> str:
    """Flickr text as people read it: HTML tags (``<a href=...>``) removed when asked, entities
    (``&amp;``, ``&quot;``) resolved, surrounding white space dropped."""
    if strip_tags and "<" in text:
        text = _HTML_TAG.sub(" ", text)
    if "&" in text:
        text = html.unescape(text)
    return text.strip()


def iter_json_list(handle: IO[str], where: str, chunk_chars: int = 1 << 20) -> Iterator[Any]:
    """The elements of one JSON list (``[{...}, {...}]``), read in chunks: memory is one element
    plus one chunk, whatever the file's size."""
    decoder = json.JSONDecoder()
    buffer, pos, started, eof = "", 0, False, False
    while True:
        while pos < len(buffer) and buffer[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(buffer):
            if eof:
                raise InputError(f"{where}: the JSON list ends early (no closing ']')")
            more = handle.read(chunk_chars)
            eof = not more
            buffer, pos = buffer[pos:] + more, 0
            continue
        if not started:
            if buffer[pos] != "[":
                raise InputError(f"{where}: expected a JSON list ('['), found {buffer[pos : pos + 20]!r}")
            started, pos = True, pos + 1
            continue
        if buffer[pos] == "]":
            return
        try:
            element, pos = decoder.raw_decode(buffer, pos)
        except json.JSONDecodeError as exc:
            if eof:
                raise InputError(
                    f"{where}: invalid JSON near character {exc.pos} of a list element ({exc.msg})"
                ) from None
            more = handle.read(chunk_chars)
            eof = not more
            buffer, pos = buffer[pos:] + more, 0
            continue
        yield element


# --- licences ---------------------------------------------------------------------------------
def _licence_tables() -> tuple[dict[str, str], dict[str, str]]:
    from janus_build.fetch.flickr import LICENSES

    by_url = {_url_stem(url): name for name, url in LICENSES.values() if url}
    # The names Flickr and YFCC100M print for them (YFCC's 'License name' field)
    by_name = {name.lower(): name for name, _url in LICENSES.values()}
    for words, code in (
        ("attribution-noncommercial-sharealike license", "CC BY-NC-SA 2.0"),
        ("attribution-noncommercial license", "CC BY-NC 2.0"),
        ("attribution-noncommercial-noderivs license", "CC BY-NC-ND 2.0"),
        ("attribution license", "CC BY 2.0"),
        ("attribution-sharealike license", "CC BY-SA 2.0"),
        ("attribution-noderivs license", "CC BY-ND 2.0"),
    ):
        by_name[words] = code
    return by_url, by_name


def _url_stem(url: str) -> str:
    stem = url.strip().lower().split("://", 1)[-1].rstrip("/")
    return stem[4:] if stem.startswith("www.") else stem


_TABLES: tuple[dict[str, str], dict[str, str]] | None = None


def license_name(raw: str | None, url: str | None = None) -> str | None:
    """The project's licence name (Flickr's vocabulary: ``CC BY 2.0``, ``CC BY-NC-SA 2.0``, ...)
    for a licence name or deed URL as a source prints it; an unknown value is returned as it is,
    an empty one as None."""
    global _TABLES
    if _TABLES is None:
        _TABLES = _licence_tables()
    by_url, by_name = _TABLES
    for value in (url, raw):
        found = by_url.get(_url_stem(value)) if value and "://" in value else None
        if found:
            return found
    text = (raw or "").strip()
    if not text:
        return None
    return by_name.get(text.lower(), text)


# --- metadata shards ------------------------------------------------------------------------
class RowShards:
    """Stream rows into ``NNNNN.parquet`` shards of ``shard_size`` rows, resumably.

    A shard is written as it fills, one row group of ``batch_rows`` at a time, to a temporary
    file renamed into place when the shard is complete (then its marker): memory is one row
    group whatever the shard size. A shard whose marker exists for the same input fingerprint
    is not written again (its rows are only counted).
    """

    def __init__(
        self,
        stage: StageDir,
        schema: Any,
        shard_size: int,
        fingerprint: Mapping[str, Any],
        batch_rows: int = 10_000,
    ) -> None:
        self.stage, self.schema, self.shard_size = stage, schema, shard_size
        self.fingerprint = dict(fingerprint)
        self.batch_rows = min(batch_rows, shard_size)
        self.columns: list[tuple[str, list[Any]]] = [(name, []) for name in schema.names]
        self.buffered = self.in_shard = self.index = self.rows = self.written = 0
        self._skip: bool | None = None  # this shard is already done
        self._target: Any = None  # (atomic_path context, temporary path, ParquetWriter)

    def add(self, row: Mapping[str, Any]) -> None:
        if self._skip is None:
            self._skip = self.stage.is_done(shard_name(self.index), self.fingerprint)
        if not self._skip:
            for name, values in self.columns:
                values.append(row.get(name))
            self.buffered += 1
            if self.buffered >= self.batch_rows:
                self._write_batch()
        self.in_shard += 1
        self.rows += 1
        if self.in_shard >= self.shard_size:
            self._finish_shard()

    def _write_batch(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from janus_build.core.fsio import atomic_path
        from janus_build.schemas import validate

        name = shard_name(self.index)
        table = validate(pa.table({n: v for n, v in self.columns}, schema=self.schema), self.schema, name)
        if self._target is None:
            context = atomic_path(self.stage.shard_path(name))
            tmp = context.__enter__()
            self._target = (context, pq.ParquetWriter(tmp, self.schema, compression="zstd"))
        self._target[1].write_table(table)
        self.columns = [(n, []) for n, _ in self.columns]
        self.buffered = 0

    def _finish_shard(self) -> None:
        if not self._skip and self.in_shard:
            if self.buffered:
                self._write_batch()
            context, writer = self._target
            writer.close()
            context.__exit__(None, None, None)
            self.stage.mark_done(shard_name(self.index), {"rows": self.in_shard}, self.fingerprint)
            self.written += 1
        self._target, self._skip = None, None
        self.in_shard = 0
        self.index += 1

    def __enter__(self) -> RowShards:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            self.abort()

    def abort(self) -> None:
        """Drop the shard being written (its temporary file) after an error."""
        if self._target is not None:
            context, writer = self._target
            writer.close()
            context.__exit__(RuntimeError, RuntimeError("aborted"), None)
            self._target = None

    def close(self) -> dict[str, int]:
        """Write the last shard, drop shards an earlier, longer output left; return counts."""
        if self.in_shard:
            self._finish_shard()
        drop_stale_shards(self.stage, self.index)
        return {"rows": self.rows, "shards": self.index, "shards_written": self.written}


def drop_stale_shards(shards: ShardDir, count: int, suffixes: tuple[str, ...] = (".parquet",)) -> None:
    """Remove shards numbered ``count`` and above (an earlier run's output was longer)."""
    for name in shards.done_shards():
        if int(name) >= count:
            shards.unmark(name)
            for suffix in suffixes:
                shards.shard_path(name, suffix).unlink(missing_ok=True)


# --- image shards ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FileSample:
    """One image file to import: its key, path and index metadata."""

    key: str
    path: Path | None
    metadata: Mapping[str, Any]


def read_checked(path: Path | None) -> tuple[bytes | None, ImageCheck]:
    """A file's bytes and header check; a missing or unreadable file is a failure row."""
    if path is None:
        return None, ImageCheck(None, "missing_image", "no image file for this row")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, ImageCheck(None, "missing_image", f"no such file {path.name}")
    except OSError as exc:
        return None, ImageCheck(None, "read_error", f"{type(exc).__name__}: {exc.strerror or exc}")
    check = check_image(data)
    return (data if check.ok else None), check


def write_image_shards(
    stage: StageDir,
    samples: Iterable[FileSample],
    *,
    shard_size: int,
    workers: int,
    index_schema: Any,
    fingerprint: Mapping[str, Any] | None = None,
    progress: Progress = NULL_PROGRESS,
    task: str = "import images",
) -> dict[str, int]:
    """Write ``samples`` (a stream, in output order) as image shards of ``shard_size``.

    Files are read by ``workers`` threads; images are stored as their bytes (never re-encoded)
    with ``width``/``height`` from the header; unusable files are rows with ``status``.
    """
    iterator: Iterator[FileSample] = iter(samples)
    index = written = rows = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        while chunk := list(islice(iterator, shard_size)):
            name = shard_name(index)
            index += 1
            rows += len(chunk)
            if not stage.is_done(name, fingerprint):
                _write_image_shard(stage, name, chunk, pool, index_schema, fingerprint)
                written += 1
            progress.advance(task, len(chunk))
    drop_stale_shards(stage, index, (".parquet", ".tar"))
    return {"rows": rows, "shards": index, "shards_written": written}


def _write_image_shard(
    stage: StageDir,
    name: str,
    chunk: list[FileSample],
    pool: ThreadPoolExecutor,
    index_schema: Any,
    fingerprint: Mapping[str, Any] | None,
) -> None:
    writer = ImageShardWriter(stage.path, name, mtime=0, index_schema=index_schema)
    try:
        for sample, (data, check) in zip(chunk, pool.map(read_checked, (s.path for s in chunk))):
            metadata = {**sample.metadata, "width": check.width, "height": check.height}
            writer.write(
                sample.key, data, metadata, image_ext=check.ext or "jpg", status=check.status, error_message=check.error
            )
    except BaseException:
        writer.abort()
        raise
    # the marker records what the shard was made from (ShardDir.is_done compares it)
    writer.close({"input_fingerprint": dict(fingerprint)} if fingerprint is not None else None)


def summarise_index(shards: ShardDir, label_col: str | None = "label") -> dict[str, Any]:
    """Counts over a finished image stage: rows, successes, failures by status with examples,
    and per-class successes."""
    import pyarrow.parquet as pq

    statuses: dict[str, int] = {}
    per_class: dict[int, int] = {}
    examples: dict[str, list[str]] = {}
    for name in shards.done_shards():
        columns = ["key", "status", "source_id"] + ([label_col] if label_col else [])
        table = pq.read_table(shards.shard_path(name), columns=columns).to_pydict()
        labels = table[label_col] if label_col else [None] * len(table["key"])
        for status, source_id, label in zip(table["status"], table["source_id"], labels):
            statuses[status] = statuses.get(status, 0) + 1
            if status == "success" and label is not None:
                per_class[label] = per_class.get(label, 0) + 1
            elif status != "success" and len(examples.setdefault(status, [])) < MAX_EXAMPLES:
                examples[status].append(source_id)
    failures = {k: v for k, v in sorted(statuses.items()) if k != "success"}
    if failures:
        log.warning("rows without a usable image: %s", ", ".join(f"{k} {v}" for k, v in failures.items()))
    return {
        "rows": sum(statuses.values()),
        "successes": statuses.get("success", 0),
        "failures": failures,
        "failure_examples": examples,
        "per_class": {str(c): per_class[c] for c in sorted(per_class)},
    }


def check_dir(path: Path, flag: str, expected: str) -> Path:
    """``path`` if it is a directory, else an :class:`InputError` naming the flag."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{flag} {path}: no such directory (expected {expected})")
    return path


def relative_posix(path: Path, root: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()
