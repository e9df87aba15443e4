"""``janus import url-list``: the labelled rows of a stage as an img2dataset input list.

Reads a ``janus match`` output or a metadata import (``janus import openimages`` without
``--image-dir``, ``yfcc``, ``laion``) and writes one parquet file img2dataset reads
(``--input_format parquet``). The stage ``key`` is renamed (``janus_key``) because img2dataset
reserves ``key`` for its own numbering; every other column is kept under its own name, so
``--save_additional_columns`` can carry labels and provenance through the download.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from janus_build import schemas
from janus_build.core.fsio import atomic_parquet_writer
from janus_build.core.stage import ShardDir, read_manifest
from janus_build.errors import InputError
from janus_build.importers.config import UrlListConfig

log = logging.getLogger(__name__)

_URL_COLUMNS = ("URL", "url")
_TEXT_COLUMNS = ("TEXT", "text", "caption", "title")


def _stage_shards(stage_dir: Path) -> list[Path]:
    manifest = read_manifest(stage_dir) if stage_dir.is_dir() else None
    stage = (manifest or {}).get("stage", "")
    if stage != "match" and not stage.startswith("import-"):
        raise InputError(
            f"STAGE_DIR {stage_dir}: not a janus match output or metadata import (no manifest of stage "
            "'match' or 'import-...')"
        )
    shards = [ShardDir(stage_dir).shard_path(n) for n in ShardDir(stage_dir).done_shards()]
    shards = [p for p in shards if p.is_file()]
    if not shards:
        raise InputError(f"STAGE_DIR {stage_dir}: no finished shard")
    return shards


def _pick(names: list[str], given: str | None, defaults: tuple[str, ...], flag: str, where: Path) -> str | None:
    if given is not None and given not in names:
        raise InputError(f"STAGE_DIR {where}: no column {given!r} ({flag}); columns present: {', '.join(names)}")
    return given or next((c for c in defaults if c in names), None)


def write_url_list(config: UrlListConfig) -> dict[str, Any]:
    """Write the labelled rows (``label >= 0``) of a stage as one img2dataset input parquet.

    Columns: ``key_col`` (the stage key), then every other column of the stage. Rows with a null
    URL are left out. Finished shards only, in shard order.

    Raises:
        InputError: not a match output or import, no URL column, or (without ``all_rows``) no
            ``label`` column.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    stage_dir = Path(config.stage_dir)
    shards = _stage_shards(stage_dir)
    names = pq.read_schema(shards[0]).names
    url_col = _pick(names, config.url_col, _URL_COLUMNS, "--url-col", stage_dir)
    if url_col is None:
        raise InputError(f"STAGE_DIR {stage_dir}: no URL column (URL or url); columns present: {', '.join(names)}")
    text_col = _pick(names, config.text_col, _TEXT_COLUMNS, "--text-col", stage_dir)
    if not config.all_rows and schemas.LABEL not in names:
        raise InputError(f"STAGE_DIR {stage_dir}: no 'label' column to choose labelled rows by; pass --all-rows")
    if schemas.KEY not in names:
        raise InputError(f"STAGE_DIR {stage_dir}: no 'key' column; columns present: {', '.join(names)}")
    if config.key_col in names:
        raise InputError(f"STAGE_DIR {stage_dir}: already has a column {config.key_col!r}; choose another --key-col")
    first = pq.read_schema(shards[0])
    schema = pa.schema(
        [first.field(schemas.KEY).with_name(config.key_col), *(f for f in first if f.name != schemas.KEY)]
    )
    rows = kept = 0
    out = Path(config.out)
    with atomic_parquet_writer(out, schema) as writer:
        for path in shards:
            table = pq.read_table(path)
            rows += table.num_rows
            if not config.all_rows:
                table = table.filter(pc.greater_equal(table.column(schemas.LABEL), 0))
            table = table.filter(pc.is_valid(table.column(url_col)))
            table = table.rename_columns([config.key_col if n == schemas.KEY else n for n in table.column_names])
            writer.write_table(table.select(schema.names).cast(schema))
            kept += table.num_rows
    log.info("%s: %d of %d row(s) written", out, kept, rows)
    return {
        "rows": rows,
        "written": kept,
        "url_col": url_col,
        "text_col": text_col,
        "key_col": config.key_col,
        "out": os.fspath(out),
    }
