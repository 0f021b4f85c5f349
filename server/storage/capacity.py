"""The capacity log: every change of an organisation's capacity, with history.

Each organisation publishes changes (``{"beds": 4, "note": None}``: set beds,
clear the note) to one small log of its own kind, separate from the incident
logs, so it can never show up in incident lists, search, KPIs or exports.

Guarantees (the contract suite, tests/contract/test_capacity_log.py):

* **Per organisation seq**: gapless, strictly increasing from 1 per
  organisation; the history of one organisation is read by seq.
* **Global pos**: gapless, strictly increasing across all organisations in
  commit order (every node of a Redis deployment), so a board that has
  applied every change up to ``pos`` and reads ``pos > p`` next misses none
  and gets none twice (the live path, ``since``).
* **Atomic**: an entry, its seq and pos, and the current items it changes are
  written together (one SQLite transaction, one Lua script).
* **Idempotent**: a retried change with the same (actor, client id) returns
  the stored entry (``duplicate=True``) and writes nothing.
* **Durable** like the other stores: what ``append`` returned is read back
  by every later reader, after restarts too.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from server.errors import StorageUnavailable
from server.storage.files import connect_private_sqlite

#: Entries one read returns at most.
MAX_READ = 1_000


@dataclass(frozen=True, slots=True)
class CapacityDraft:
    """A change decided by the service, not yet sequenced or stored."""

    org: str
    actor_user: str
    actor_org: str
    actor_name: str
    client_id: str
    #: item -> new value; None clears it.
    items: dict[str, Any]
    ts_ms: int


@dataclass(frozen=True, slots=True)
class CapacityEntry:
    pos: int
    org: str
    seq: int
    ts_ms: int
    actor_user: str
    actor_org: str
    actor_name: str
    client_id: str
    items: dict[str, Any]

    def to_wire(self) -> dict[str, Any]:
        return {
            "org": self.org,
            "seq": self.seq,
            "pos": self.pos,
            "ts": self.ts_ms,
            "actor": {"user": self.actor_user, "org": self.actor_org, "name": self.actor_name},
            "items": self.items,
        }


@dataclass(frozen=True, slots=True)
class CurrentItem:
    """An item's value now, and the change that set it."""

    value: Any
    seq: int
    ts_ms: int


#: org -> item -> its current value (cleared items are absent).
Current = dict[str, dict[str, CurrentItem]]


class CapacityLog(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def append(self, draft: CapacityDraft) -> tuple[CapacityEntry, bool]:
        """Store a change; (the entry, whether it was a retry). Raises StorageUnavailable."""
        ...

    async def history(self, org: str, after_seq: int, limit: int) -> list[CapacityEntry]:
        """Up to ``limit`` (1..MAX_READ) of ``org``'s entries with seq > ``after_seq``."""
        ...

    async def since(self, after_pos: int, limit: int) -> list[CapacityEntry]:
        """Up to ``limit`` (1..MAX_READ) entries of every org with pos > ``after_pos``."""
        ...

    async def head(self) -> int:
        """The last pos (0: nothing yet)."""
        ...

    async def current(self) -> Current:
        """Every organisation's current items (organisations that published)."""
        ...


def fold(current: dict[str, CurrentItem], entry: CapacityEntry) -> None:
    """Apply one entry to an organisation's current items."""
    for item, value in entry.items.items():
        if value is None:
            current.pop(item, None)
        else:
            current[item] = CurrentItem(value, entry.seq, entry.ts_ms)


SCHEMA = """
CREATE TABLE IF NOT EXISTS capacity_log (
    pos        INTEGER PRIMARY KEY AUTOINCREMENT,
    org        TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    ts_ms      INTEGER NOT NULL,
    actor_user TEXT NOT NULL,
    actor_org  TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    items      TEXT NOT NULL,
    UNIQUE (org, seq),
    UNIQUE (actor_user, client_id)
);
CREATE TABLE IF NOT EXISTS capacity_current (
    org   TEXT NOT NULL,
    item  TEXT NOT NULL,
    value TEXT NOT NULL,
    seq   INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL,
    PRIMARY KEY (org, item)
);
"""
_SELECT = (
    "SELECT pos, org, seq, ts_ms, actor_user, actor_org, actor_name, client_id, items"
    " FROM capacity_log WHERE "
)


def _entry(row: Any) -> CapacityEntry:
    pos, org, seq, ts, user, actor_org, name, client_id, items = row
    return CapacityEntry(pos, org, seq, ts, user, actor_org, name, client_id, orjson.loads(items))


class SqliteCapacityLog:
    """The embedded capacity log: one file, written on a thread of its own."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="liaison-capacity")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        except sqlite3.Error as exc:
            raise StorageUnavailable(str(exc)) from exc

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            raise StorageUnavailable("the capacity log is closed")
        return self._db

    async def open(self) -> None:
        self._db = await self._run(connect_private_sqlite, self.path, SCHEMA)

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await self._run(db.close)
        self._pool.shutdown(wait=True)

    async def append(self, draft: CapacityDraft) -> tuple[CapacityEntry, bool]:
        def write() -> tuple[CapacityEntry, bool]:
            db = self._conn()
            with db:  # one transaction: entry, seq and current items together
                row = db.execute(
                    _SELECT + "actor_user = ? AND client_id = ?",
                    (draft.actor_user, draft.client_id),
                ).fetchone()
                if row is not None:
                    return _entry(row), True
                (last,) = db.execute(
                    "SELECT coalesce(max(seq), 0) FROM capacity_log WHERE org = ?", (draft.org,)
                ).fetchone()
                cur = db.execute(
                    "INSERT INTO capacity_log (org, seq, ts_ms, actor_user, actor_org,"
                    " actor_name, client_id, items) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        draft.org,
                        last + 1,
                        draft.ts_ms,
                        draft.actor_user,
                        draft.actor_org,
                        draft.actor_name,
                        draft.client_id,
                        orjson.dumps(draft.items).decode(),
                    ),
                )
                for item, value in draft.items.items():
                    if value is None:
                        db.execute(
                            "DELETE FROM capacity_current WHERE org = ? AND item = ?",
                            (draft.org, item),
                        )
                    else:
                        db.execute(
                            "INSERT OR REPLACE INTO capacity_current VALUES (?, ?, ?, ?, ?)",
                            (draft.org, item, orjson.dumps(value).decode(), last + 1, draft.ts_ms),
                        )
            assert cur.lastrowid is not None
            entry = CapacityEntry(
                cur.lastrowid,
                draft.org,
                last + 1,
                draft.ts_ms,
                draft.actor_user,
                draft.actor_org,
                draft.actor_name,
                draft.client_id,
                draft.items,
            )
            return entry, False

        result: tuple[CapacityEntry, bool] = await self._run(write)
        return result

    async def _rows(self, sql: str, args: tuple[Any, ...]) -> list[CapacityEntry]:
        def read() -> list[CapacityEntry]:
            return [_entry(row) for row in self._conn().execute(sql, args)]

        rows: list[CapacityEntry] = await self._run(read)
        return rows

    async def history(self, org: str, after_seq: int, limit: int) -> list[CapacityEntry]:
        return await self._rows(
            _SELECT + "org = ? AND seq > ? ORDER BY seq LIMIT ?",
            (org, after_seq, min(max(1, limit), MAX_READ)),
        )

    async def since(self, after_pos: int, limit: int) -> list[CapacityEntry]:
        return await self._rows(
            _SELECT + "pos > ? ORDER BY pos LIMIT ?",
            (after_pos, min(max(1, limit), MAX_READ)),
        )

    async def head(self) -> int:
        def read() -> int:
            (pos,) = (
                self._conn().execute("SELECT coalesce(max(pos), 0) FROM capacity_log").fetchone()
            )
            return int(pos)

        pos: int = await self._run(read)
        return pos

    async def current(self) -> Current:
        def read() -> Current:
            out: Current = {}
            for org, item, value, seq, ts in self._conn().execute(
                "SELECT org, item, value, seq, ts_ms FROM capacity_current"
            ):
                out.setdefault(org, {})[item] = CurrentItem(orjson.loads(value), seq, ts)
            return out

        current: Current = await self._run(read)
        return current
