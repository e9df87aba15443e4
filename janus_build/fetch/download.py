"""Download the chosen photos with img2dataset, then re-key its shards into janus image shards.

img2dataset names samples by its own running number and decides what to resume by globbing
its output folder for ``*_stats.json``; so it works in ``DIR/_download/img2dataset/`` (never in
``DIR/images/``, whose own ``NNNNN_stats.json`` would fool it), from a fixed input list
``DIR/_download/input.parquet``. Each finished img2dataset shard is then rewritten as
``DIR/images/NNNNN.{tar,parquet}`` (:mod:`janus_build.images`) with ``__key__`` =
``flickr-<photo_id>`` and every metadata column in the index; failures stay as rows with
``status`` and ``error_message``.

A photo kept for several classes is downloaded once: its image row carries the first class
(in queries-file order) as ``class_id`` and every class in ``class_ids``.
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from janus_build.core.fsio import write_parquet_atomic
from janus_build.core.img2dataset import I2D_STATS_SUFFIX as STATS_SUFFIX
from janus_build.core.shards import shard_names
from janus_build.core.stage import ShardDir
from janus_build.progress import Progress

log = logging.getLogger(__name__)

DOWNLOAD_TASK = "download"


def image_rows(metadata: Mapping[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per distinct photo, in class order then rank; ``class_ids`` lists every class."""
    rows: dict[str, dict[str, Any]] = {}
    for class_id, class_rows in metadata.items():
        for row in class_rows:
            if row["key"] in rows:
                rows[row["key"]]["class_ids"].append(class_id)
                continue
            image_row = {k: v for k, v in row.items() if k not in ("also_in_classes", "rank", "query_index")}
            image_row["class_ids"] = [class_id]
            rows[row["key"]] = image_row
    return list(rows.values())


def download_images(
    out: Path, metadata: Mapping[int, list[dict[str, Any]]], config: Any, progress: Progress
) -> dict[str, str]:
    """Download every kept photo once; return ``{key: status}`` over all image shards."""
    import pyarrow as pa

    rows = image_rows(metadata)
    images_dir = out / "images"
    work = out / "_download"
    i2d_dir = work / "img2dataset"
    input_path = work / "input.parquet"
    by_key = {row["key"]: row for row in rows}
    with_url = [row for row in rows if row.get("url")]
    if not input_path.is_file():
        # Written once: img2dataset's resume relies on the same input being sharded the same way.
        table = pa.table({"url": [r["url"] for r in with_url], "janus_key": [r["key"] for r in with_url]})
        write_parquet_atomic(input_path, table)
    progress.start(DOWNLOAD_TASK, total=len(with_url), unit="images")
    import math

    import pyarrow.parquet as pq

    expected = math.ceil(pq.read_metadata(input_path).num_rows / config.shard_size)
    done = sum(1 for i in range(expected) if (i2d_dir / f"{i:05d}{STATS_SUFFIX}").is_file())
    if done < expected:  # img2dataset skips the finished shards itself; starting it costs seconds
        _run_img2dataset(input_path, i2d_dir, config)
    statuses: dict[str, str] = {}
    for name in sorted(p.name[: -len(STATS_SUFFIX)] for p in i2d_dir.glob(f"*{STATS_SUFFIX}")):
        if not ShardDir(images_dir).is_done(name):
            _rekey_shard(i2d_dir, name, images_dir, by_key)

    for name in shard_names(images_dir) if images_dir.is_dir() else []:
        index = pq.read_table(images_dir / f"{name}.parquet", columns=["key", "status"])
        for key, status in zip(index.column("key").to_pylist(), index.column("status").to_pylist()):
            statuses[key] = status
    progress.advance(DOWNLOAD_TASK, sum(1 for s in statuses.values() if s == "success"))
    missing = [row for row in rows if row["key"] not in statuses]
    if missing:
        log.warning("%d photo(s) have no image row (no URL or an unfinished img2dataset shard)", len(missing))
    progress.finish(DOWNLOAD_TASK)
    return statuses


def _run_img2dataset(input_path: Path, i2d_dir: Path, config: Any) -> None:
    import os

    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations (imported by img2dataset) phones home
    from img2dataset import download

    i2d_dir.parent.mkdir(parents=True, exist_ok=True)
    log.info(
        "downloading with img2dataset into %s (%d process(es) x %d thread(s))",
        i2d_dir,
        config.processes,
        config.threads,
    )
    with contextlib.redirect_stdout(io.StringIO()):  # img2dataset prints its progress
        download(
            url_list=str(input_path),
            input_format="parquet",
            url_col="url",
            save_additional_columns=["janus_key"],
            output_folder=str(i2d_dir),
            output_format="webdataset",
            processes_count=config.processes,
            thread_count=config.threads,
            number_sample_per_shard=config.shard_size,
            resize_mode="no",
            skip_reencode=True,
            encode_format="jpg",
            extract_exif=False,
            timeout=int(max(1, config.request_timeout)),
            retries=2,
            incremental_mode="incremental",
            user_agent_token="janus-build",
            enable_wandb=False,
        )


def _rekey_shard(i2d_dir: Path, name: str, images_dir: Path, by_key: Mapping[str, dict[str, Any]]) -> None:
    from janus_build.core.img2dataset import rekey_img2dataset_shard

    def row_for(sample: dict[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
        key = sample.get("janus_key")
        return None if key is None or key not in by_key else (key, by_key[key])

    rekey_img2dataset_shard(i2d_dir, name, images_dir, row_for)
