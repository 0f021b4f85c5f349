"""Web Push subscriptions of browsers, and where each user's pushes stand.

A browser that opts in hands the server a subscription (RFC 8030 endpoint,
RFC 8291 keys ``p256dh`` and ``auth``); it belongs to one user and to the
session (refresh family) that made it, and ends with that session. Beside the
subscriptions the store keeps one feed cursor per user: the dispatcher's
progress (server/services/push.py), so a restart does not push again what
was pushed before::

    browser ──POST/DELETE /api/v1/push/subscriptions──▶ PushStore ◀──cursor──
                                                     (push.db /         PushDispatcher
                                                      Redis hashes)

* ``SqlitePushStore``: ``push.db`` in the data dir (embedded: one node).
* ``RedisPushStore`` (redis_push.py): shared by every node.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from server.storage.files import connect_private_sqlite
from server.storage.small_db import run_on


@dataclass(frozen=True, slots=True)
class PushSubscription:
    """One browser's push subscription, as the Push API's ``toJSON()`` gives it."""

    #: The push service's URL for this browser (its identity: one row each).
    endpoint: str
    #: The browser's P-256 public key, base64url (RFC 8291 ``ua_public``).
    p256dh: str
    #: The 16-byte authentication secret, base64url.
    auth: str
    user_id: str
    #: The session (refresh family) that subscribed: its end ends this.
    session: str
    created_ms: int
    #: After this the subscription is dropped (the session's longest life).
    expires_ms: int

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> PushSubscription:
        return cls(**orjson.loads(raw))

    def info(self) -> dict[str, Any]:
        """The ``subscription_info`` pywebpush takes."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}


class PushStore(Protocol):
    """Push subscriptions and per-user cursors, for every node of a deployment.

    * Every write is durable before it returns; reads see what is stored now.
    * ``add`` stores by endpoint, replacing a subscription of that endpoint
      (the browser re-subscribed, perhaps as another user: the old owner
      gets nothing more through it).
    * ``remove`` deletes the endpoint's subscription; with ``user``, only if
      that user owns it. True if something was deleted.
    * ``of_user`` lists a user's subscriptions; ``users`` the users with one.
    * ``cursor``/``set_cursor``: the user's feed cursor (SPEC section 24), an
      opaque string; None before the first ``set_cursor``. Removing a user's
      last subscription keeps the cursor (a resubscribe sets it again).
    * Unreachable storage raises ``server.errors.StorageUnavailable``.
    """

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def add(self, sub: PushSubscription) -> None: ...

    async def remove(self, endpoint: str, user: str | None = None) -> bool: ...

    async def of_user(self, user: str) -> list[PushSubscription]: ...

    async def users(self) -> list[str]: ...

    async def cursor(self, user: str) -> str | None: ...

    async def set_cursor(self, user: str, cursor: str) -> None: ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS push_subscriptions (
    endpoint TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS push_by_user ON push_subscriptions (user_id);
CREATE TABLE IF NOT EXISTS push_cursors (
    user_id TEXT PRIMARY KEY,
    cursor TEXT NOT NULL
);
"""


class SqlitePushStore:
    """``push.db`` in the data dir: a private file (it holds the browsers' keys)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="liaison-push")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        def run() -> Any:
            assert self._db is not None, "the push store is not open"
            return fn(self._db)

        return await run_on(self._pool, run)

    async def open(self) -> None:
        if self._db is None:
            loop = asyncio.get_running_loop()
            self._db = await loop.run_in_executor(
                self._pool, connect_private_sqlite, self.path, SCHEMA
            )

    async def close(self) -> None:
        if self._db is not None:
            await self._run(lambda db: db.close())
            self._db = None
        self._pool.shutdown(wait=True)

    async def add(self, sub: PushSubscription) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO push_subscriptions (endpoint, user_id, record)"
                " VALUES (?, ?, ?)",
                (sub.endpoint, sub.user_id, sub.to_json()),
            )
        )

    async def remove(self, endpoint: str, user: str | None = None) -> bool:
        def run(db: sqlite3.Connection) -> bool:
            if user is None:
                cur = db.execute("DELETE FROM push_subscriptions WHERE endpoint = ?", (endpoint,))
            else:
                cur = db.execute(
                    "DELETE FROM push_subscriptions WHERE endpoint = ? AND user_id = ?",
                    (endpoint, user),
                )
            return cur.rowcount > 0

        found: bool = await self._run(run)
        return found

    async def of_user(self, user: str) -> list[PushSubscription]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT record FROM push_subscriptions WHERE user_id = ? ORDER BY endpoint",
                (user,),
            ).fetchall()
        )
        return [PushSubscription.from_json(row[0]) for row in rows]

    async def users(self) -> list[str]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT DISTINCT user_id FROM push_subscriptions ORDER BY user_id"
            ).fetchall()
        )
        return [row[0] for row in rows]

    async def cursor(self, user: str) -> str | None:
        row = await self._run(
            lambda db: db.execute(
                "SELECT cursor FROM push_cursors WHERE user_id = ?", (user,)
            ).fetchone()
        )
        return None if row is None else str(row[0])

    async def set_cursor(self, user: str, cursor: str) -> None:
        await self._run(
            lambda db: db.execute(
                "INSERT OR REPLACE INTO push_cursors (user_id, cursor) VALUES (?, ?)",
                (user, cursor),
            )
        )
