"""Outbound webhook subscriptions, their cursors, delivery logs and leases.

A subscription belongs to one organisation and names a URL, filters and its
signing secrets. Beside it the store keeps what delivery needs to survive a
restart (DESIGN.md, "Time, escalations and background work"): a cursor per
incident (the last seq handled), the retry state, a bounded log of attempts
and, with many nodes, a lease saying which node delivers::

    admin (REST / CLI) ──create/delete/replay──▶ WebhookStore ◀──cursor, state,
                                                 (webhooks.db /   attempts, lease──
                                                  Redis hashes)    WebhookDispatcher

Nothing about what is pending lives only in memory: the work is "events of
the log after the cursor", so a node that restarts (or takes a lease over)
resumes from the log.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

import orjson

from server.storage.files import connect_private_sqlite
from server.storage.small_db import immediate, run_on


@dataclass(frozen=True, slots=True)
class SigningSecret:
    """A ``whsec_`` secret; during a rotation the old one has an ``expires_ms``."""

    secret: str
    created_ms: int
    expires_ms: int | None = None

    def valid(self, now_ms: int) -> bool:
        return self.expires_ms is None or now_ms < self.expires_ms


@dataclass(frozen=True, slots=True)
class DeliveryState:
    """Where a subscription stands with its receiver (kept across restarts)."""

    enabled: bool = True
    #: Failed attempts in a row (0: the last one succeeded).
    failures: int = 0
    #: When the current run of failures began (ms); None while healthy.
    failing_since_ms: int | None = None
    #: No attempt before this time (ms): the back-off.
    next_attempt_ms: int = 0
    disabled_ms: int | None = None
    disabled_reason: str = ""


@dataclass(frozen=True, slots=True)
class Subscription:
    id: str
    org_id: str
    url: str
    #: Filters; None: everything of that kind.
    incidents: tuple[str, ...] | None
    categories: tuple[str, ...] | None
    types: tuple[str, ...] | None
    secrets: tuple[SigningSecret, ...]
    created_ms: int
    created_by: str
    description: str = ""
    state: DeliveryState = field(default_factory=DeliveryState)
    #: Incident modes delivered (SPEC 28): live only unless the admin opts in,
    #: so an exercise never reaches a live counterpart's system.
    modes: tuple[str, ...] = ("actual",)

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> Subscription:
        value = orjson.loads(raw)
        return cls(
            id=value["id"],
            org_id=value["org_id"],
            url=value["url"],
            incidents=_tuple(value["incidents"]),
            categories=_tuple(value["categories"]),
            types=_tuple(value["types"]),
            secrets=tuple(SigningSecret(**s) for s in value["secrets"]),
            created_ms=value["created_ms"],
            created_by=value["created_by"],
            description=value.get("description", ""),
            state=DeliveryState(**value.get("state", {})),
            modes=tuple(value.get("modes") or ("actual",)),
        )

    def to_wire(self) -> dict[str, Any]:
        """What the admin API shows: never a secret."""
        s = self.state
        return {
            "id": self.id,
            "org": self.org_id,
            "url": self.url,
            "description": self.description,
            "filters": {
                "incidents": "all" if self.incidents is None else list(self.incidents),
                "categories": "all" if self.categories is None else list(self.categories),
                "types": "all" if self.types is None else list(self.types),
                "modes": list(self.modes),
            },
            "created": self.created_ms,
            "created_by": self.created_by,
            "enabled": s.enabled,
            "failures": s.failures,
            "failing_since": s.failing_since_ms,
            "next_attempt": s.next_attempt_ms or None,
            "disabled": s.disabled_ms,
            "disabled_reason": s.disabled_reason or None,
            "secrets": [{"created": x.created_ms, "expires": x.expires_ms} for x in self.secrets],
        }


def _tuple(value: list[str] | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(value)


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One line of a subscription's delivery log: an attempt, or a notice."""

    ts_ms: int
    kind: str  # "attempt" or "notice"
    incident: str = ""
    seq: int = 0
    webhook_id: str = ""
    #: The receiver's HTTP status; None if no answer came (refused, timeout).
    status: int | None = None
    ok: bool = False
    error: str = ""
    duration_ms: int = 0
    #: When the next attempt is due after a failure (ms).
    next_retry_ms: int | None = None
    attempt: int = 0

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes | str) -> DeliveryRecord:
        return cls(**orjson.loads(raw))

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)


class WebhookConflict(Exception):
    """A subscription id is taken already (ids are random: only a bug does that)."""


class WebhookStore(Protocol):
    """Where subscriptions and their delivery progress are kept, for every node.

    * Every write is durable before it returns; ``get`` and ``all`` read what
      is stored now (nothing is cached here; there are few subscriptions).
    * ``create`` of a taken id raises WebhookConflict and changes nothing.
    * ``delete`` removes the subscription with its cursors, log and lease;
      False for an unknown id. Writes for a deleted id are ignored (False).
    * ``advance`` is a compare-and-set of one incident's cursor: it moves it
      from ``expected`` (None: no cursor yet) to ``seq`` and answers True, or
      changes nothing and answers False when the cursor is not ``expected``
      (a replay moved it meanwhile). ``rewind`` sets it unconditionally.
    * ``record`` appends to the delivery log and keeps the newest ``keep``;
      ``deliveries`` reads it newest first.
    * ``claim`` takes or renews the delivery lease of a subscription for
      ``node`` until ``now_ms + ttl_ms``: True if ``node`` holds it now (it
      was free, lapsed, or already ``node``'s), False if another node's lease
      is still running. ``release`` gives up ``node``'s lease only.
    * Unreachable storage raises ``server.errors.StorageUnavailable``.
    """

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def create(self, sub: Subscription) -> None: ...

    async def get(self, sub_id: str) -> Subscription | None: ...

    async def all(self) -> list[Subscription]: ...

    async def delete(self, sub_id: str) -> bool: ...

    async def set_secrets(self, sub_id: str, secrets: tuple[SigningSecret, ...]) -> bool: ...

    async def save_state(self, sub_id: str, state: DeliveryState) -> bool: ...

    async def cursors(self, sub_id: str) -> dict[str, int]: ...

    async def advance(self, sub_id: str, incident: str, expected: int | None, seq: int) -> bool: ...

    async def rewind(self, sub_id: str, incident: str, seq: int) -> bool: ...

    async def record(self, sub_id: str, entry: DeliveryRecord, keep: int) -> None: ...

    async def deliveries(self, sub_id: str, limit: int) -> list[DeliveryRecord]: ...

    async def claim(self, sub_id: str, node: str, now_ms: int, ttl_ms: int) -> bool: ...

    async def release(self, sub_id: str, node: str) -> None: ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS webhooks (id TEXT PRIMARY KEY, record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS webhook_cursors (
    id TEXT NOT NULL, incident TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (id, incident)
);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS webhook_deliveries_by_id ON webhook_deliveries (id, n);
CREATE TABLE IF NOT EXISTS webhook_leases (
    id TEXT PRIMARY KEY, node TEXT NOT NULL, until_ms INTEGER NOT NULL
);
"""


class SqliteWebhookStore:
    """Subscriptions in ``webhooks.db`` in the data dir (a private file: it holds secrets).

    The server and the CLI may both have it open; every write is one
    ``BEGIN IMMEDIATE`` transaction, so they serialise.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="liaison-webhooks")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await run_on(self._pool, fn, *args)

    async def _tx(self, body: Callable[[sqlite3.Connection], Any]) -> Any:
        def run() -> Any:
            assert self._db is not None, "the webhook store is not open"
            return immediate(self._db, body)

        return await self._run(run)

    async def open(self) -> None:
        if self._db is None:
            self._db = await self._run(connect_private_sqlite, self.path, SCHEMA)

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._pool.shutdown(wait=True)

    @staticmethod
    def _read(db: sqlite3.Connection, sub_id: str) -> Subscription | None:
        row = db.execute("SELECT record FROM webhooks WHERE id = ?", (sub_id,)).fetchone()
        return None if row is None else Subscription.from_json(row[0])

    async def create(self, sub: Subscription) -> None:
        def write(db: sqlite3.Connection) -> None:
            try:
                db.execute(
                    "INSERT INTO webhooks (id, record) VALUES (?, ?)", (sub.id, sub.to_json())
                )
            except sqlite3.IntegrityError as exc:
                raise WebhookConflict(f"webhook {sub.id} exists") from exc

        await self._tx(write)

    async def get(self, sub_id: str) -> Subscription | None:
        result: Subscription | None = await self._tx(lambda db: self._read(db, sub_id))
        return result

    async def all(self) -> list[Subscription]:
        def read(db: sqlite3.Connection) -> list[Subscription]:
            rows = db.execute("SELECT record FROM webhooks").fetchall()
            return sorted((Subscription.from_json(r[0]) for r in rows), key=lambda s: s.created_ms)

        result: list[Subscription] = await self._tx(read)
        return result

    async def delete(self, sub_id: str) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            gone = db.execute("DELETE FROM webhooks WHERE id = ?", (sub_id,)).rowcount > 0
            for table in ("webhook_cursors", "webhook_deliveries", "webhook_leases"):
                db.execute(f"DELETE FROM {table} WHERE id = ?", (sub_id,))  # noqa: S608 - constants
            return gone

        result: bool = await self._tx(write)
        return result

    async def _change(self, sub_id: str, change: Callable[[Subscription], Subscription]) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            sub = self._read(db, sub_id)
            if sub is None:
                return False
            db.execute(
                "UPDATE webhooks SET record = ? WHERE id = ?", (change(sub).to_json(), sub_id)
            )
            return True

        result: bool = await self._tx(write)
        return result

    async def set_secrets(self, sub_id: str, secrets: tuple[SigningSecret, ...]) -> bool:
        return await self._change(sub_id, lambda s: replace(s, secrets=secrets))

    async def save_state(self, sub_id: str, state: DeliveryState) -> bool:
        return await self._change(sub_id, lambda s: replace(s, state=state))

    async def cursors(self, sub_id: str) -> dict[str, int]:
        def read(db: sqlite3.Connection) -> dict[str, int]:
            rows = db.execute("SELECT incident, seq FROM webhook_cursors WHERE id = ?", (sub_id,))
            return {incident: int(seq) for incident, seq in rows}

        result: dict[str, int] = await self._tx(read)
        return result

    async def advance(self, sub_id: str, incident: str, expected: int | None, seq: int) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            if self._read(db, sub_id) is None:
                return False
            row = db.execute(
                "SELECT seq FROM webhook_cursors WHERE id = ? AND incident = ?", (sub_id, incident)
            ).fetchone()
            if (None if row is None else int(row[0])) != expected:
                return False
            self._set(db, sub_id, incident, seq)
            return True

        result: bool = await self._tx(write)
        return result

    @staticmethod
    def _set(db: sqlite3.Connection, sub_id: str, incident: str, seq: int) -> None:
        db.execute(
            "INSERT INTO webhook_cursors (id, incident, seq) VALUES (?, ?, ?)"
            " ON CONFLICT (id, incident) DO UPDATE SET seq = excluded.seq",
            (sub_id, incident, seq),
        )

    async def rewind(self, sub_id: str, incident: str, seq: int) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            if self._read(db, sub_id) is None:
                return False
            self._set(db, sub_id, incident, seq)
            return True

        result: bool = await self._tx(write)
        return result

    async def record(self, sub_id: str, entry: DeliveryRecord, keep: int) -> None:
        def write(db: sqlite3.Connection) -> None:
            if self._read(db, sub_id) is None:
                return
            db.execute(
                "INSERT INTO webhook_deliveries (id, record) VALUES (?, ?)",
                (sub_id, entry.to_json()),
            )
            db.execute(
                "DELETE FROM webhook_deliveries WHERE id = ? AND n <= ("
                " SELECT n FROM webhook_deliveries WHERE id = ? ORDER BY n DESC LIMIT 1 OFFSET ?)",
                (sub_id, sub_id, keep),
            )

        await self._tx(write)

    async def deliveries(self, sub_id: str, limit: int) -> list[DeliveryRecord]:
        def read(db: sqlite3.Connection) -> list[DeliveryRecord]:
            rows = db.execute(
                "SELECT record FROM webhook_deliveries WHERE id = ? ORDER BY n DESC LIMIT ?",
                (sub_id, max(1, limit)),
            )
            return [DeliveryRecord.from_json(r[0]) for r in rows]

        result: list[DeliveryRecord] = await self._tx(read)
        return result

    async def claim(self, sub_id: str, node: str, now_ms: int, ttl_ms: int) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            row = db.execute(
                "SELECT node, until_ms FROM webhook_leases WHERE id = ?", (sub_id,)
            ).fetchone()
            if row is not None and row[0] != node and int(row[1]) > now_ms:
                return False
            db.execute(
                "INSERT INTO webhook_leases (id, node, until_ms) VALUES (?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE"
                " SET node = excluded.node, until_ms = excluded.until_ms",
                (sub_id, node, now_ms + ttl_ms),
            )
            return True

        result: bool = await self._tx(write)
        return result

    async def release(self, sub_id: str, node: str) -> None:
        await self._tx(
            lambda db: db.execute(
                "DELETE FROM webhook_leases WHERE id = ? AND node = ?", (sub_id, node)
            )
        )
