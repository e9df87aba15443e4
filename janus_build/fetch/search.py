"""Searching one class: upload-date windows, page by page, every photo judged locally and stored.

A class's queries are searched one after the other; each query starts as one window (its whole
upload-date range) that is split, newest first, when Flickr's 4,000-result cap hides results and
more photos are wanted. Every returned photo is judged here (licence, then the query's own rule,
then a usable URL) and stored with the verdict in the state file, one transaction per page.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

from janus_build.fetch import flickr as _flickr
from janus_build.fetch.config import DEFAULT_PER_CLASS, FetchConfig
from janus_build.fetch.queries import ClassQueries, Query
from janus_build.fetch.state import FetchState, Window
from janus_build.progress import Progress

log = logging.getLogger(__name__)

FLICKR_EPOCH = 1075593600  # 2004-02-01: nothing on Flickr was uploaded earlier


def class_target(config: FetchConfig, cls: ClassQueries) -> int:
    """Photos to keep for a class: ``--per-class``, else the class's ``target``, else 1000."""
    return config.per_class or cls.target or DEFAULT_PER_CLASS


def judge(record: Mapping[str, Any], query: Query, licenses: tuple[int, ...]) -> str | None:
    """The rule that drops a photo (``license:0``, ``exclude:car``, ``require:lion``, ``no_url``), or None.

    The query is applied to the *text* of the title, tags and description (markup removed,
    entities decoded by :func:`janus_build.fetch.flickr.photo_record`).
    """
    dropped = _flickr.license_drop(record.get("license_id"), licenses)
    if dropped is None:
        dropped = query.explain_drop(record["title"], record["tags"], record["description"])
    if dropped is None and not record.get("url"):
        dropped = "no_url"
    return dropped


class ClassSearch:
    """Fetches classes: windows in depth-first order, page by page, until a class's target is kept."""

    def __init__(
        self, config: FetchConfig, state: FetchState, client: _flickr.FlickrClient, progress: Progress
    ) -> None:
        self.config, self.state, self.client, self.progress = config, state, client, progress
        self.cap_pages = math.ceil(_flickr.MAX_RESULTS / _flickr.PER_PAGE)

    def run(self, cls: ClassQueries) -> None:
        """Search one class until its target is kept or its queries are exhausted (resumable)."""
        target = class_target(self.config, cls)
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
                kept = self._window(cls, query, window, target, task)
            if kept >= target:
                break
        self.state.mark_class_done(cls.class_id)
        self.progress.finish(task)
        log.info("class %s (%s): %d photos kept (target %d)", cls.class_id, cls.name, kept, target)

    def _window(self, cls: ClassQueries, query: Query, window: Window, target: int, task: str) -> int:
        kept = self.state.kept_count(cls.class_id)
        while kept < target and window.status == "open":
            reachable = min(window.pages, self.cap_pages) if window.pages is not None else None
            if reachable is not None and window.next_page > reachable:
                self._exhausted(cls, window)
                return kept
            page = window.next_page
            result = self._search(query, window, page)
            before = kept
            records = [self._judged(photo, query) for photo in result.photos]
            self.state.record_page(window, page, result.total, result.pages, records)
            kept = self.state.kept_count(cls.class_id)
            self.progress.advance(task, max(0, min(kept, target) - min(before, target)))
            if not result.photos or page >= result.pages:
                self.state.close_window(window)
                return kept
            # The first page tells the size: when more is wanted than one query can reach, split now.
            wanted = target - kept > _flickr.MAX_RESULTS - len(result.photos)
            if page == 1 and result.total > _flickr.MAX_RESULTS and wanted and self._split(window):
                return kept
        return kept

    def _search(self, query: Query, window: Window, page: int) -> _flickr.SearchPage:
        return self.client.search(
            query.text(),
            page=page,
            per_page=_flickr.PER_PAGE,
            licenses=self.config.licenses,
            min_upload_date=window.lo,
            max_upload_date=window.hi,
        )

    def _judged(self, photo: Mapping[str, Any], query: Query) -> tuple[str, str | None, dict[str, Any]]:
        record = _flickr.photo_record(photo, self.config.max_size)
        return record["photo_id"], judge(record, query, self.config.licenses), record

    def _exhausted(self, cls: ClassQueries, window: Window) -> None:
        """Every reachable page of the window is fetched; split it if Flickr's cap hid results."""
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
