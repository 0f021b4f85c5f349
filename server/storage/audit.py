"""The audit log: append-only, hash-chained, one per deployment.

Who did what, to what, when, from where, and how it ended (CJIS 5.4 asks
for these): every login (success and failure), refresh-token reuse, logout,
account and organisation change, and every read of the audit log itself.

Chained like an incident log (server/domain/chain.py): ``digest`` is the
sha256 of the record's canonical JSON (every field but ``hash``), and
``hash = sha256(prev_hash || digest)`` from ``GENESIS``; ``verify_records``
checks an export offline. Nothing here updates or deletes a record.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import orjson

from server.domain.chain import GENESIS, chain, digest_of
from server.storage.files import connect_private_sqlite
from server.storage.small_db import immediate, run_on


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What the caller says happened; the log adds seq, time and the chain."""

    actor: str  # a user id, or "cli:<os user>" for the command line
    action: str  # "auth.login", "user.disable", "audit.read", ...
    target: str = ""  # the user, organisation or session acted on
    outcome: str = "ok"  # "ok", or the error code it ended with
    address: str = ""  # the client's address ("" for the CLI)
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    ts_ms: int
    actor: str
    action: str
    target: str
    outcome: str
    address: str
    detail: dict[str, Any]
    hash: str

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)


def seal(entry: AuditEntry, seq: int, ts_ms: int, prev_hash: str) -> AuditRecord:
    """The record of ``entry`` appended after ``prev_hash`` as ``seq``."""
    values = {**asdict(entry), "seq": seq, "ts_ms": ts_ms}
    digest = digest_of(orjson.dumps(values, option=orjson.OPT_SORT_KEYS))
    return AuditRecord(**values, hash=chain(prev_hash, digest))


def verify_records(records: Iterable[dict[str, Any]]) -> int | None:
    """Check wire records from seq 1; the first seq that does not chain, or None."""
    prev, expected = GENESIS, 1
    for record in records:
        values = {k: v for k, v in record.items() if k != "hash"}
        digest = digest_of(orjson.dumps(values, option=orjson.OPT_SORT_KEYS))
        if record.get("seq") != expected or chain(prev, digest) != record.get("hash"):
            return int(record.get("seq") or expected)
        prev, expected = record["hash"], expected + 1
    return None


class AuditLog(Protocol):
    """Where audit records are kept (SQLite for one node, Redis for many).

    * ``append`` is durable before it returns; seqs are gapless from 1 and
      strictly increasing across every process and node, also when several
      append at once, and each record chains to the one before it.
    * ``read(after_seq, limit)`` returns records with seq > after_seq in seq
      order, at most ``limit``.
    * Nothing updates or removes a record.
    * Unreachable storage raises ``server.errors.StorageUnavailable``.
    """

    async def open(self) -> None: ...

    async def append(self, entry: AuditEntry, ts_ms: int) -> AuditRecord: ...

    async def read(self, after_seq: int, limit: int) -> list[AuditRecord]: ...

    async def close(self) -> None: ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, record BLOB NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""


def _record(raw: bytes) -> AuditRecord:
    return AuditRecord(**orjson.loads(raw))


class SqliteAuditLog:
    """The audit log in a SQLite file; ``BEGIN IMMEDIATE`` orders processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="liaison-audit")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await run_on(self._pool, fn, *args)

    async def open(self) -> None:
        self._db = await self._run(connect_private_sqlite, self.path, SCHEMA)

    async def append(self, entry: AuditEntry, ts_ms: int) -> AuditRecord:
        def write(db: sqlite3.Connection) -> AuditRecord:
            last = db.execute("SELECT record FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            prev = _record(last[0]) if last else None
            record = seal(entry, prev.seq + 1 if prev else 1, ts_ms, prev.hash if prev else GENESIS)
            raw = orjson.dumps(asdict(record))
            db.execute("INSERT INTO audit VALUES (?, ?)", (record.seq, raw))
            return record

        assert self._db is not None
        result: AuditRecord = await self._run(immediate, self._db, write)
        return result

    async def read(self, after_seq: int, limit: int) -> list[AuditRecord]:
        def read() -> list[AuditRecord]:
            assert self._db is not None
            rows = self._db.execute(
                "SELECT record FROM audit WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
            )
            return [_record(row[0]) for row in rows]

        result: list[AuditRecord] = await self._run(read)
        return result

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._pool.shutdown(wait=True)
