"""The change feed: one durable, global order of every committed run of events.

Every append writes, in the same transaction (SQLite) or the same script
(Redis, ``lua/append.lua``), one **feed run**: ``(pos, incident, first seq,
last seq)``. ``pos`` is gapless and strictly increasing in commit order across
all incidents (and all nodes, in Redis mode), so a reader that has seen every
run up to ``pos`` and reads ``pos > p`` next misses nothing and gets nothing
twice. The runs point into the incident logs; the feed itself stores no
content, so what a reader gets is decided at read time, by
``server/services/feed.py`` through ``server/domain/audience.py``.

Why runs and not one entry per event: the hot path writes one row (one XADD)
per incident per batch rather than one per event, and the events are already
in their incident's log.

Guarantees (the contract suite, tests/contract/test_feed_log.py):

* **Atomic with the events.** A run exists if and only if its events are
  stored. A crash can leave neither a run without its events nor the reverse.
* **Commit order.** Runs are readable in ``pos`` order and a reader never sees
  ``pos`` n+1 before n (each write is one transaction / one script).
* **Epoch.** ``head().epoch`` is drawn when the feed is first written and
  changes only if the feed is reset (a new data directory, a flushed Redis);
  a cursor of another epoch is refused, never served from another feed.
* **Gapless.** Positions have no holes, so ``read`` whose first run is not
  ``after + 1`` tells that the feed was trimmed below the cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from server.domain.events import AppendResult
from server.errors import StorageUnavailable

#: Runs one ``read`` returns at most, whatever the caller asks.
MAX_RUNS = 1_000


@dataclass(frozen=True, slots=True)
class FeedRun:
    """One incident's events committed together: seqs ``first..last``."""

    pos: int
    incident: str
    first: int
    last: int


@dataclass(frozen=True, slots=True)
class FeedHead:
    """The feed's epoch and the position of its last run (0: none yet)."""

    epoch: str
    pos: int


class FeedLog(Protocol):
    """Reads of the feed; its writes happen inside the event log's appends."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def head(self) -> FeedHead:
        """The epoch and last position. Raises StorageUnavailable."""
        ...

    async def read(self, after: int, limit: int) -> list[FeedRun]:
        """Up to ``limit`` (1..MAX_RUNS) runs with ``pos > after``, in pos order."""
        ...


def new_epoch() -> str:
    return secrets.token_hex(8)


# ----------------------------------------------------------- SQLite writing

#: In the events' database file: written by the log's writer, in its commit.
#: ``pos`` is the rowid, so each run gets the highest so far plus one. Runs are
#: never deleted, so a position is never handed out twice. (AUTOINCREMENT, as
#: before, promised that even after deletes, at the price of its counter in
#: ``sqlite_sequence``: one more page written by every commit.)
_RUNS_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    pos      INTEGER PRIMARY KEY,
    incident TEXT NOT NULL,
    first    INTEGER NOT NULL,
    last     INTEGER NOT NULL
);
"""
SQLITE_SCHEMA = (
    _RUNS_TABLE.format(name="feed_runs")
    + """
CREATE TABLE IF NOT EXISTS feed_meta (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch TEXT NOT NULL
);
"""
)


def create_sqlite(db: sqlite3.Connection) -> None:
    """The feed's tables and epoch (the writer calls this when it opens the file)."""
    db.executescript(SQLITE_SCHEMA)
    _runs_without_autoincrement(db)
    db.execute("INSERT OR IGNORE INTO feed_meta VALUES (1, ?)", (new_epoch(),))


def _runs_without_autoincrement(db: sqlite3.Connection) -> None:
    """Copy an older file's runs into ``_RUNS_TABLE``, every position kept (once, in one go)."""
    (sql,) = db.execute(
        "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'feed_runs'"
    ).fetchone()
    if "AUTOINCREMENT" not in sql.upper():
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("DROP TABLE IF EXISTS feed_runs_plain")
        db.execute(_RUNS_TABLE.format(name="feed_runs_plain"))
        db.execute(
            "INSERT INTO feed_runs_plain (pos, incident, first, last)"
            " SELECT pos, incident, first, last FROM feed_runs"
        )
        db.execute("DROP TABLE feed_runs")
        db.execute("ALTER TABLE feed_runs_plain RENAME TO feed_runs")
        db.execute("DELETE FROM sqlite_sequence WHERE name = 'feed_runs'")
        db.execute("COMMIT")
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise


def record_runs(db: sqlite3.Connection, results: Sequence[AppendResult | Exception]) -> None:
    """One run per incident of a batch, inside the batch's transaction.

    A batch holds each incident's new events in seq order and consecutively
    numbered (one writer), so first and last bound them exactly.
    """
    runs: dict[str, list[int]] = {}
    for r in results:
        if isinstance(r, AppendResult) and not r.duplicate:
            bounds = runs.setdefault(r.event.incident, [r.event.seq, r.event.seq])
            bounds[1] = r.event.seq
    if runs:
        db.executemany(
            "INSERT INTO feed_runs (incident, first, last) VALUES (?, ?, ?)",
            [(incident, first, last) for incident, (first, last) in runs.items()],
        )


# ----------------------------------------------------------- SQLite reading


class SqliteFeedLog:
    """The embedded feed: reads ``feed_runs`` of the events file on a thread of its own.

    Opened after the event log started (its writer created the tables).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="liaison-sqlite-feed")
        self._db: sqlite3.Connection | None = None

    async def start(self) -> None:
        def open_reader() -> sqlite3.Connection:
            db = sqlite3.connect(self.path, check_same_thread=False)
            db.execute("PRAGMA query_only=ON")
            return db

        self._db = await asyncio.get_running_loop().run_in_executor(self._pool, open_reader)

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await asyncio.get_running_loop().run_in_executor(self._pool, db.close)
        self._pool.shutdown(wait=True)

    async def _query(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            if self._db is None:
                raise StorageUnavailable("the feed is closed")
            return self._db.execute(sql, args).fetchall()

        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, run)
        except (sqlite3.Error, RuntimeError) as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def head(self) -> FeedHead:
        rows = await self._query(
            "SELECT (SELECT epoch FROM feed_meta WHERE id = 1),"
            " (SELECT coalesce(max(pos), 0) FROM feed_runs)",
            (),
        )
        epoch, pos = rows[0]
        if epoch is None:
            raise StorageUnavailable("the feed has no epoch (the log did not start)")
        return FeedHead(epoch, pos)

    async def read(self, after: int, limit: int) -> list[FeedRun]:
        rows = await self._query(
            "SELECT pos, incident, first, last FROM feed_runs WHERE pos > ? ORDER BY pos LIMIT ?",
            (after, min(max(1, limit), MAX_RUNS)),
        )
        return [FeedRun(*row) for row in rows]
