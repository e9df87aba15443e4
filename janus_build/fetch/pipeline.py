"""``janus fetch``: queries -> Flickr search pages (resumable) -> metadata shards -> image shards.

Output directory (a :class:`~janus_build.stage.StageDir` of stage ``fetch``)::

    DIR/manifest.json              stage, version, config (never credentials), inputs
    DIR/state.sqlite               windows and pages done, every photo seen (resume state)
    DIR/metadata/NNNNN.parquet     kept photos of class NNNNN (ImageNet index), + NNNNN_stats.json
    DIR/dropped/NNNNN.parquet      photos the local query logic dropped, with ``dropped_by``
    DIR/images/NNNNN.{tar,parquet} image shards (janus_build.images format), + NNNNN_stats.json
    DIR/report.json                per class: available (API total), fetched, downloaded, dropped
    DIR/_download/                 img2dataset's working folder (its own resume state)
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from janus_build import schemas
from janus_build.core.fsio import atomic_write_json, write_parquet_atomic
from janus_build.core.stage import ShardDir, StageDir, fingerprint_file
from janus_build.errors import ConfigError
from janus_build.fetch import flickr as _flickr
from janus_build.fetch.queries import ClassQueries, default_queries_file, load_queries
from janus_build.fetch.state import FetchState, Window
from janus_build.progress import NULL_PROGRESS, Progress

log = logging.getLogger(__name__)

FLICKR_EPOCH = 1075593600  # 2004-02-01: nothing on Flickr was uploaded earlier
DEFAULT_PER_CLASS = 1000


@dataclasses.dataclass(frozen=True)
class FetchConfig:
    """Options of ``janus fetch`` (CLI options map onto these one to one).

    Attributes:
        out: output directory.
        queries: queries TOML file; None = the shipped ``queries/in100.toml``.
        classes: class ids to fetch (None = every class of the file).
        per_class: photos to keep per class; None = each class's ``target`` (else 1000).
        api_url: Flickr REST endpoint.
        metadata_only: stop before downloading images.
        calls_per_hour: API call budget (token bucket; Flickr allows 3,600 per key).
        workers: classes searched concurrently (they share the call budget).
        licenses: Flickr licence ids to accept (default: Creative Commons, see docs/fetch.md).
        max_size: pick the largest image URL whose longer side is at most this many pixels.
        processes / threads: img2dataset download processes and threads per process.
        shard_size: images per image shard.
        request_timeout: seconds per API or image request.
        retries: API retries after the first attempt (exponential back-off with jitter).
        min_upload_date / max_upload_date: unix-time bounds used when splitting by upload date
            (None: Flickr's start, and the time of the first split).
        overwrite: discard an earlier output in ``out``.
    """

    out: Path
    queries: Path | None = None
    classes: tuple[int, ...] | None = None
    per_class: int | None = None
    api_url: str = _flickr.FLICKR_REST_URL
    metadata_only: bool = False
    calls_per_hour: int = 3600
    workers: int = 1
    licenses: tuple[int, ...] = _flickr.CREATIVE_COMMONS_LICENSES
    max_size: int = 1024
    processes: int = 1
    threads: int = 16
    shard_size: int = 1000
    request_timeout: float = 30.0
    retries: int = 8
    min_upload_date: int | None = None
    max_upload_date: int | None = None
    overwrite: bool = False

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the flag of any invalid value."""
        checks = [
            (self.per_class is None or self.per_class > 0, "--per-class must be positive"),
            (self.calls_per_hour > 0, "--calls-per-hour must be positive"),
            (self.workers >= 1, "--workers must be at least 1"),
            (self.processes >= 1, "--processes must be at least 1"),
            (self.threads >= 1, "--threads must be at least 1"),
            (self.shard_size >= 1, "--shard-size must be at least 1"),
            (self.max_size >= 1, "--max-size must be at least 1"),
            (bool(self.licenses), "--licenses must name at least one licence id"),
            (
                all(i in _flickr.LICENSES for i in self.licenses),
                f"--licenses: ids must be among {sorted(_flickr.LICENSES)}",
            ),
            (
                self.api_url.startswith(("http://", "https://")),
                f"--api-url must be an http(s) URL, got {self.api_url!r}",
            ),
            (self.request_timeout > 0, "--timeout must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)


# Options that may change between a run and its resumption.
VOLATILE = (
    "workers",
    "overwrite",
    "processes",
    "threads",
    "calls_per_hour",
    "metadata_only",
    "api_url",
    "request_timeout",
    "retries",
)


@dataclasses.dataclass
class FetchResult:
    """What :func:`run_fetch` did: the report written to ``report.json`` and where things are."""

    out: Path
    report: dict[str, Any]
    api_calls: int


def _target(config: FetchConfig, cls: ClassQueries) -> int:
    return config.per_class or cls.target or DEFAULT_PER_CLASS


class _ClassFetcher:
    """Fetches one class: windows in depth-first order, page by page, until the target is kept."""

    def __init__(
        self, config: FetchConfig, state: FetchState, client: _flickr.FlickrClient, progress: Progress
    ) -> None:
        self.config, self.state, self.client, self.progress = config, state, client, progress
        self.cap_pages = math.ceil(_flickr.MAX_RESULTS / _flickr.PER_PAGE)

    def run(self, cls: ClassQueries) -> None:
        target = _target(self.config, cls)
        task = f"{cls.class_id} {cls.name}"
        kept = self.state.kept_count(cls.class_id)
        self.progress.start(task, total=target, unit="photos")
        self.progress.advance(task, min(kept, target))
        if self.state.class_done(cls.class_id):
            self.progress.finish(task)
            return
        for query_index, query in enumerate(cls.queries):
            self.state.ensure_root(cls.class_id, query_index)
            while kept < target:
                window = self.state.next_open_window(cls.class_id, query_index)
                if window is None:
                    break
                kept = self._window(cls, query_index, query, window, target, kept, task)
            if kept >= target:
                break
        self.state.mark_class_done(cls.class_id)
        self.progress.finish(task)
        log.info("class %s (%s): %d photos kept (target %d)", cls.class_id, cls.name, kept, target)

    def _window(
        self, cls: ClassQueries, query_index: int, query: Any, window: Window, target: int, kept: int, task: str
    ) -> int:
        while kept < target and window.status == "open":
            reachable = min(window.pages, self.cap_pages) if window.pages is not None else None
            if reachable is not None and window.next_page > reachable:
                # Every reachable page is fetched; more is wanted: split if Flickr's cap hid results.
                if window.total > _flickr.MAX_RESULTS and not self._split(window):
                    log.warning(
                        "class %s: window %s..%s holds %d results but cannot be split further; taking the first %d",
                        cls.class_id,
                        window.lo,
                        window.hi,
                        window.total,
                        _flickr.MAX_RESULTS,
                    )
                if window.status == "open":
                    self.state.close_window(window)
                return kept
            page = window.next_page
            result = self.client.search(
                query.text(),
                page=page,
                per_page=_flickr.PER_PAGE,
                licenses=self.config.licenses,
                min_upload_date=window.lo,
                max_upload_date=window.hi,
            )
            records = []
            for photo in result.photos:
                record = _flickr.photo_record(photo, self.config.max_size)
                dropped = query.explain_drop(record["title"], record["tags"], record["description"])
                if record["url"] is None and dropped is None:
                    dropped = "no_url"
                records.append((record["photo_id"], dropped, record))
            before = kept
            self.state.record_page(window, page, result.total, result.pages, records)
            kept = self.state.kept_count(cls.class_id)
            self.progress.advance(task, max(0, min(kept, target) - min(before, target)))
            if not result.photos or page >= result.pages:
                self.state.close_window(window)
                return kept
            # The first page tells the size: when more is wanted than one query can reach, split now.
            if (
                page == 1
                and result.total > _flickr.MAX_RESULTS
                and target - kept > _flickr.MAX_RESULTS - len(result.photos)
            ):
                if self._split(window):
                    return kept
        return kept

    def _split(self, window: Window) -> bool:
        lo = window.lo if window.lo is not None else (self.config.min_upload_date or FLICKR_EPOCH)
        hi = window.hi if window.hi is not None else (self.config.max_upload_date or int(time.time()))
        if hi - lo < 2:
            return False
        parts = min(32, max(2, math.ceil(window.total / (0.75 * _flickr.MAX_RESULTS))))
        edges = [lo + (hi - lo + 1) * i // parts for i in range(parts)] + [hi + 1]
        bounds = [(edges[i], edges[i + 1] - 1) for i in range(parts) if edges[i + 1] - 1 >= edges[i]]
        bounds.reverse()  # newest first
        log.info("splitting upload window %s..%s (%d results) into %d", lo, hi, window.total, len(bounds))
        self.state.split(window, bounds)
        return True


def _queries_path(config: FetchConfig) -> Path:
    return Path(config.queries) if config.queries is not None else default_queries_file()


def run_fetch(
    config: FetchConfig,
    *,
    credentials: _flickr.Credentials | None = None,
    progress: Progress = NULL_PROGRESS,
) -> FetchResult:
    """Run ``janus fetch``: search, write metadata shards, download images, write the report.

    Args:
        config: the options.
        credentials: the Flickr key; None reads ``FLICKR_API_KEY``/``FLICKR_API_SECRET`` or the config file.
        progress: receives one task per class (photos kept) and one for the download.

    Raises:
        ConfigError: an invalid option or no credentials.
        InputError: the queries file has errors or lacks a requested class.
        OutputError: ``out`` holds something else, or an earlier run with other options.
        RemoteError: Flickr rejected the key or kept failing after the retries.
    """
    config.validate()
    queries_path = _queries_path(config)
    classes = load_queries(queries_path, config.classes)
    credentials = credentials or _flickr.Credentials.load()
    queries_sha = hashlib.sha256(queries_path.read_bytes()).hexdigest()
    manifest_config = {**dataclasses.asdict(config), "queries": str(queries_path), "queries_sha256": queries_sha}
    stage = StageDir(
        config.out,
        "fetch",
        manifest_config,
        inputs=[fingerprint_file(queries_path)],
        overwrite=config.overwrite,
        volatile_keys=VOLATILE,
    )
    out = Path(config.out)
    state = FetchState(out / "state.sqlite")
    limiter = _flickr.TokenBucket(config.calls_per_hour)
    client = _flickr.FlickrClient(
        credentials, config.api_url, limiter, retries=config.retries, timeout=config.request_timeout
    )
    try:
        fetcher = _ClassFetcher(config, state, client, progress)
        if config.workers == 1:
            for cls in classes:
                fetcher.run(cls)
        else:
            with concurrent.futures.ThreadPoolExecutor(config.workers, thread_name_prefix="fetch") as pool:
                for future in [pool.submit(fetcher.run, cls) for cls in classes]:
                    future.result()
        metadata = _write_metadata(out, classes, config, state)
        downloaded: dict[str, str] = {}
        if not config.metadata_only:
            from janus_build.fetch.download import download_images

            downloaded = download_images(out, metadata, config, progress)
        report = _report(classes, config, state, metadata, downloaded)
        atomic_write_json(out / "report.json", report)
    finally:
        state.close()
    stage.finish(summary={"classes": len(classes), **report["totals"]})
    return FetchResult(out, report, client.calls)


def _write_metadata(
    out: Path, classes: Sequence[ClassQueries], config: FetchConfig, state: FetchState
) -> dict[int, list[dict[str, Any]]]:
    """Write ``metadata/NNNNN.parquet`` per class (and ``dropped/``); return the kept rows per class."""
    import pyarrow as pa

    kept: dict[int, list[dict[str, Any]]] = {}
    seen_in: dict[str, list[int]] = {}
    for cls in classes:
        rows = []
        for rank, (photo_id, query_index, _, record) in enumerate(
            state.photos(cls.class_id, True, _target(config, cls))
        ):
            row = dict(record)
            row.update(
                class_id=cls.class_id,
                class_name=cls.name,
                query=cls.queries[query_index].text(),
                query_index=query_index,
                rank=rank,
                source="flickr",
                source_id=photo_id,
            )
            rows.append(row)
            seen_in.setdefault(photo_id, []).append(cls.class_id)
        kept[cls.class_id] = rows
    for cls in classes:
        for row in kept[cls.class_id]:
            row["also_in_classes"] = [c for c in seen_in[row["photo_id"]] if c != cls.class_id]
        name = f"{cls.class_id:05d}"
        table = _table(kept[cls.class_id])
        table = schemas.validate(table, schemas.FETCH_METADATA, f"fetch metadata shard {name}")
        write_parquet_atomic(out / "metadata" / f"{name}.parquet", table)
        dropped = []
        for photo_id, query_index, dropped_by, record in state.photos(cls.class_id, False):
            dropped.append(
                {**record, "class_id": cls.class_id, "query": cls.queries[query_index].text(), "dropped_by": dropped_by}
            )
        write_parquet_atomic(
            out / "dropped" / f"{name}.parquet",
            _table(dropped) if dropped else pa.table({"key": pa.array([], pa.string())}),
        )
        ShardDir(out / "metadata").mark_done(name, {"count": len(kept[cls.class_id]), "dropped": len(dropped)})
    return kept


_TYPES = {
    "class_id": "int32",
    "query_index": "int32",
    "rank": "int32",
    "width": "int32",
    "height": "int32",
    "license_id": "int32",
    "date_upload": "int64",
}


def _table(rows: list[dict[str, Any]]):
    import pyarrow as pa

    names = list(schemas.FETCH_METADATA.names)
    for row in rows:
        names.extend(k for k in row if k not in names)
    arrays, fields = [], []
    for name in names:
        values = [row.get(name) for row in rows]
        if name == "also_in_classes":
            typ = pa.list_(pa.int32())
        elif name in _TYPES:
            typ = getattr(pa, _TYPES[name])()
        elif name in schemas.FETCH_METADATA.names:
            typ = schemas.FETCH_METADATA.field(name).type
        else:
            typ = pa.string()
        arrays.append(pa.array(values, typ))
        fields.append(pa.field(name, typ))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _report(classes, config, state: FetchState, metadata, downloaded: dict[str, str]) -> dict[str, Any]:
    per_class = {}
    totals = {"available": 0, "returned": 0, "fetched": 0, "downloaded": 0, "api_pages": 0, "shared_photos": 0}
    for cls in classes:
        available = 0
        for query_index in range(len(cls.queries)):
            root = state.root(cls.class_id, query_index)
            available += int(root.total or 0) if root else 0
        pages, returned = state.page_stats(cls.class_id)
        rows = metadata[cls.class_id]
        got = sum(1 for r in rows if downloaded.get(r["key"]) == "success")
        shared = sum(1 for r in rows if r["also_in_classes"])
        per_class[str(cls.class_id)] = {
            "name": cls.name,
            "queries": [q.text() for q in cls.queries],
            "target": _target(config, cls),
            "available": available,
            "returned": returned,
            "fetched": len(rows),
            "downloaded": got if not config.metadata_only else None,
            "dropped": state.dropped_counts(cls.class_id),
            "shared_with_other_classes": shared,
            "api_pages": pages,
            "windows": state.count_windows(cls.class_id),
            "paper": dict(cls.paper),
        }
        totals["available"] += available
        totals["returned"] += returned
        totals["fetched"] += len(rows)
        totals["downloaded"] += got
        totals["api_pages"] += pages
        totals["shared_photos"] += shared
    return {
        "classes": per_class,
        "totals": totals,
        "licenses": list(config.licenses),
        "metadata_only": config.metadata_only,
    }
