"""The tagging queue: one SQLite database (WAL mode) holding items, decisions, history and leases.

Crash safety: every decision is one ``BEGIN IMMEDIATE ... COMMIT`` transaction with
``synchronous=FULL``, committed before the HTTP response returns, so a killed server (or a
power cut) loses nothing that a page showed as saved. Restarting opens the same file and the
queue continues from the first item that still needs a decision.

Concurrency: items are handed out under *leases* (``lease_seconds``, renewed on every request of
the holder); an item leased to one client (a browser tab) is never handed to another until the
lease expires or the item is decided. Decisions are keyed by ``(key, annotator)``: two tabs that
race on one item both keep their decision (the later one of the same annotator is an edit, with
the earlier one in ``history``).

Overlap sample: a deterministic fraction of items (``overlap``, chosen by a hash of the key) needs
decisions from two different annotators; :mod:`janus_build.tag.stats` computes Cohen's kappa on it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from janus_build import schemas
from janus_build.errors import ConfigError, InputError

log = logging.getLogger(__name__)

DECISIONS = schemas.TAG_DECISIONS  # ("in", "out", "unsure")
DB_SUBDIR = "tag"
DB_NAME = "tags.sqlite"
SCHEMA_VERSION = "1"
DEFAULT_OVERLAP = 0.05

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS shards (name TEXT PRIMARY KEY, rows INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    class_id INTEGER NOT NULL,
    shard TEXT, image_ext TEXT, image_offset INTEGER, image_size INTEGER,
    url TEXT, title TEXT, tags TEXT, info TEXT,
    overlap_rank REAL NOT NULL,
    need INTEGER NOT NULL DEFAULT 1,
    ndecided INTEGER NOT NULL DEFAULT 0,
    open INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS items_queue ON items(class_id, open, id);
-- items judged by some but not all of the annotators they need (overlap sample), and confirmed ones
CREATE INDEX IF NOT EXISTS items_judged ON items(class_id, open, ndecided);
CREATE TABLE IF NOT EXISTS decisions (
    key TEXT NOT NULL, annotator TEXT NOT NULL, class_id INTEGER NOT NULL,
    decision TEXT NOT NULL CHECK (decision IN ('in', 'out', 'unsure')),
    time_ms INTEGER NOT NULL, first_time_ms INTEGER NOT NULL,
    PRIMARY KEY (key, annotator)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS decisions_class ON decisions(class_id, decision);
CREATE INDEX IF NOT EXISTS decisions_class_time ON decisions(class_id, first_time_ms);
CREATE INDEX IF NOT EXISTS decisions_annotator ON decisions(annotator, class_id, time_ms);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    batch INTEGER NOT NULL, key TEXT NOT NULL, class_id INTEGER NOT NULL,
    annotator TEXT NOT NULL, client TEXT NOT NULL,
    action TEXT NOT NULL,            -- decide | edit | undo
    decision TEXT, previous TEXT,    -- NULL decision: the decision was removed (undo)
    time_ms INTEGER NOT NULL, undone INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS history_client ON history(client, undone, batch);
CREATE INDEX IF NOT EXISTS history_batch ON history(batch);
CREATE INDEX IF NOT EXISTS history_annotator ON history(annotator, class_id, time_ms);
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY, client TEXT NOT NULL, annotator TEXT NOT NULL,
    class_id INTEGER NOT NULL, expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS leases_client ON leases(client, class_id);
-- per-class counters kept in step with items/decisions in the same transactions (O(1) progress)
CREATE TABLE IF NOT EXISTS class_counts (
    class_id INTEGER PRIMARY KEY, items INTEGER NOT NULL DEFAULT 0, open INTEGER NOT NULL DEFAULT 0,
    n_in INTEGER NOT NULL DEFAULT 0, n_out INTEGER NOT NULL DEFAULT 0, n_unsure INTEGER NOT NULL DEFAULT 0
);
"""

_ITEM_COLUMNS = "id, key, class_id, shard, image_ext, image_offset, image_size, url, title, tags, info, need, ndecided"


@dataclass(frozen=True)
class Item:
    """One image in the queue, with what the page shows about it."""

    key: str
    class_id: int
    shard: str | None
    image_ext: str | None
    image_offset: int | None
    image_size: int | None
    url: str | None
    title: str
    tags: str
    info: dict[str, Any]
    need: int
    ndecided: int

    def public(self) -> dict[str, Any]:
        """The JSON the page receives (text fields are shown with ``textContent``, never as HTML)."""
        return {
            "key": self.key,
            "class_id": self.class_id,
            "title": self.title,
            "tags": self.tags,
            "info": self.info,
            "overlap": self.need > 1,
            "has_image": self.image_offset is not None,
            "url": self.url,
        }


@dataclass(frozen=True)
class Decision:
    """One decision to record (the unit of :meth:`TagQueue.decide_many`)."""

    key: str
    decision: str


def now_ms() -> int:
    return int(time.time() * 1000)


def overlap_rank(key: str) -> float:
    """A stable pseudo-random number in [0, 1) per key: items below ``overlap`` are double-tagged."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") / 2**64


def default_db_path(stage_dir: str | os.PathLike[str]) -> Path:
    """Where the queue of a stage directory lives: ``STAGE_DIR/tag/tags.sqlite``."""
    return Path(stage_dir) / DB_SUBDIR / DB_NAME


def _row_item(row: Sequence[Any]) -> Item:
    return Item(
        key=row[1],
        class_id=row[2],
        shard=row[3],
        image_ext=row[4],
        image_offset=row[5],
        image_size=row[6],
        url=row[7],
        title=row[8] or "",
        tags=row[9] or "",
        info=json.loads(row[10]) if row[10] else {},
        need=row[11],
        ndecided=row[12],
    )


def _recount(cur: sqlite3.Cursor) -> None:
    """Recompute ``class_counts`` from ``items`` and ``decisions`` (on open and after loading)."""
    cur.execute("DELETE FROM class_counts")
    cur.execute(
        "INSERT INTO class_counts (class_id, items, open) SELECT class_id, COUNT(*), SUM(open) FROM items GROUP BY class_id"
    )
    for class_id, decision, n in cur.execute(
        "SELECT class_id, decision, COUNT(*) FROM decisions GROUP BY class_id, decision"
    ).fetchall():
        cur.execute(f"UPDATE class_counts SET n_{decision}=? WHERE class_id=?", (n, class_id))


def _count(cur: sqlite3.Cursor, class_id: int, decision: str | None, delta: int, open_delta: int = 0) -> None:
    if decision is not None:
        cur.execute(
            f"UPDATE class_counts SET n_{_check_decision(decision)}=n_{decision}+? WHERE class_id=?", (delta, class_id)
        )
    if open_delta:
        cur.execute("UPDATE class_counts SET open=open+? WHERE class_id=?", (open_delta, class_id))


def _check_decision(decision: str) -> str:
    if decision not in DECISIONS:
        raise InputError(f"decision {decision!r}: expected one of {', '.join(DECISIONS)}")
    return decision


def _check_name(value: str, what: str) -> str:
    value = (value or "").strip()
    if not value or len(value) > 100:
        raise InputError(f"{what} {value!r}: expected a non-empty name of at most 100 characters")
    return value


class TagQueue:
    """The tagging queue of one stage directory (thread-safe; share one instance per process).

    Args:
        path: the SQLite file (created with its directory when missing).
        overlap: fraction of items that need two annotators (the agreement sample); ``None``
            keeps the stored fraction (:data:`DEFAULT_OVERLAP` for a new queue).
        lease_seconds: how long an item handed to a client stays reserved for it.

    Use :func:`open_queue` to create or open a queue over an image stage directory.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, overlap: float | None = None, lease_seconds: float = 120.0
    ) -> None:
        if overlap is not None and not 0.0 <= overlap <= 1.0:
            raise ConfigError(f"--overlap {overlap}: expected a fraction between 0 and 1")
        if lease_seconds <= 0:
            raise ConfigError(f"--lease-seconds {lease_seconds}: expected a positive number")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.lease_ms = int(lease_seconds * 1000)
        self._lock = threading.RLock()
        try:
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")  # a committed decision survives a power cut too
            self._durable = True
            self._conn.execute("PRAGMA busy_timeout=30000")
            self._conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise InputError(f"--db {self.path}: not a usable SQLite database ({exc})") from None
        with self._write() as cur:
            cur.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
            cur.execute(
                "INSERT OR IGNORE INTO meta VALUES ('overlap', ?)",
                (repr(DEFAULT_OVERLAP if overlap is None else overlap),),
            )
            _recount(cur)
        if overlap is not None:
            self.set_overlap(overlap)

    # -- plumbing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _write(self, durable: bool = True) -> Iterator[sqlite3.Cursor]:
        """One write transaction, committed when the block ends without error.

        ``durable=False`` (leases only) skips the fsync: a lease lost in a power cut costs
        nothing, and the next durable commit flushes the log anyway.
        """
        with self._lock:
            cur = self._conn.cursor()
            if durable != self._durable:
                cur.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                self._durable = durable
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> TagQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta -------------------------------------------------------------------------------
    def meta(self) -> dict[str, str]:
        return dict(self._read("SELECT name, value FROM meta"))

    def set_meta(self, **values: Any) -> None:
        with self._write() as cur:
            cur.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in values.items()])

    def set_overlap(self, overlap: float) -> None:
        """(Re)define the overlap sample: items whose key hash falls below ``overlap`` need two annotators."""
        with self._write() as cur:
            old = cur.execute("SELECT value FROM meta WHERE name='overlap'").fetchone()
            if old is not None and float(old[0]) == overlap:
                return
            cur.execute("INSERT OR REPLACE INTO meta VALUES ('overlap', ?)", (repr(overlap),))
            cur.execute(
                "UPDATE items SET need = CASE WHEN overlap_rank < ? THEN 2 ELSE 1 END, "
                "open = (ndecided < CASE WHEN overlap_rank < ? THEN 2 ELSE 1 END)",
                (overlap, overlap),
            )
            _recount(cur)

    @property
    def overlap(self) -> float:
        return float(self.meta().get("overlap", "0"))

    # -- loading ----------------------------------------------------------------------------
    def loaded_shards(self) -> set[str]:
        return {r[0] for r in self._read("SELECT name FROM shards")}

    def add_items(self, rows: Iterable[Mapping[str, Any]], shard_name: str | None = None) -> int:
        """Insert items (dicts with ``key``, ``class_id`` and optional image location / text fields).

        Keys already in the queue are left as they are. Returns the number of new items.
        """
        overlap = self.overlap
        batch = []
        for row in rows:
            key = str(row["key"])
            rank = overlap_rank(key)
            info = {k: v for k, v in (row.get("info") or {}).items() if v is not None}
            batch.append(
                (
                    key,
                    int(row["class_id"]),
                    row.get("shard"),
                    row.get("image_ext"),
                    row.get("image_offset"),
                    row.get("image_size"),
                    row.get("url"),
                    row.get("title") or "",
                    row.get("tags") or "",
                    json.dumps(info, ensure_ascii=False) if info else None,
                    rank,
                    2 if rank < overlap else 1,
                )
            )
        with self._write() as cur:
            before = cur.execute("SELECT COUNT(*) FROM items").fetchone()[0]
            cur.executemany(
                "INSERT OR IGNORE INTO items (key, class_id, shard, image_ext, image_offset, image_size, url, title, tags, "
                "info, overlap_rank, need) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                batch,
            )
            added = cur.execute("SELECT COUNT(*) FROM items").fetchone()[0] - before
            if added:
                _recount(cur)
            if shard_name is not None:
                cur.execute("INSERT OR REPLACE INTO shards VALUES (?, ?)", (shard_name, len(batch)))
        return added

    # -- queue ------------------------------------------------------------------------------
    def classes(self) -> list[int]:
        return [r[0] for r in self._read("SELECT DISTINCT class_id FROM items ORDER BY class_id")]

    def item(self, key: str) -> Item | None:
        rows = self._read(f"SELECT {_ITEM_COLUMNS} FROM items WHERE key=?", (key,))
        return _row_item(rows[0]) if rows else None

    def next_items(self, class_id: int, client: str, annotator: str, n: int = 8) -> list[Item]:
        """Lease up to ``n`` items of ``class_id`` to ``client`` and return them in queue order.

        Items this client already holds (and still needs) come first, their leases renewed, so a
        reloaded tab or a restarted server resumes where it stopped. An item leased to another
        client, or one this annotator has already decided, is never returned.
        """
        client = _check_name(client, "client")
        annotator = _check_name(annotator, "annotator")
        n = max(1, min(int(n), 200))
        t = now_ms()
        with self._write(durable=False) as cur:
            mine = cur.execute(
                f"SELECT {', '.join('i.' + c.strip() for c in _ITEM_COLUMNS.split(','))} FROM leases l "
                "JOIN items i ON i.key = l.key WHERE l.client=? AND l.class_id=? ORDER BY i.id",
                (client, class_id),
            ).fetchall()
            keep, drop = [], []
            for row in mine:
                decided = cur.execute(
                    "SELECT 1 FROM decisions WHERE key=? AND annotator=?", (row[1], annotator)
                ).fetchone()
                (drop if decided or row[12] >= row[11] else keep).append(row)
            if drop:
                cur.executemany("DELETE FROM leases WHERE key=? AND client=?", [(r[1], client) for r in drop])
            rows = keep[:n]
            if len(rows) < n:
                rows += cur.execute(
                    f"SELECT {_ITEM_COLUMNS} FROM items i WHERE class_id=? AND open=1 "
                    "AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.key=i.key AND (l.expires_ms>? OR l.client=?)) "
                    "AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.key=i.key AND d.annotator=?) "
                    "ORDER BY id LIMIT ?",
                    (class_id, t, client, annotator, n - len(rows)),
                ).fetchall()
            cur.executemany(
                "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?)",
                [(r[1], client, annotator, class_id, t + self.lease_ms) for r in rows],
            )
        return [_row_item(r) for r in rows]

    def release(self, client: str, class_id: int | None = None, keys: Iterable[str] | None = None) -> None:
        """Give back a client's leases (all, one class's, or ``keys``), e.g. when a tab switches class."""
        with self._write(durable=False) as cur:
            if keys is not None:
                cur.executemany("DELETE FROM leases WHERE key=? AND client=?", [(k, client) for k in keys])
            elif class_id is not None:
                cur.execute("DELETE FROM leases WHERE client=? AND class_id=?", (client, class_id))
            else:
                cur.execute("DELETE FROM leases WHERE client=?", (client,))

    # -- decisions --------------------------------------------------------------------------
    def decide(self, key: str, decision: str, annotator: str, client: str = "api") -> dict[str, Any]:
        """Record one decision (or change this annotator's earlier one); durable on return."""
        return self.decide_many([Decision(key, decision)], annotator, client)[0]

    def decide_many(self, decisions: Sequence[Decision], annotator: str, client: str = "api") -> list[dict[str, Any]]:
        """Record several decisions in one transaction (a grid page), undone together by :meth:`undo`.

        Raises:
            InputError: an unknown key or decision (nothing is recorded then).
        """
        annotator = _check_name(annotator, "annotator")
        client = _check_name(client, "client")
        for d in decisions:
            _check_decision(d.decision)
        if not decisions:
            return []
        t = now_ms()
        results = []
        with self._write() as cur:
            batch = (cur.execute("SELECT MAX(batch) FROM history").fetchone()[0] or 0) + 1
            for d in decisions:
                row = cur.execute("SELECT class_id, need, ndecided FROM items WHERE key=?", (d.key,)).fetchone()
                if row is None:
                    raise InputError(f"key {d.key!r}: not in the queue")
                class_id, need, ndecided = row
                prev = cur.execute(
                    "SELECT decision FROM decisions WHERE key=? AND annotator=?", (d.key, annotator)
                ).fetchone()
                if prev is None:
                    cur.execute(
                        "INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?)",
                        (d.key, annotator, class_id, d.decision, t, t),
                    )
                    ndecided += 1
                    cur.execute(
                        "UPDATE items SET ndecided=?, open=? WHERE key=?", (ndecided, int(ndecided < need), d.key)
                    )
                    _count(cur, class_id, d.decision, 1, -1 if ndecided == need else 0)
                    action = "decide"
                else:
                    cur.execute(
                        "UPDATE decisions SET decision=?, time_ms=? WHERE key=? AND annotator=?",
                        (d.decision, t, d.key, annotator),
                    )
                    _count(cur, class_id, prev[0], -1)
                    _count(cur, class_id, d.decision, 1)
                    action = "edit"
                cur.execute(
                    "INSERT INTO history (batch, key, class_id, annotator, client, action, decision, previous, time_ms) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
                    (batch, d.key, class_id, annotator, client, action, d.decision, prev[0] if prev else None, t),
                )
                cur.execute(
                    "DELETE FROM leases WHERE key=? AND (client=? OR ?=0)", (d.key, client, int(ndecided < need))
                )
                results.append(
                    {"key": d.key, "class_id": class_id, "decision": d.decision, "action": action, "time_ms": t}
                )
        return results

    def undo(self, client: str, annotator: str) -> list[Item]:
        """Revert this client's latest decision batch (one decision, or one grid page).

        The items are leased back to the client and returned, so the page shows them again.
        Returns an empty list when there is nothing left to undo.
        """
        client = _check_name(client, "client")
        annotator = _check_name(annotator, "annotator")
        t = now_ms()
        with self._write() as cur:
            last = cur.execute(
                "SELECT MAX(batch) FROM history WHERE client=? AND annotator=? AND undone=0 AND action IN ('decide','edit')",
                (client, annotator),
            ).fetchone()[0]
            if last is None:
                return []
            rows = cur.execute(
                "SELECT seq, key, class_id, action, previous FROM history WHERE batch=? AND undone=0 ORDER BY seq DESC",
                (last,),
            ).fetchall()
            keys = []
            for seq, key, class_id, _action, previous in rows:
                current = cur.execute(
                    "SELECT decision FROM decisions WHERE key=? AND annotator=?", (key, annotator)
                ).fetchone()
                if current is None:
                    pass  # already gone (undone elsewhere): nothing to revert
                elif previous is None:
                    need, ndecided = cur.execute("SELECT need, ndecided FROM items WHERE key=?", (key,)).fetchone()
                    cur.execute("DELETE FROM decisions WHERE key=? AND annotator=?", (key, annotator))
                    cur.execute(
                        "UPDATE items SET ndecided=?, open=? WHERE key=?", (ndecided - 1, int(ndecided - 1 < need), key)
                    )
                    _count(cur, class_id, current[0], -1, 1 if ndecided == need else 0)
                else:
                    cur.execute(
                        "UPDATE decisions SET decision=?, time_ms=? WHERE key=? AND annotator=?",
                        (previous, t, key, annotator),
                    )
                    _count(cur, class_id, current[0], -1)
                    _count(cur, class_id, previous, 1)
                cur.execute("UPDATE history SET undone=1 WHERE seq=?", (seq,))
                cur.execute(
                    "INSERT INTO history (batch, key, class_id, annotator, client, action, decision, previous, time_ms, undone) "
                    "VALUES (?,?,?,?,?,'undo',?,?,?,1)",
                    (last, key, class_id, annotator, client, previous, current[0] if current else None, t),
                )
                cur.execute(
                    "INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?)",
                    (key, client, annotator, class_id, t + self.lease_ms),
                )
                keys.append(key)
            items = [
                _row_item(cur.execute(f"SELECT {_ITEM_COLUMNS} FROM items WHERE key=?", (k,)).fetchone())
                for k in reversed(keys)
            ]
        return items

    def recent(self, annotator: str, class_id: int | None = None, n: int = 12) -> list[dict[str, Any]]:
        """This annotator's latest current decisions (newest first), for the editable strip."""
        if class_id is None:
            rows = self._read(
                "SELECT key, class_id, decision FROM decisions WHERE annotator=? ORDER BY time_ms DESC LIMIT ?",
                (annotator, n),
            )
        else:
            rows = self._read(
                "SELECT key, class_id, decision FROM decisions WHERE annotator=? AND class_id=? ORDER BY time_ms DESC LIMIT ?",
                (annotator, class_id, n),
            )
        return [{"key": r[0], "class_id": r[1], "decision": r[2]} for r in rows]

    # -- reading decisions ------------------------------------------------------------------
    def decisions(self) -> list[tuple[str, int, str, str, int, int]]:
        """Every current decision, first made first.

        Returns:
            ``(key, class_id, decision, annotator, time_ms, first_time_ms)`` tuples; ``time_ms`` is
            when the decision last changed (an edit), ``first_time_ms`` when it was first made.
        """
        return self._read(
            "SELECT key, class_id, decision, annotator, time_ms, first_time_ms FROM decisions "
            "ORDER BY first_time_ms, key, annotator"
        )

    def progress(self, class_id: int, annotator: str | None = None, window_s: float = 300.0) -> dict[str, Any]:
        """Per-class progress: items, done, remaining, awaiting_second, in-class rate, decisions/minute.

        ``done`` items need no further decision. ``remaining`` items still need one from
        ``annotator`` (without one: items nobody has judged yet). ``awaiting_second`` items are
        overlap items judged (by ``annotator``, or by anyone without one) that wait for another
        annotator. ``done + remaining + awaiting_second == items``.
        """
        row = self._read("SELECT items, open, n_in, n_out, n_unsure FROM class_counts WHERE class_id=?", (class_id,))
        total, open_items, n_in, n_out, n_unsure = row[0] if row else (0, 0, 0, 0, 0)
        decided = n_in + n_out + n_unsure
        awaiting = self._awaiting_second(class_id, annotator)
        return {
            "class_id": class_id,
            "items": total,
            "done": total - open_items,
            "remaining": open_items - awaiting,
            "awaiting_second": awaiting,
            "decisions": decided,
            "in": n_in,
            "out": n_out,
            "unsure": n_unsure,
            "in_rate": round(n_in / decided, 4) if decided else None,
            "decisions_per_minute": self._rate(class_id, annotator, window_s) if annotator else None,
        }

    def _awaiting_second(self, class_id: int, annotator: str | None) -> int:
        """Open items already judged (by ``annotator`` when given): they wait for another annotator."""
        if annotator is None:
            sql, params = "SELECT COUNT(*) FROM items WHERE class_id=? AND open=1 AND ndecided>=1", (class_id,)
        else:
            sql = (
                "SELECT COUNT(*) FROM items i JOIN decisions d ON d.key=i.key AND d.annotator=? "
                "WHERE i.class_id=? AND i.open=1 AND i.ndecided>=1"
            )
            params = (annotator, class_id)
        return self._read(sql, params)[0][0]

    def _rate(self, class_id: int, annotator: str, window_s: float) -> float | None:
        """This annotator's decisions per minute in the class over the last ``window_s`` seconds."""
        t = now_ms()
        n, first = self._read(
            "SELECT COUNT(*), MIN(time_ms) FROM history WHERE annotator=? AND class_id=? AND time_ms>? "
            "AND action IN ('decide','edit') AND undone=0",
            (annotator, class_id, t - int(window_s * 1000)),
        )[0]
        if n >= 2 and t > first:
            return round((n - 1) / ((t - first) / 60000.0), 1)
        return None

    def confirmed_in_keys(self, class_id: int, n: int = 6) -> list[str]:
        """Images that two or more annotators judged in-class and nobody out (the reference photos
        when ``--references`` has none): one annotator's slip never becomes a reference."""
        return [
            r[0]
            for r in self._read(
                "SELECT i.key FROM items i WHERE i.class_id=? AND i.open IN (0, 1) AND i.ndecided>=2 "
                "AND (SELECT COUNT(*) FROM decisions d WHERE d.key=i.key AND d.decision='in')>=2 "
                "AND NOT EXISTS (SELECT 1 FROM decisions d WHERE d.key=i.key AND d.decision='out') "
                "ORDER BY i.id LIMIT ?",
                (class_id, n),
            )
        ]


# --- building a queue over an image stage ----------------------------------------------------
def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


# shown under the image (owner and licence for attribution, the Flickr page as the source)
INFO_COLUMNS = (
    "description",
    "owner",
    "owner_name",
    "license",
    "license_url",
    "page_url",
    "query",
    "photo_id",
    "source",
    "caption",
)


def load_image_stage(queue: TagQueue, images_dir: str | os.PathLike[str], class_col: str = "class_id") -> int:
    """Add the successful images of every finished shard not yet loaded; returns the number added.

    Raises:
        InputError: the directory holds no image shards.
        SchemaError: a shard's index lacks ``class_col``.
    """
    import pyarrow.parquet as pq

    from janus_build.core.shards import shard_names

    images_dir = Path(images_dir)
    names = shard_names(images_dir)
    if not names:
        raise InputError(
            f"{images_dir}: no finished image shards (expected NNNNN.tar + NNNNN.parquet + _stats/NNNNN.json, "
            "or a janus fetch output with images/)"
        )
    loaded = queue.loaded_shards()
    added = 0
    for name in names:
        if name in loaded:
            continue
        path = images_dir / f"{name}.parquet"
        columns = pq.read_schema(path).names
        schemas.require_columns(columns, ["key", "shard", "image_offset", "image_size", "status", class_col], f"{path}")
        wanted = [
            c
            for c in [
                "key",
                "shard",
                "image_ext",
                "image_offset",
                "image_size",
                "status",
                class_col,
                "title",
                "tags",
                "url",
                *INFO_COLUMNS,
            ]
            if c in columns
        ]
        table = pq.read_table(path, columns=wanted).to_pylist()
        rows = []
        for r in table:
            if r["status"] != "success" or r["image_offset"] is None or r[class_col] is None:
                continue
            rows.append(
                {
                    "key": r["key"],
                    "class_id": r[class_col],
                    "shard": r["shard"],
                    "image_ext": r.get("image_ext"),
                    "image_offset": r["image_offset"],
                    "image_size": r["image_size"],
                    "url": r.get("url"),
                    "title": _text(r.get("title")),
                    "tags": _text(r.get("tags")),
                    "info": {c: _text(r.get(c)) for c in INFO_COLUMNS if c in r},
                }
            )
        added += queue.add_items(rows, shard_name=name)
    if added:
        log.info("queue %s: %d new item(s) from %s", queue.path, added, images_dir)
    return added


def open_queue(
    stage_dir: str | os.PathLike[str],
    db: str | os.PathLike[str] | None = None,
    *,
    overlap: float | None = None,
    lease_seconds: float = 120.0,
    class_col: str = "class_id",
) -> TagQueue:
    """Open (creating or extending) the tagging queue of an image stage.

    Args:
        stage_dir: a ``janus fetch`` output (its ``images/`` is used) or an image stage directory.
        db: the SQLite file; default ``STAGE_DIR/tag/tags.sqlite``.
        overlap: fraction of items tagged by two annotators (agreement sample); ``None`` keeps
            the queue's (0.05 for a new one).
        lease_seconds: how long an item handed to a tab stays reserved for it.
        class_col: the index column holding the class id (``class_id``; ``label`` for balance output).

    Returns:
        The queue; new shards of the stage are added on every open, decisions are never touched.
    """
    from janus_build.core.shards import resolve_image_stage

    images_dir = resolve_image_stage(stage_dir)
    queue = TagQueue(db or default_db_path(stage_dir), overlap=overlap, lease_seconds=lease_seconds)
    meta = queue.meta()
    if meta.get("mode") == "audit":
        return queue
    queue.set_meta(mode="tag", images_dir=str(images_dir.resolve()))
    load_image_stage(queue, images_dir, class_col=class_col)
    return queue


def record_decisions(
    queue: TagQueue, decisions: Iterable[tuple[str, str]] | Mapping[str, str], annotator: str, batch_size: int = 500
) -> int:
    """Record known decisions (``key -> in|out|unsure``) through the same path as the page.

    For scripted tagging (the offline demo, imports of earlier hand tags). Returns the count.
    """
    pairs = list(decisions.items() if isinstance(decisions, Mapping) else decisions)
    for start in range(0, len(pairs), batch_size):
        chunk = [Decision(k, d) for k, d in pairs[start : start + batch_size]]
        queue.decide_many(chunk, annotator, client=f"script-{annotator}")
    return len(pairs)
