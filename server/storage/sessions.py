"""Login sessions: refresh-token families and the revocation feed.

A *session* is a refresh-token family: created at login, one live refresh
token at a time, rotated on every refresh. Access tokens are stateless (see
server/auth.py) and name their family (``sid``) and issue time (``iat``), so a
node refuses a revoked one from two numbers it keeps in memory:

* ``valid_after[user]`` (ms): access tokens of that user issued before it are
  refused (disable, delete, password change, "revoke all sessions");
* ``ended[family]`` (ms): access tokens of that one family are refused
  (logout, refresh-token reuse).

Both are written here first, durably, then announced on the feed; every node
applies what the feed says and closes the principal's live sockets::

    admin / CLI ──revoke_user──▶ SessionStore ──feed──▶ every node's SessionGuard
                                 (SQLite table /        ├─ refuses older tokens
                                  Redis hash + pub/sub) └─ closes live sockets

The embedded store's feed is a table polled every ``POLL_S`` by every
process on the data dir, which is how a running server learns what the CLI
did; the Redis one is a pub/sub channel, with a full re-read of the state on
every (re)subscribe so nothing missed while disconnected stays trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from server.errors import StorageUnavailable
from server.storage.files import connect_private_sqlite
from server.storage.small_db import immediate, run_on

log = logging.getLogger(__name__)

#: How often the embedded feed is polled: the revocation latency of the CLI and
#: of the server itself in embedded mode is at most this plus a socket close.
POLL_S = 0.2

RotationStatus = Literal["ok", "unknown", "expired", "reused"]
#: ``revoke``: the user's tokens issued before ``ts_ms`` are void (disable,
#: delete, password, revoke-sessions); ``end``: one family ended (logout,
#: reuse); ``changed``: the directory row changed (enable), re-read it;
#: ``key``: API key ``family`` of bot ``user`` was created or revoked, re-read
#: it (written by server/storage/api_keys.py); ``resync``: the feed was
#: interrupted, re-read everything.
RevocationKind = Literal["revoke", "end", "changed", "key", "resync"]


@dataclass(frozen=True, slots=True)
class Revocation:
    kind: RevocationKind
    user: str
    family: str = ""
    ts_ms: int = 0


@dataclass(frozen=True, slots=True)
class Rotation:
    status: RotationStatus
    user: str = ""


@dataclass(slots=True)
class RevocationState:
    """What a node must know at start (and after a feed interruption)."""

    valid_after: dict[str, int] = field(default_factory=dict)
    ended: dict[str, int] = field(default_factory=dict)


Listener = Callable[[Revocation], Awaitable[None]]


class SessionStore(Protocol):
    """Refresh-token families and revocations, shared by every node.

    * ``start_family`` stores a new family with its first token hash (sha256
      hex of the refresh secret; the secret itself is never stored). Nothing
      of it needs to outlive ``max_age_ms``.
    * ``rotate`` is atomic: the current hash is replaced by ``new_hash`` and
      remembered as used. A used hash presented again is a theft signal: the
      whole family is ended (and announced, kind ``end``) and ``reused`` is
      returned. A family idle longer than ``idle_ms`` since its last rotation,
      or older than ``max_age_ms``, is ended too: ``expired``. Any other hash,
      or a family that does not exist (ended, never created), is ``unknown``
      and changes nothing, so a forged token cannot end someone's session.
    * ``end_family`` and ``revoke_user`` are durable before they return, then
      announced to every listener of every process/node (``Revocation``).
      ``revoke_user`` ends every family of the user and sets its
      ``valid_after`` to ``ts_ms``; ``announce`` only tells (kind ``changed``).
    * ``state(since_ms)`` returns every ``valid_after`` and the families
      ended at or after ``since_ms`` (older ones' access tokens have expired).
    * Listeners run in the node's event loop, one revocation at a time, in
      the order written (per process for the embedded store). After the feed
      was interrupted they get a ``resync`` first; ``feed_up`` is False while
      it is interrupted, and nodes then refuse new sessions (fail closed).
    * Unreachable storage raises ``server.errors.StorageUnavailable``.
    """

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def listen(self, listener: Listener) -> None: ...

    @property
    def feed_up(self) -> bool: ...

    async def start_family(
        self, family: str, user: str, token_hash: str, now_ms: int, max_age_ms: int
    ) -> None: ...

    async def rotate(
        self,
        family: str,
        old_hash: str,
        new_hash: str,
        now_ms: int,
        idle_ms: int,
        max_age_ms: int,
    ) -> Rotation: ...

    async def end_family(self, family: str, now_ms: int) -> str | None: ...

    async def revoke_user(self, user: str, now_ms: int) -> None: ...

    async def announce(self, user: str, now_ms: int) -> None: ...

    async def state(self, since_ms: int) -> RevocationState: ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS families (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL, current_hash TEXT NOT NULL,
    created_ms INTEGER NOT NULL, last_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS families_user ON families(user_id);
CREATE TABLE IF NOT EXISTS used_hashes (hash TEXT PRIMARY KEY, family TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS valid_after (user_id TEXT PRIMARY KEY, ts_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS revocations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, user_id TEXT NOT NULL,
    family TEXT NOT NULL, ts_ms INTEGER NOT NULL
);
"""


class SqliteSessionStore:
    """Sessions in a SQLite file of the data dir; the feed is a polled table.

    Every process on the data dir (the server, the CLI) sees the same rows; a
    write is one ``BEGIN IMMEDIATE`` transaction, so two processes rotating
    the same token cannot both succeed.
    """

    def __init__(self, path: Path, poll_s: float = POLL_S) -> None:
        self.path, self.poll_s = path, poll_s
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="liaison-sessions")
        self._db: sqlite3.Connection | None = None
        self._listeners: list[Listener] = []
        self._poller: asyncio.Task[None] | None = None
        self._seen = 0

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await run_on(self._pool, fn, *args)

    def _tx(self, body: Callable[[sqlite3.Connection], Any]) -> Any:
        assert self._db is not None
        return immediate(self._db, body)

    async def open(self) -> None:
        self._db = await self._run(connect_private_sqlite, self.path, SCHEMA)
        self._seen = await self._run(self._last_id)

    def _last_id(self) -> int:
        assert self._db is not None
        row = self._db.execute("SELECT max(id) FROM revocations").fetchone()
        return int(row[0] or 0)

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name="sessions-feed")

    @property
    def feed_up(self) -> bool:
        return self._db is not None

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                rows = await self._run(self._read_since, self._seen)
            except StorageUnavailable as exc:
                log.warning("reading the revocation feed failed: %s", exc)
                continue
            for row_id, kind, user, family, ts_ms in rows:
                self._seen = row_id
                await self._deliver(Revocation(kind, user, family, ts_ms))

    async def _deliver(self, revocation: Revocation) -> None:
        for listener in self._listeners:
            try:
                await listener(revocation)
            except Exception:
                log.exception("a revocation listener failed on %s", revocation)

    def _read_since(self, after: int) -> list[tuple[int, RevocationKind, str, str, int]]:
        assert self._db is not None
        rows = self._db.execute(
            "SELECT id, kind, user_id, family, ts_ms FROM revocations WHERE id > ? ORDER BY id",
            (after,),
        )
        return list(rows)

    async def start_family(
        self, family: str, user: str, token_hash: str, now_ms: int, max_age_ms: int
    ) -> None:
        def write(db: sqlite3.Connection) -> None:
            # Families past their age are refused by rotate; pruned here, with
            # feed rows every process has long read (a day: it polls every
            # POLL_S, and ended families matter for one access-token lifetime).
            pruned = db.execute("DELETE FROM families WHERE created_ms < ?", (now_ms - max_age_ms,))
            if pruned.rowcount:
                db.execute("DELETE FROM used_hashes WHERE family NOT IN (SELECT id FROM families)")
            db.execute("DELETE FROM revocations WHERE ts_ms < ?", (now_ms - 86_400_000,))
            db.execute(
                "INSERT INTO families VALUES (?, ?, ?, ?, ?)",
                (family, user, token_hash, now_ms, now_ms),
            )

        await self._run(self._tx, write)

    async def rotate(
        self,
        family: str,
        old_hash: str,
        new_hash: str,
        now_ms: int,
        idle_ms: int,
        max_age_ms: int,
    ) -> Rotation:
        def write(db: sqlite3.Connection) -> Rotation:
            row = db.execute(
                "SELECT user_id, current_hash, created_ms, last_ms FROM families WHERE id = ?",
                (family,),
            ).fetchone()
            if row is None:
                return Rotation("unknown")
            user, current, created_ms, last_ms = row
            if old_hash != current:
                used = db.execute(
                    "SELECT 1 FROM used_hashes WHERE hash = ? AND family = ?", (old_hash, family)
                ).fetchone()
                if used is None:
                    return Rotation("unknown")
                self._end(db, family, user, now_ms)
                return Rotation("reused", user)
            if now_ms - last_ms > idle_ms or now_ms - created_ms > max_age_ms:
                self._end(db, family, user, now_ms)
                return Rotation("expired", user)
            db.execute("INSERT INTO used_hashes VALUES (?, ?)", (old_hash, family))
            db.execute(
                "UPDATE families SET current_hash = ?, last_ms = ? WHERE id = ?",
                (new_hash, now_ms, family),
            )
            return Rotation("ok", user)

        result: Rotation = await self._run(self._tx, write)
        return result

    @staticmethod
    def _end(db: sqlite3.Connection, family: str, user: str, now_ms: int) -> None:
        db.execute("DELETE FROM families WHERE id = ?", (family,))
        db.execute("DELETE FROM used_hashes WHERE family = ?", (family,))
        db.execute(
            "INSERT INTO revocations (kind, user_id, family, ts_ms) VALUES ('end', ?, ?, ?)",
            (user, family, now_ms),
        )

    async def end_family(self, family: str, now_ms: int) -> str | None:
        def write(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT user_id FROM families WHERE id = ?", (family,)).fetchone()
            if row is None:
                return None
            self._end(db, family, row[0], now_ms)
            return str(row[0])

        result: str | None = await self._run(self._tx, write)
        return result

    async def revoke_user(self, user: str, now_ms: int) -> None:
        def write(db: sqlite3.Connection) -> None:
            rows = db.execute("SELECT id FROM families WHERE user_id = ?", (user,))
            families = [row[0] for row in rows]
            for family in families:
                db.execute("DELETE FROM used_hashes WHERE family = ?", (family,))
            db.execute("DELETE FROM families WHERE user_id = ?", (user,))
            db.execute(
                "INSERT INTO valid_after VALUES (?, ?) ON CONFLICT(user_id)"
                " DO UPDATE SET ts_ms = max(ts_ms, excluded.ts_ms)",
                (user, now_ms),
            )
            db.execute(
                "INSERT INTO revocations (kind, user_id, family, ts_ms)"
                " VALUES ('revoke', ?, '', ?)",
                (user, now_ms),
            )

        await self._run(self._tx, write)

    async def announce(self, user: str, now_ms: int) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO revocations (kind, user_id, family, ts_ms)"
                " VALUES ('changed', ?, '', ?)",
                (user, now_ms),
            )

        await self._run(self._tx, write)

    async def state(self, since_ms: int) -> RevocationState:
        def read() -> RevocationState:
            assert self._db is not None
            valid = dict(self._db.execute("SELECT user_id, ts_ms FROM valid_after"))
            ended = dict(
                self._db.execute(
                    "SELECT family, ts_ms FROM revocations WHERE kind = 'end' AND ts_ms >= ?",
                    (since_ms,),
                )
            )
            return RevocationState(valid, ended)

        result: RevocationState = await self._run(read)
        return result

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._pool.shutdown(wait=True)
