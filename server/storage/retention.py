"""The retention settings store: policies and legal holds (server/services/retention.py).

Small JSON records by kind and key: ``policy`` by policy id, ``hold`` by
incident id. Archived incidents are not here: their tombstones live with
the event log (``EventLog.archive``), written in the step that removes them.

* **Durable before answered.** ``put`` and ``delete`` resolve once stored
  (SQLite committed; Redis applied, as durable as its ``appendfsync``).
* **Last write wins**: the service serialises the writes that read first.
* Every method raises StorageUnavailable when the store cannot be reached.

``SqliteRetentionStore``: a file of its own in the data dir (one process).
``RedisRetentionStore``: one hash per kind, shared by every node.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.errors import StorageUnavailable
from server.storage import redis_keys as keys
from server.storage.files import connect_private_sqlite

Record = dict[str, Any]

SCHEMA = """
CREATE TABLE IF NOT EXISTS retention (
    kind  TEXT NOT NULL,
    key   TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
"""


class RetentionStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def get(self, kind: str, key: str) -> Record | None:
        """The record, or None."""
        ...

    async def all(self, kind: str) -> dict[str, Record]:
        """Every record of ``kind`` by key (policies and holds are few)."""
        ...

    async def put(self, kind: str, key: str, value: Record) -> None:
        """Create or replace."""
        ...

    async def delete(self, kind: str, key: str) -> bool:
        """Whether there was one to delete."""
        ...


class SqliteRetentionStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="liaison-retention")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        def call() -> Any:
            assert self._db is not None
            return fn(self._db)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except sqlite3.Error as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._db = await loop.run_in_executor(self._pool, connect_private_sqlite, self.path, SCHEMA)

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await asyncio.get_running_loop().run_in_executor(self._pool, db.close)
        self._pool.shutdown(wait=True)

    async def get(self, kind: str, key: str) -> Record | None:
        row = await self._run(
            lambda db: db.execute(
                "SELECT value FROM retention WHERE kind = ? AND key = ?", (kind, key)
            ).fetchone()
        )
        return dict(orjson.loads(row[0])) if row else None

    async def all(self, kind: str) -> dict[str, Record]:
        rows = await self._run(
            lambda db: db.execute(
                "SELECT key, value FROM retention WHERE kind = ? ORDER BY key", (kind,)
            ).fetchall()
        )
        return {key: dict(orjson.loads(value)) for key, value in rows}

    async def put(self, kind: str, key: str, value: Record) -> None:
        def write(db: sqlite3.Connection) -> None:
            with db:
                db.execute(
                    "INSERT OR REPLACE INTO retention VALUES (?, ?, ?)",
                    (kind, key, orjson.dumps(value)),
                )

        await self._run(write)

    async def delete(self, kind: str, key: str) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            with db:
                cur = db.execute("DELETE FROM retention WHERE kind = ? AND key = ?", (kind, key))
            return cur.rowcount == 1

        done: bool = await self._run(write)
        return done


class RedisRetentionStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None  # the client is the node's, closed by whoever built it

    async def get(self, kind: str, key: str) -> Record | None:
        try:
            raw: Any = await self.redis.hget(keys.retention_key(kind), key)
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        return dict(orjson.loads(raw)) if raw is not None else None

    async def all(self, kind: str) -> dict[str, Record]:
        try:
            raw: Any = await self.redis.hgetall(keys.retention_key(kind))
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        return {k.decode(): dict(orjson.loads(v)) for k, v in sorted(raw.items())}

    async def put(self, kind: str, key: str, value: Record) -> None:
        try:
            await self.redis.hset(keys.retention_key(kind), key, orjson.dumps(value))
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def delete(self, kind: str, key: str) -> bool:
        try:
            removed: Any = await self.redis.hdel(keys.retention_key(kind), key)
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        return bool(removed)
