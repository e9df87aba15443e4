"""``janus import laion``: LAION parquet as distributed -> a metadata stage with provenance.

Reads both column sets LAION published: LAION-400M and the first 2B release (``SAMPLE_ID``,
``URL``, ``TEXT``, ``HEIGHT``, ``WIDTH``, ``LICENSE``, ``NSFW``, ``similarity``) and the 2B
releases with safety scores (``URL``, ``TEXT``, ``WIDTH``, ``HEIGHT``, ``similarity``, ``hash``,
``punsafe``, ``pwatermark``, ``LANGUAGE``). One output shard per input file, written in record
batches (memory: one batch). Every LAION column is kept under its own name (``LICENSE``,
``NSFW``, ``punsafe`` reach the final shards); the provenance columns of
``schemas.IMPORT_LAION`` come first: ``source_id`` = ``SAMPLE_ID`` (else ``hash``), ``key`` =
``<prefix>-<source_id>``, ``license`` = the row's ``LICENSE`` in the project's vocabulary
(``--license`` only where LAION says ``?`` or nothing).
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from janus_build import schemas
from janus_build.core.keys import escape_component, path_key
from janus_build.core.stage import StageDir, fingerprint_file, shard_name
from janus_build.errors import InputError
from janus_build.importers.common import drop_stale_shards, license_name, open_stage
from janus_build.importers.config import LaionConfig
from janus_build.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)

ID_COLUMNS = ("SAMPLE_ID", "hash", "sample_id")
URL_COLUMNS = ("URL", "url")
LICENSE_COLUMNS = ("LICENSE", "license")
UNKNOWN_VALUES = ("", "?")
_PLAIN = re.compile(r"^[A-Za-z0-9-]+$")
BATCH_ROWS = 65_536


def resolve_inputs(inputs: tuple[str, ...]) -> list[Path]:
    """Files, directories (their ``*.parquet``, recursively) and globs -> sorted unique files."""
    import glob

    found: dict[str, Path] = {}
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            matches = sorted(p for p in path.rglob("*.parquet") if not p.name.startswith((".", "_")))
        elif path.is_file():
            matches = [path]
        else:
            matches = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
        if not matches:
            raise InputError(f"INPUT {item}: no such parquet file, directory or glob match")
        for match in matches:
            found.setdefault(os.fspath(match.resolve()), match.resolve())
    return [found[k] for k in sorted(found)]


def _first(names: list[str], candidates: tuple[str, ...]) -> str | None:
    return next((c for c in candidates if c in names), None)


def _licences(column: Any, default: str, counts: Counter) -> Any:
    """The ``license`` column: each distinct LAION value mapped once; unknown -> ``default``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column is None:
        return None
    values = pc.cast(column, pa.string())
    distinct = [v for v in pc.unique(values).to_pylist() if v is not None]
    mapped = {v: (default if v.strip() in UNKNOWN_VALUES else license_name(v) or default) for v in distinct}
    positions = pc.index_in(values, value_set=pa.array(distinct, pa.string()))
    table = pa.array([mapped[v] for v in distinct], pa.string())
    result = pc.fill_null(pc.take(table, positions), default)
    for value, n in zip(*pc.value_counts(result).flatten()):
        counts[value.as_py()] += n.as_py()
    return result


def _ids_and_keys(batch: Any, id_col: str | None, file_key: str, offset: int, prefix: str) -> tuple[Any, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    if id_col is None:  # no id column: the row's place in its file (unique by construction)
        ids = [f"{file_key}-{offset + i}" for i in range(batch.num_rows)]
        return pa.array(ids, pa.string()), pa.array(ids, pa.string())
    column = batch.column(id_col)
    if pa.types.is_floating(column.type):  # some LAION-400M parts store SAMPLE_ID as a double
        try:
            column = pc.cast(column, pa.int64())
        except pa.ArrowInvalid:
            pass  # fractional ids stay as written (their '.' is escaped in the key)
    ids = pc.cast(column, pa.string())
    if ids.null_count:
        raise InputError(f"{file_key}: column {id_col!r} has {ids.null_count} empty value(s); ids must be present")
    if pc.all(pc.match_substring_regex(ids, _PLAIN.pattern)).as_py() in (True, None):
        keys = pc.binary_join_element_wise(pa.scalar(prefix), ids, "-")
    else:
        keys = pa.array([f"{prefix}-{escape_component(v)}" for v in ids.to_pylist()], pa.string())
    return ids, keys


def _convert(batch: Any, plan: dict[str, Any], offset: int, licences: Counter) -> Any:
    """One LAION record batch -> provenance columns + every LAION column (renamed on collision)."""
    import pyarrow as pa

    n = batch.num_rows
    ids, keys = _ids_and_keys(batch, plan["id_col"], plan["file_key"], offset, plan["prefix"])
    licence_col = batch.column(plan["license_col"]) if plan["license_col"] else None
    licence = _licences(licence_col, plan["default_license"], licences)
    url = batch.column(plan["url_col"]).cast(pa.string()) if plan["url_col"] else pa.nulls(n, pa.string())
    columns = {
        schemas.KEY: keys,
        schemas.SOURCE: pa.array(["laion"] * n, pa.string()),
        schemas.SOURCE_ID: ids,
        schemas.URL: url,
        schemas.LICENSE: licence if licence is not None else pa.array([plan["default_license"]] * n, pa.string()),
        schemas.OWNER: pa.nulls(n, pa.string()),
        schemas.TITLE: pa.nulls(n, pa.string()),
        schemas.LABEL_SOURCE: pa.nulls(n, pa.string()),
    }
    for name in batch.schema.names:
        columns[plan["renames"].get(name, name)] = batch.column(name)
    return pa.table(columns)


def _plan(path: Path, root_key: str, config: LaionConfig) -> dict[str, Any]:
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    if _first(names, URL_COLUMNS) is None:
        raise InputError(f"{path}: no URL column (URL or url); columns present: {', '.join(names)}")
    own = set(schemas.IMPORT_LAION.names)
    return {
        "id_col": _first(names, ID_COLUMNS),
        "url_col": _first(names, URL_COLUMNS),
        "license_col": _first(names, LICENSE_COLUMNS),
        "renames": {n: f"{n}_laion" for n in names if n in own},
        "file_key": root_key,
        "prefix": config.key_prefix,
        "default_license": config.license,
    }


def _import_file(stage: StageDir, name: str, path: Path, plan: dict[str, Any], licences: Counter) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from janus_build.core.fsio import atomic_parquet_writer

    try:
        handle = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"{path}: not a readable parquet file ({exc})") from None
    rows = 0
    empty = _convert(handle.schema_arrow.empty_table(), plan, 0, Counter())
    writer_schema = schemas.validate(empty, schemas.IMPORT_LAION, os.fspath(path)).schema
    with atomic_parquet_writer(stage.shard_path(name), writer_schema) as writer:
        for batch in handle.iter_batches(batch_size=BATCH_ROWS):
            table = _convert(batch, plan, rows, licences)
            writer.write_table(table.cast(writer_schema))
            rows += batch.num_rows
    return rows


def import_laion(config: LaionConfig, progress: Progress = NULL_PROGRESS) -> dict[str, Any]:
    """Import LAION parquet files, one output shard per input file, in sorted path order.

    Returns:
        The summary written to the manifest: rows, shards, id column used, licences.

    Raises:
        InputError: an input matches no file, is not parquet, or lacks a URL column.
        OutputError: --out holds something else, or an earlier run with other options.
    """
    files = resolve_inputs(config.inputs)
    inputs = [fingerprint_file(p) for p in files]
    root = Path(os.path.commonpath([p.parent for p in files]))
    licences: Counter = Counter()
    written = rows = 0
    with open_stage(config, "import-laion", inputs) as stage:
        progress.start("import laion", total=len(files), unit="files")
        for index, (path, fingerprint) in enumerate(zip(files, inputs)):
            name = shard_name(index)
            if not stage.is_done(name, fingerprint):
                plan = _plan(path, path_key(config.key_prefix, path.relative_to(root).as_posix()), config)
                count = _import_file(stage, name, path, plan, licences)
                stage.mark_done(name, {"rows": count, "input": os.fspath(path)}, fingerprint)
                written += 1
            rows += int(stage.read_stats(name)["rows"])
            progress.advance("import laion")
        drop_stale_shards(stage, len(files))
        progress.finish("import laion")
        summary = {
            "rows": rows,
            "shards": len(files),
            "shards_written": written,
            "shards_skipped": len(files) - written,
            "licenses_written_this_run": dict(licences.most_common()),
        }
        stage.finish(summary)
    return summary
