"""``janus fetch``: queries -> Flickr search pages (resumable) -> metadata shards -> image shards.

Output directory (a :class:`~janus_build.core.stage.StageDir` of stage ``fetch``)::

    DIR/_manifest.json             stage, version, config (never credentials), inputs
    DIR/state.sqlite               windows and pages done, every photo seen (resume state)
    DIR/metadata/NNNNN.parquet     kept photos of class NNNNN (ImageNet index); markers in _stats/
    DIR/dropped/NNNNN.parquet      photos dropped locally (licence, query rule, no URL), with ``dropped_by``
    DIR/images/NNNNN.{tar,parquet} image shards (janus_build.core.shards); markers in images/_stats/
    DIR/report.json                per class: available, fetched, downloaded, dropped, opt-outs; warnings
    DIR/_download/                 img2dataset's working folder (its own resume state) and its log
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from janus_build.core.fsio import atomic_write_json
from janus_build.core.stage import StageDir, fingerprint_file
from janus_build.fetch import flickr as _flickr
from janus_build.fetch.config import VOLATILE, FetchConfig
from janus_build.fetch.metadata import write_metadata
from janus_build.fetch.queries import ClassQueries, default_queries_file, load_queries
from janus_build.fetch.report import build_report
from janus_build.fetch.search import ClassSearch
from janus_build.fetch.state import FetchState
from janus_build.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)


@dataclasses.dataclass
class FetchResult:
    """What :func:`run` did: the report written to ``report.json`` and where things are."""

    out: Path
    report: dict[str, Any]
    api_calls: int


def _queries_path(config: FetchConfig) -> Path:
    return Path(config.queries) if config.queries is not None else default_queries_file()


def _open_stage(config: FetchConfig, queries_path: Path) -> StageDir:
    sha = hashlib.sha256(queries_path.read_bytes()).hexdigest()
    manifest_config = {**dataclasses.asdict(config), "queries": queries_path, "queries_sha256": sha}
    return StageDir(
        config.out,
        "fetch",
        manifest_config,
        inputs=[fingerprint_file(queries_path)],
        overwrite=config.overwrite,
        volatile_keys=VOLATILE,
    )


def _search(
    classes: Sequence[ClassQueries],
    config: FetchConfig,
    state: FetchState,
    credentials: _flickr.Credentials,
    progress: Progress,
) -> int:
    """Search every class (``--workers`` at a time, sharing one call budget); return the API calls made."""
    limiter = _flickr.TokenBucket(config.calls_per_hour)
    client = _flickr.FlickrClient(
        credentials, config.api_url, limiter, retries=config.retries, timeout=config.request_timeout
    )
    search = ClassSearch(config, state, client, progress)
    if config.workers == 1:
        for cls in classes:
            search.run(cls)
    else:
        with concurrent.futures.ThreadPoolExecutor(config.workers, thread_name_prefix="fetch") as pool:
            for future in [pool.submit(search.run, cls) for cls in classes]:
                future.result()
    return client.calls


def run(
    config: FetchConfig,
    progress: Progress = NULL_PROGRESS,
    *,
    credentials: _flickr.Credentials | None = None,
) -> FetchResult:
    """Run ``janus fetch``: search, write metadata shards, download images, write the report.

    Args:
        config: the options.
        progress: receives one task per class (photos kept) and one for the download.
        credentials: the Flickr key; None reads ``FLICKR_API_KEY``/``FLICKR_API_SECRET`` or the config file.

    Raises:
        ConfigError: no credentials.
        InputError: the queries file has errors or lacks a requested class.
        OutputError: ``out`` holds something else, is locked by another run, or holds an earlier
            run with other options.
        RemoteError: Flickr rejected the key or kept failing after the retries.
    """
    queries_path = _queries_path(config)
    classes = load_queries(queries_path, config.classes)
    credentials = credentials or _flickr.Credentials.load()
    with _open_stage(config, queries_path) as stage:
        state = FetchState(stage.path / "state.sqlite")
        try:
            calls = _search(classes, config, state, credentials, progress)
            metadata = write_metadata(stage, classes, config, state)
            downloads: dict[str, tuple[str, str | None]] = {}
            if not config.metadata_only:
                from janus_build.fetch.download import download_images

                downloads = download_images(stage, metadata, config, progress)
            report = build_report(classes, config, state, metadata, downloads)
            atomic_write_json(stage.path / "report.json", report)
        finally:
            state.close()
        stage.finish(summary={"classes": len(classes), **report["totals"], "warnings": len(report["warnings"])})
    return FetchResult(stage.path, report, calls)


def run_fetch(
    config: FetchConfig, *, credentials: _flickr.Credentials | None = None, progress: Progress = NULL_PROGRESS
) -> FetchResult:
    """The former entry point, kept for existing callers: :func:`run`."""
    return run(config, progress, credentials=credentials)
