"""Persisted fetch progress: upload-date windows, pages done and the photos they returned (SQLite).

One transaction per answered page stores its photos *and* marks the page done, so a killed run
resumes at the next page: no finished page is asked twice, no record is lost or duplicated
(photos are keyed by ``(class_id, photo_id)``; the first sighting wins, unless an earlier query
of the class dropped the photo and a later one accepts it: then it is kept).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS windows (
    class_id INTEGER NOT NULL, query_index INTEGER NOT NULL, path TEXT NOT NULL,
    lo INTEGER, hi INTEGER, total INTEGER, pages INTEGER, next_page INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'open',              -- open | split | done
    PRIMARY KEY (class_id, query_index, path));
CREATE TABLE IF NOT EXISTS pages (
    class_id INTEGER NOT NULL, query_index INTEGER NOT NULL, path TEXT NOT NULL, page INTEGER NOT NULL,
    returned INTEGER NOT NULL, new INTEGER NOT NULL,
    PRIMARY KEY (class_id, query_index, path, page));
CREATE TABLE IF NOT EXISTS photos (
    class_id INTEGER NOT NULL, photo_id TEXT NOT NULL, query_index INTEGER NOT NULL,
    dropped_by TEXT, record TEXT NOT NULL,
    PRIMARY KEY (class_id, photo_id));
CREATE TABLE IF NOT EXISTS classes (
    class_id INTEGER PRIMARY KEY, status TEXT NOT NULL);
"""


class Window:
    """An upload-date window of one query (``lo``/``hi`` None = unbounded: the whole query)."""

    __slots__ = ("class_id", "query_index", "path", "lo", "hi", "total", "pages", "next_page", "status")

    def __init__(self, row: Sequence[Any]) -> None:
        (
            self.class_id,
            self.query_index,
            self.path,
            self.lo,
            self.hi,
            self.total,
            self.pages,
            self.next_page,
            self.status,
        ) = row

    @property
    def depth(self) -> int:
        return self.path.count(".")


class FetchState:
    """The SQLite state file of one fetch output directory (thread-safe)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- windows ----------------------------------------------------------------------------
    def ensure_root(self, class_id: int, query_index: int) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO windows (class_id, query_index, path) VALUES (?, ?, '0')",
                (class_id, query_index),
            )

    def next_open_window(self, class_id: int, query_index: int) -> Window | None:
        """The first open window in depth-first order (paths are zero-padded, so they sort so)."""
        with self._lock:
            row = self._db.execute(
                "SELECT class_id, query_index, path, lo, hi, total, pages, next_page, status FROM windows "
                "WHERE class_id=? AND query_index=? AND status='open' ORDER BY path LIMIT 1",
                (class_id, query_index),
            ).fetchone()
        return Window(row) if row else None

    def root(self, class_id: int, query_index: int) -> Window | None:
        with self._lock:
            row = self._db.execute(
                "SELECT class_id, query_index, path, lo, hi, total, pages, next_page, status FROM windows "
                "WHERE class_id=? AND query_index=? AND path='0'",
                (class_id, query_index),
            ).fetchone()
        return Window(row) if row else None

    def split(self, window: Window, bounds: Iterable[tuple[int, int]]) -> None:
        """Replace an open window by child windows (one transaction)."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for index, (lo, hi) in enumerate(bounds):
                self._db.execute(
                    "INSERT OR IGNORE INTO windows (class_id, query_index, path, lo, hi) VALUES (?, ?, ?, ?, ?)",
                    (window.class_id, window.query_index, f"{window.path}.{index:03d}", lo, hi),
                )
            self._db.execute(
                "UPDATE windows SET status='split' WHERE class_id=? AND query_index=? AND path=?",
                (window.class_id, window.query_index, window.path),
            )
        window.status = "split"

    def close_window(self, window: Window) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE windows SET status='done' WHERE class_id=? AND query_index=? AND path=?",
                (window.class_id, window.query_index, window.path),
            )
        window.status = "done"

    # -- pages ------------------------------------------------------------------------------
    def record_page(
        self,
        window: Window,
        page: int,
        total: int,
        pages: int,
        records: Sequence[tuple[str, str | None, dict[str, Any]]],
    ) -> int:
        """Store a page's photos ``(photo_id, dropped_by, record)`` and mark it done; return how many were new."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            new = sum(
                self._store_photo(window, photo_id, dropped_by, record) for photo_id, dropped_by, record in records
            )
            self._db.execute(
                "INSERT INTO pages (class_id, query_index, path, page, returned, new) VALUES (?, ?, ?, ?, ?, ?)",
                (window.class_id, window.query_index, window.path, page, len(records), new),
            )
            self._db.execute(
                "UPDATE windows SET total=?, pages=?, next_page=? WHERE class_id=? AND query_index=? AND path=?",
                (total, pages, page + 1, window.class_id, window.query_index, window.path),
            )
        window.total, window.pages, window.next_page = total, pages, page + 1
        return new

    def _store_photo(self, window: Window, photo_id: str, dropped_by: str | None, record: dict[str, Any]) -> int:
        """Store one photo (inside record_page's transaction); 1 when it is new or newly kept.

        The first sighting wins, except that a photo an earlier query dropped is kept when a later
        query of the class accepts it: it is re-inserted, so the kept order is the order of acceptance.
        """
        values = (window.class_id, photo_id, window.query_index, dropped_by, json.dumps(record, sort_keys=True))
        insert = (
            "INSERT OR IGNORE INTO photos (class_id, photo_id, query_index, dropped_by, record) VALUES (?, ?, ?, ?, ?)"
        )
        if self._db.execute(insert, values).rowcount:
            return 1
        if dropped_by is not None:
            return 0
        deleted = self._db.execute(
            "DELETE FROM photos WHERE class_id=? AND photo_id=? AND dropped_by IS NOT NULL", (window.class_id, photo_id)
        ).rowcount
        return self._db.execute(insert, values).rowcount if deleted else 0

    def pages_done(self, class_id: int | None = None) -> list[tuple[int, int, str, int]]:
        with self._lock:
            sql = "SELECT class_id, query_index, path, page FROM pages"
            rows = self._db.execute(
                sql + (" WHERE class_id=?" if class_id is not None else ""), (() if class_id is None else (class_id,))
            ).fetchall()
        return [tuple(r) for r in rows]  # type: ignore[misc]

    def window_bounds(self) -> dict[tuple[int, int, str], tuple[int | None, int | None]]:
        with self._lock:
            rows = self._db.execute("SELECT class_id, query_index, path, lo, hi FROM windows").fetchall()
        return {(r[0], r[1], r[2]): (r[3], r[4]) for r in rows}

    def count_windows(self, class_id: int) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM windows WHERE class_id=?", (class_id,)).fetchone()[0]

    # -- photos -----------------------------------------------------------------------------
    def kept_count(self, class_id: int) -> int:
        with self._lock:
            return self._db.execute(
                "SELECT COUNT(*) FROM photos WHERE class_id=? AND dropped_by IS NULL", (class_id,)
            ).fetchone()[0]

    def photos(
        self, class_id: int, kept: bool, limit: int | None = None
    ) -> list[tuple[str, int, str | None, dict[str, Any]]]:
        """``(photo_id, query_index, dropped_by, record)`` in the order they were found."""
        sql = (
            "SELECT photo_id, query_index, dropped_by, record FROM photos WHERE class_id=? AND dropped_by IS "
            + ("NULL" if kept else "NOT NULL")
            + " ORDER BY rowid"
            + (f" LIMIT {int(limit)}" if limit is not None else "")
        )
        with self._lock:
            rows = self._db.execute(sql, (class_id,)).fetchall()
        return [(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    def seen_count(self, class_id: int) -> int:
        """Distinct photos the searches of a class returned (kept or dropped)."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM photos WHERE class_id=?", (class_id,)).fetchone()[0]

    def dropped_counts(self, class_id: int) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT dropped_by, COUNT(*) FROM photos WHERE class_id=? AND dropped_by IS NOT NULL GROUP BY dropped_by ORDER BY 2 DESC",
                (class_id,),
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def page_stats(self, class_id: int) -> tuple[int, int]:
        """(pages requested, photos returned) for a class."""
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(returned), 0) FROM pages WHERE class_id=?", (class_id,)
            ).fetchone()
        return int(row[0]), int(row[1])

    # -- classes ----------------------------------------------------------------------------
    def class_done(self, class_id: int) -> bool:
        with self._lock:
            row = self._db.execute("SELECT status FROM classes WHERE class_id=?", (class_id,)).fetchone()
        return bool(row and row[0] == "done")

    def mark_class_done(self, class_id: int) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO classes (class_id, status) VALUES (?, 'done')", (class_id,))
