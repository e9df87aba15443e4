"""``janus import img2dataset``: an img2dataset webdataset download -> an image stage keyed by a
column img2dataset saved (``--save_additional_columns``), e.g. the ``janus_key`` that
``janus import url-list`` writes.

Provenance precedence: a value present in the row (a LAION ``LICENSE``, a saved ``license``,
``owner``, ``title``, ``source``) always beats the import's defaults (``--license``, ``--source``).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from janus_build import schemas
from janus_build.core.img2dataset import img2dataset_shards, rekey_img2dataset_shard
from janus_build.errors import InputError
from janus_build.importers.common import license_name, open_stage
from janus_build.importers.config import UNKNOWN_LICENSE, Img2datasetImportConfig
from janus_build.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)

_I2D_OWN = ("key", "status", "error_message")  # img2dataset's columns that the image index redefines
_LICENSE_COLUMNS = (schemas.LICENSE, "LICENSE", "licence")
_NO_VALUE = ("", "?", UNKNOWN_LICENSE)  # LAION writes '?' for an unknown licence


def _present(value: Any) -> bool:
    return value is not None and str(value).strip() not in _NO_VALUE


def _first_present(sample: Mapping[str, Any], columns: tuple[str, ...]) -> Any:
    return next((sample[c] for c in columns if c in sample and _present(sample[c])), None)


def provenance(sample: Mapping[str, Any], config: Img2datasetImportConfig, source_id: str) -> dict[str, Any]:
    """The provenance columns of one row: the row's own values first, the config's defaults after."""
    licence = _first_present(sample, _LICENSE_COLUMNS)
    return {
        schemas.SOURCE: _first_present(sample, (schemas.SOURCE,)) or config.source,
        schemas.SOURCE_ID: str(_first_present(sample, (schemas.SOURCE_ID,)) or source_id),
        schemas.URL: _first_present(sample, (schemas.URL, "URL")),
        schemas.LICENSE: license_name(str(licence)) if licence is not None else config.license,
        schemas.TITLE: _first_present(sample, (schemas.TITLE, config.caption_col)) or "",
    }


def _row_mapper(config: Img2datasetImportConfig, src: Path) -> Any:
    def row_for(sample: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        value = sample.get(config.key_col)
        if value is None or str(value) == "":
            return None
        key = f"{config.key_prefix}{value}"
        if "." in key or "/" in key:
            raise InputError(
                f"{src}: {config.key_col} {key!r} (img2dataset key {sample.get('key')}) contains '.' or '/', "
                "which a webdataset key cannot hold; sanitise the keys of the download list"
            )
        metadata = {k: v for k, v in sample.items() if k not in _I2D_OWN and k != config.key_col}
        metadata["i2d_key"] = sample.get("key")
        metadata.update(provenance(sample, config, str(value)))
        return key, metadata

    return row_for


def _check_input(config: Img2datasetImportConfig) -> tuple[Path, list[str], list[str]]:
    import pyarrow.parquet as pq

    src = Path(config.input)
    if not src.is_dir():
        raise InputError(f"DIR {src}: no such directory (expected img2dataset's --output_folder)")
    finished, unfinished = img2dataset_shards(src)
    if not finished:
        raise InputError(f"DIR {src}: no finished img2dataset shard (NNNNN.tar + NNNNN.parquet + NNNNN_stats.json)")
    if unfinished:
        log.warning(
            "%d img2dataset shard(s) unfinished, not imported (re-run img2dataset, then this): %s",
            len(unfinished),
            ", ".join(unfinished[:5]),
        )
    columns = pq.read_schema(src / f"{finished[0]}.parquet").names
    if config.key_col not in columns:
        raise InputError(
            f"{src / (finished[0] + '.parquet')}: no column {config.key_col!r} (--key-col); columns present: "
            f"{', '.join(columns)}. Save it when downloading: img2dataset ... --save_additional_columns "
            f"'[\"{config.key_col}\"]' (img2dataset refuses the name 'key'; janus import url-list writes 'janus_key')"
        )
    return src, finished, unfinished


def import_img2dataset(config: Img2datasetImportConfig, progress: Progress = NULL_PROGRESS) -> dict[str, Any]:
    """Re-key an img2dataset webdataset output into an image stage (one output shard per input shard).

    Every parquet column is kept (img2dataset's ``key`` as ``i2d_key``); ``source``,
    ``source_id`` (= the key), ``url``, ``license`` and ``title`` are added, each from the row
    when it carries one (see :func:`provenance`). Rows without a key are left out and counted;
    failed downloads stay rows.

    Raises:
        InputError: the input is missing, holds no finished img2dataset shard, or lacks ``key_col``
            (the message lists the columns present and the img2dataset flag that saves it); a key
            holds '.' or '/'.
        OutputError: --out holds something else, or an earlier run with other options.
    """
    src, finished, unfinished = _check_input(config)
    inputs = [{"input": os.fspath(src.resolve()), "shards": len(finished)}]
    row_for = _row_mapper(config, src)
    written = 0
    with open_stage(config, "import-img2dataset", inputs) as stage:
        progress.start("import img2dataset", total=len(finished), unit="shards")
        for name in finished:
            if not stage.is_done(name):
                rekey_img2dataset_shard(
                    src, name, stage.path, row_for, mtime=0, index_schema=schemas.IMPORT_IMG2DATASET_INDEX
                )
                written += 1
            progress.advance("import img2dataset")
        progress.finish("import img2dataset")
        totals: Counter[str] = Counter()
        for name in stage.done_shards():
            for field in ("count", "successes", "failed", "skipped", "duplicate_keys"):
                totals[field] += int(stage.read_stats(name).get(field, 0))
        summary = {
            "rows": totals["count"],
            "successes": totals["successes"],
            "failed": totals["failed"],
            "skipped_without_key": totals["skipped"],
            "duplicate_keys": totals["duplicate_keys"],
            "shards": len(stage.done_shards()),
            "shards_written": written,
            "shards_skipped": len(finished) - written,
            "unfinished_input_shards": unfinished,
        }
        stage.finish(summary)
    return summary
