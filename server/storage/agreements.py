"""Sharing agreements as records (SPEC section 9.4): the store and its SQLite form.

Agreements are few (tens, perhaps hundreds) and read on every fan-out, so
``SharingRules`` (server/services/sharing_rules.py) keeps all of them in
memory; this store is where they are durable and how every node learns of a
change::

    REST / CLI ──create/revoke──▶ AgreementStore ──change feed──▶ every node's SharingRules
                                  (agreements.db /  ├ Redis: pub/sub wake-up + token poll
                                   Redis hash)      └ SQLite: PRAGMA data_version poll

An agreement is never deleted or edited: a revoke sets ``revoked_ms`` and
``revoked_by`` once, and the record stays, so "who could read what, when"
can be answered afterwards (the audit log says who did it).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import orjson

from server.domain.sharing import Agreement
from server.storage.files import connect_private_sqlite
from server.storage.small_db import immediate, run_on

#: Called by a store's feed when another process or node may have written:
#: a wake-up only (the listener compares ``version`` and re-reads).
Wake = Callable[[], None]


class AgreementConflict(Exception):
    """An agreement with this id exists already."""


class AgreementStore(Protocol):
    """Where agreements are kept (SQLite in the data dir, or Redis), shared by
    every process and node of the deployment.

    * ``create`` is durable before it returns; an id is taken once across the
      deployment (two nodes creating one id: one wins, the other gets
      AgreementConflict and nothing it sent is stored).
    * ``revoke`` is a compare-and-set: the first revoke of an agreement sets
      ``revoked_ms`` and ``revoked_by`` and returns the updated record; a later
      one changes nothing and returns the record as it is. None: no such id.
      Nothing else of a record ever changes, and no record is ever removed.
    * ``list`` returns every agreement, revoked and expired ones too; order
      is unspecified.
    * ``version`` is cheap (no rows read) and moves after every write that
      another process or node committed; equal tokens mean nothing changed.
      (It may also move without a change: readers just re-read.)
    * ``listen(wake)``: ``wake`` is called soon after another node's write
      (Redis pub/sub); ``poll_s`` says how often a reader should compare
      ``version`` anyway, which is the whole feed for SQLite and the safety
      net for a lost pub/sub message in Redis.
    * Unreachable storage raises ``server.errors.StorageUnavailable`` (Redis).
    """

    poll_s: float

    async def open(self) -> None: ...

    async def create(self, agreement: Agreement) -> None: ...

    async def revoke(self, agreement_id: str, revoked_ms: int, revoked_by: str) -> Agreement | None:
        """Set ``revoked_ms``/``revoked_by`` once; the record as stored after."""
        ...

    async def list(self) -> list[Agreement]: ...

    async def version(self) -> object: ...

    def listen(self, wake: Wake) -> None: ...

    async def close(self) -> None: ...


def encode(agreement: Agreement) -> bytes:
    return orjson.dumps(agreement.to_wire())


def decode(raw: bytes | str) -> Agreement:
    return Agreement.from_wire(orjson.loads(raw))


def revoked(agreement: Agreement, revoked_ms: int, revoked_by: str) -> Agreement:
    return replace(agreement, revoked_ms=revoked_ms, revoked_by=revoked_by)


#: How often the embedded feed is polled (one ``PRAGMA data_version``): a
#: change made by the CLI is in force in the running server within this.
POLL_S = 0.2

SCHEMA = """
CREATE TABLE IF NOT EXISTS agreements (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, record BLOB NOT NULL,
    revoked_ms INTEGER, created_ms INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS agreements_no_delete BEFORE DELETE ON agreements
BEGIN SELECT RAISE(ABORT, 'agreements are records: revoke, never delete'); END;
CREATE TRIGGER IF NOT EXISTS agreements_revoke_once BEFORE UPDATE ON agreements
WHEN OLD.revoked_ms IS NOT NULL OR NEW.id IS NOT OLD.id OR NEW.owner IS NOT OLD.owner
BEGIN SELECT RAISE(ABORT, 'an agreement is revoked once and never edited'); END;
"""


class SqliteAgreementStore:
    """Agreements in ``agreements.db`` of the data dir (0600), on a worker thread.

    The server and the CLI open the same file; a write is one ``BEGIN
    IMMEDIATE`` transaction, and ``PRAGMA data_version`` tells each process
    that another one committed.
    """

    def __init__(self, path: Path, poll_s: float = POLL_S) -> None:
        self.path, self.poll_s = path, poll_s
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="liaison-agreements")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await run_on(self._pool, fn, *args)

    def _tx(self, body: Callable[[sqlite3.Connection], Any]) -> Any:
        assert self._db is not None
        return immediate(self._db, body)

    async def open(self) -> None:
        self._db = await self._run(connect_private_sqlite, self.path, SCHEMA)

    async def create(self, agreement: Agreement) -> None:
        def write(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO agreements VALUES (?, ?, ?, ?, ?)",
                    (
                        agreement.id,
                        agreement.owner,
                        encode(agreement),
                        agreement.revoked_ms,
                        agreement.valid_from_ms,
                    ),
                )
            except sqlite3.IntegrityError as exc:
                raise AgreementConflict(f"agreement {agreement.id!r} exists") from exc

        await self._run(self._tx, write)

    async def revoke(self, agreement_id: str, revoked_ms: int, revoked_by: str) -> Agreement | None:
        def write(db: sqlite3.Connection) -> Agreement | None:
            row = db.execute(
                "SELECT record FROM agreements WHERE id = ?", (agreement_id,)
            ).fetchone()
            if row is None:
                return None
            stored = decode(row[0])
            if stored.revoked_ms is not None:
                return stored
            updated = revoked(stored, revoked_ms, revoked_by)
            db.execute(
                "UPDATE agreements SET record = ?, revoked_ms = ? WHERE id = ?",
                (encode(updated), revoked_ms, agreement_id),
            )
            return updated

        result: Agreement | None = await self._run(self._tx, write)
        return result

    async def list(self) -> list[Agreement]:
        def read() -> list[Agreement]:
            assert self._db is not None
            return [decode(row[0]) for row in self._db.execute("SELECT record FROM agreements")]

        result: list[Agreement] = await self._run(read)
        return result

    async def version(self) -> object:
        """``PRAGMA data_version``: moves when another connection (the CLI) commits."""

        def read() -> int:
            assert self._db is not None
            return int(self._db.execute("PRAGMA data_version").fetchone()[0])

        return await self._run(read)

    def listen(self, wake: Wake) -> None:
        """Nothing pushes here: readers poll ``version`` every ``poll_s``."""
        del wake

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._pool.shutdown(wait=True)
