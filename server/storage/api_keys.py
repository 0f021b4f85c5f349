"""API keys of bots: their records, shared by every node (SQLite or Redis).

A key is ``lk_<id>_<secret>``; only sha256(secret) is stored (see
server/services/api_keys.py for why sha256 and not argon2). The scope and
owner of a key never change: rotating a key is creating a new one and
revoking the old. Every node keeps all keys in memory (there are few) and
learns of a new or revoked key from the session store's revocation feed
(server/storage/sessions.py), on which the store announces it::

    admin / CLI ──create/revoke──▶ ApiKeyStore ──feed ("key", user, id)──▶ every node
                                   (sessions.db /        re-reads that key, closes
                                    Redis hash + pub/sub) the sockets it no longer allows
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from server.storage.files import connect_private_sqlite
from server.storage.sessions import SCHEMA as SESSIONS_SCHEMA
from server.storage.small_db import immediate, run_on


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One key as stored: everything but its secret, of which only a hash is kept."""

    id: str
    user_id: str  # the bot it authenticates
    org_id: str  # the bot's organisation: the key's
    name: str  # what the admin called it ("CAD production")
    secret_hash: str  # sha256 hex of the secret part
    #: Incident ids it may see and act on; None: all its organisation takes part in.
    incidents: tuple[str, ...] | None
    #: Write command types it may send; None: all.
    commands: tuple[str, ...] | None
    coordinator: bool
    created_ms: int
    created_by: str
    revoked_ms: int | None = None
    last_used_ms: int | None = None

    def to_wire(self) -> dict[str, Any]:
        """What the admin API shows: never the hash."""
        return {
            "id": self.id,
            "user": self.user_id,
            "org": self.org_id,
            "name": self.name,
            "scope": {
                "incidents": "all" if self.incidents is None else list(self.incidents),
                "commands": "all" if self.commands is None else list(self.commands),
                "coordinator": self.coordinator,
            },
            "created": self.created_ms,
            "created_by": self.created_by,
            "revoked": self.revoked_ms,
            "last_used": self.last_used_ms,
        }

    def to_row(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.user_id,
            self.org_id,
            self.name,
            self.secret_hash,
            None if self.incidents is None else orjson.dumps(self.incidents).decode(),
            None if self.commands is None else orjson.dumps(self.commands).decode(),
            int(self.coordinator),
            self.created_ms,
            self.created_by,
            self.revoked_ms,
            self.last_used_ms,
        )

    @classmethod
    def from_row(cls, row: Any) -> ApiKey:
        return cls(
            id=row[0],
            user_id=row[1],
            org_id=row[2],
            name=row[3],
            secret_hash=row[4],
            incidents=None if row[5] is None else tuple(orjson.loads(row[5])),
            commands=None if row[6] is None else tuple(orjson.loads(row[6])),
            coordinator=bool(row[7]),
            created_ms=int(row[8]),
            created_by=row[9],
            revoked_ms=None if row[10] is None else int(row[10]),
            last_used_ms=None if row[11] is None else int(row[11]),
        )


class ApiKeyConflict(Exception):
    """A key id is taken already (ids are random: only a bug or a replay does that)."""


class ApiKeyStore(Protocol):
    """Where API keys are kept, for every process and node of a deployment.

    * ``create`` and ``revoke`` are durable before they return, and announced
      on the revocation feed (``Revocation("key", user, key id)``) in the same
      transaction or script, so a node subscribed to the feed cannot miss
      one; a node that was not gets ``resync`` and re-reads everything.
    * ``create`` of a taken id raises ApiKeyConflict and changes nothing.
    * ``revoke`` keeps the first revocation time (revoking twice is harmless)
      and returns the key as now stored; None for an unknown id.
    * ``touch`` records a use: ``last_used_ms`` only moves forward (two nodes
      touching at once keep the later time). It is not announced; callers
      bound how often they write it.
    * ``get`` and ``all`` read what is stored now (``all``: every key, revoked
      ones too; there are few). Nothing is cached here.
    * Unreachable storage raises ``server.errors.StorageUnavailable``.
    """

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def create(self, key: ApiKey, now_ms: int) -> None: ...

    async def revoke(self, key_id: str, now_ms: int) -> ApiKey | None: ...

    async def touch(self, key_id: str, now_ms: int) -> None: ...

    async def get(self, key_id: str) -> ApiKey | None: ...

    async def all(self) -> list[ApiKey]: ...


SCHEMA = (
    SESSIONS_SCHEMA
    + """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, user_id TEXT NOT NULL, org_id TEXT NOT NULL, name TEXT NOT NULL,
    secret_hash TEXT NOT NULL, incidents TEXT, commands TEXT, coordinator INTEGER NOT NULL,
    created_ms INTEGER NOT NULL, created_by TEXT NOT NULL, revoked_ms INTEGER,
    last_used_ms INTEGER
);
"""
)
_COLUMNS = (
    "id, user_id, org_id, name, secret_hash, incidents, commands, coordinator,"
    " created_ms, created_by, revoked_ms, last_used_ms"
)
# Built from constants only: no value of a caller's ever becomes SQL text.
_SELECT = "SELECT " + _COLUMNS + " FROM api_keys"  # noqa: S608
_INSERT = (
    "INSERT INTO api_keys (" + _COLUMNS + ") VALUES (" + ", ".join("?" * 12) + ")"  # noqa: S608
)


class SqliteApiKeyStore:
    """Keys in the embedded session database (``sessions.db``).

    The same file as SqliteSessionStore, so a create or revoke and its feed
    row (the ``revocations`` table every process polls) commit together.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="liaison-api-keys")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await run_on(self._pool, fn, *args)

    def _tx(self, body: Callable[[sqlite3.Connection], Any]) -> Any:
        assert self._db is not None
        return immediate(self._db, body)

    @staticmethod
    def _announce(db: sqlite3.Connection, key: ApiKey, now_ms: int) -> None:
        db.execute(
            "INSERT INTO revocations (kind, user_id, family, ts_ms) VALUES ('key', ?, ?, ?)",
            (key.user_id, key.id, now_ms),
        )

    async def open(self) -> None:
        self._db = await self._run(connect_private_sqlite, self.path, SCHEMA)

    async def create(self, key: ApiKey, now_ms: int) -> None:
        def write(db: sqlite3.Connection) -> None:
            try:
                db.execute(_INSERT, key.to_row())
            except sqlite3.IntegrityError as exc:
                raise ApiKeyConflict(f"API key {key.id} exists") from exc
            self._announce(db, key, now_ms)

        await self._run(self._tx, write)

    async def revoke(self, key_id: str, now_ms: int) -> ApiKey | None:
        def write(db: sqlite3.Connection) -> ApiKey | None:
            db.execute(
                "UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND revoked_ms IS NULL",
                (now_ms, key_id),
            )
            key = self._read(db, key_id)
            if key is not None:
                self._announce(db, key, now_ms)
            return key

        result: ApiKey | None = await self._run(self._tx, write)
        return result

    async def touch(self, key_id: str, now_ms: int) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE api_keys SET last_used_ms = max(coalesce(last_used_ms, 0), ?) WHERE id = ?",
                (now_ms, key_id),
            )

        await self._run(self._tx, write)

    @staticmethod
    def _read(db: sqlite3.Connection, key_id: str) -> ApiKey | None:
        row = db.execute(_SELECT + " WHERE id = ?", (key_id,)).fetchone()
        return None if row is None else ApiKey.from_row(row)

    async def get(self, key_id: str) -> ApiKey | None:
        assert self._db is not None
        result: ApiKey | None = await self._run(self._read, self._db, key_id)
        return result

    async def all(self) -> list[ApiKey]:
        def read() -> list[ApiKey]:
            assert self._db is not None
            rows = self._db.execute(_SELECT + " ORDER BY created_ms")
            return [ApiKey.from_row(row) for row in rows]

        result: list[ApiKey] = await self._run(read)
        return result

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._pool.shutdown(wait=True)
