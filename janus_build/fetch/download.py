"""Download the chosen photos with img2dataset, then re-key its shards into janus image shards.

img2dataset names samples by its own running number and decides what to resume by globbing
its output folder for ``*_stats.json``; so it works in ``DIR/_download/img2dataset/`` (never in
``DIR/images/``), from a fixed input list ``DIR/_download/input.parquet``. Each finished
img2dataset shard is then rewritten by :func:`janus_build.core.img2dataset.rekey_img2dataset_shard`
as ``DIR/images/NNNNN.{tar,parquet}`` with ``__key__`` = ``flickr-<photo_id>`` and every metadata
column in the index; failures stay rows with ``status`` and ``error_message``.

img2dataset starts processes of its own (a spawned pool and a logger); it runs inside
:func:`janus_build.core.procs.call_in_process_group`, so none of them outlives the run (Ctrl-C,
``kill -9``, an exception) and their output goes to ``DIR/_download/img2dataset.log``, not the
terminal. Opt-outs: with ``respect_optouts`` (the default) img2dataset skips an image whose server
sends ``X-Robots-Tag`` noai, noimageai, noindex or noimageindex (img2dataset's own list); the
row's ``error_message`` says so and ``report.json`` counts them per class.

A photo kept for several classes is downloaded once: its image row carries the first class
(in queries-file order) as ``class_id`` and every class in ``class_ids``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from janus_build.core.fsio import write_parquet_atomic
from janus_build.core.img2dataset import img2dataset_shards, rekey_img2dataset_shard
from janus_build.core.shards import shard_names
from janus_build.core.stage import ShardDir, shard_name
from janus_build.errors import OutputError
from janus_build.fetch.config import FetchConfig
from janus_build.progress import Progress

log = logging.getLogger(__name__)

DOWNLOAD_TASK = "download"
# img2dataset's own default: the X-Robots-Tag directives that opt an image out.
OPTOUT_DIRECTIVES = ("noai", "noimageai", "noindex", "noimageindex")


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
    stage: ShardDir, metadata: Mapping[int, list[dict[str, Any]]], config: FetchConfig, progress: Progress
) -> dict[str, tuple[str, str | None]]:
    """Download every kept photo once; return ``{key: (status, error_message)}`` over all image shards."""
    rows = image_rows(metadata)
    work = stage.path / "_download"
    i2d_dir, input_path = work / "img2dataset", work / "input.parquet"
    with_url = [row for row in rows if row.get("url")]
    if not input_path.is_file():
        # Written once: img2dataset's resume relies on the same input being sharded the same way.
        _write_input(input_path, with_url)
    progress.start(DOWNLOAD_TASK, total=len(with_url), unit="images")
    if _unfinished(input_path, i2d_dir, config.shard_size):  # img2dataset skips finished shards; starting costs seconds
        _run_img2dataset(input_path, i2d_dir, config)
    images = stage.sub("images")
    by_key = {row["key"]: row for row in rows}
    finished, _ = img2dataset_shards(i2d_dir) if i2d_dir.is_dir() else ([], [])
    for name in finished:
        if not images.is_done(name):
            _rekey_shard(i2d_dir, name, images, by_key)
    statuses = _statuses(images)
    progress.advance(DOWNLOAD_TASK, sum(1 for status, _ in statuses.values() if status == "success"))
    missing = sum(1 for row in rows if row["key"] not in statuses)
    if missing:
        log.warning("%d photo(s) have no image row (no URL or an unfinished img2dataset shard)", missing)
    progress.finish(DOWNLOAD_TASK)
    return statuses


def _write_input(input_path: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa

    table = pa.table({"url": [r["url"] for r in rows], "janus_key": [r["key"] for r in rows]})
    write_parquet_atomic(input_path, table)


def _unfinished(input_path: Path, i2d_dir: Path, shard_size: int) -> bool:
    import pyarrow.parquet as pq

    expected = math.ceil(pq.read_metadata(input_path).num_rows / shard_size)
    return any(not (i2d_dir / f"{shard_name(i)}_stats.json").is_file() for i in range(expected))


def _statuses(images: ShardDir) -> dict[str, tuple[str, str | None]]:
    import pyarrow.parquet as pq

    statuses: dict[str, tuple[str, str | None]] = {}
    for name in shard_names(images.path) if images.path.is_dir() else []:
        index = pq.read_table(images.shard_path(name), columns=["key", "status", "error_message"]).to_pydict()
        for key, status, error in zip(index["key"], index["status"], index["error_message"]):
            statuses[key] = (status, error)
    return statuses


def img2dataset_options(input_path: Path, i2d_dir: Path, config: FetchConfig) -> dict[str, Any]:
    """The keyword arguments janus passes to ``img2dataset.download``."""
    return dict(
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
        # An empty list turns img2dataset's check off; None would mean its default list.
        disallowed_header_directives=list(OPTOUT_DIRECTIVES) if config.respect_optouts else [],
    )


def _img2dataset_download(options: dict[str, Any]) -> None:
    """Runs in the process group's leader (see :func:`_run_img2dataset`)."""
    import os

    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # albumentations (imported by img2dataset) phones home
    from img2dataset import download

    download(**options)


def _run_img2dataset(input_path: Path, i2d_dir: Path, config: FetchConfig) -> None:
    from janus_build.core.procs import call_in_process_group

    i2d_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path = i2d_dir.parent / "img2dataset.log"
    log.info(
        "downloading with img2dataset into %s (%d process(es) x %d thread(s)); its log: %s",
        i2d_dir,
        config.processes,
        config.threads,
        log_path,
    )
    try:
        call_in_process_group(
            _img2dataset_download, (img2dataset_options(input_path, i2d_dir, config),), log_path=log_path
        )
    except ChildProcessError as exc:
        raise OutputError(f"--out {i2d_dir.parent.parent}: the image download failed ({exc})") from None


def _rekey_shard(i2d_dir: Path, name: str, images: ShardDir, by_key: Mapping[str, dict[str, Any]]) -> None:
    def row_for(sample: dict[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
        key = sample.get("janus_key")
        return None if key is None or key not in by_key else (key, by_key[key])

    rekey_img2dataset_shard(i2d_dir, name, images.path, row_for)
