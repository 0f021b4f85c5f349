"""Checking stored data whole: every incident's chain, and the audit chain.

What ``liaison restore`` (and the upgrade test) runs on restored or migrated
data, straight from the storage, for both backends. An incident's events must
run from seq 1 without a gap, each digest must be its content's (under the
rule it was stored with, server/domain/chain.py) and each hash must chain
onto the one before; the head the backend keeps must be the last event.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from server.domain import chain
from server.domain.events import STORED_FIELDS, StoredEvent
from server.storage import redis_keys as keys
from server.storage.audit import verify_records
from server.storage.codec import unpack_event


class ChainBroken(Exception):
    """Stored data that does not verify: where, and the first bad seq."""


@dataclass(slots=True)
class Checked:
    """What was verified: incident id -> (head seq, head hash), audit records."""

    incidents: dict[str, tuple[int, str]] = field(default_factory=dict)
    events: int = 0
    audit_records: int = 0


def check_chain(incident: str, events: Iterable[StoredEvent]) -> tuple[int, str]:
    """(seq, hash) of the last event; ChainBroken at the first event that does not verify."""
    prev, expected = chain.GENESIS, 1
    for ev in events:
        if ev.seq != expected or chain.event_digest(ev) != ev.digest:
            raise ChainBroken(f"incident {incident}: event {ev.seq} does not verify")
        if chain.chain(prev, ev.digest) != ev.hash:
            raise ChainBroken(f"incident {incident}: event {ev.seq} does not chain")
        prev, expected = ev.hash, expected + 1
    return expected - 1, prev


def _check_head(incident: str, found: tuple[int, str], head: tuple[int, str]) -> None:
    if found != head:
        raise ChainBroken(
            f"incident {incident}: the head says seq {head[0]}, the events end at {found[0]}"
        )


def _check_audit(records: list[dict[str, Any]]) -> int:
    bad = verify_records(records)
    if bad is not None:
        raise ChainBroken(f"audit log: record {bad} does not chain")
    return len(records)


Progress = Callable[[str], None]


def check_sqlite(data_dir: Path, progress: Progress | None = None) -> Checked:
    """Every incident of ``data_dir/events.db`` and the audit log (read-only)."""
    checked = Checked()
    columns = ", ".join(STORED_FIELDS)
    with _read_only(data_dir / "events.db") as db:
        heads = db.execute("SELECT incident, head_seq, head_hash FROM logs ORDER BY incident")
        for incident, head_seq, head_hash in heads.fetchall():
            rows = db.execute(
                f"SELECT {columns} FROM events WHERE incident = ? ORDER BY seq",  # noqa: S608
                (incident,),
            )
            found = check_chain(incident, (_sqlite_event(row) for row in rows))
            _check_head(incident, found, (head_seq, head_hash))
            checked.incidents[incident] = found
            checked.events += found[0]
            _tick(progress, checked)
    audit = data_dir / "audit.db"
    if audit.exists():
        with _read_only(audit) as db:
            records = db.execute("SELECT record FROM audit ORDER BY seq").fetchall()
            checked.audit_records = _check_audit([orjson.loads(r[0]) for r in records])
    return checked


def _sqlite_event(row: tuple[Any, ...]) -> StoredEvent:
    from server.storage.sqlite import _row_to_event

    return _row_to_event(row)


def _read_only(path: Path) -> contextlib.closing[sqlite3.Connection]:
    return contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True))


async def check_redis(client: Any, progress: Progress | None = None) -> Checked:
    """Every incident of the Redis (from ``liaison:incidents``) and the audit log."""
    checked = Checked()
    incidents = [i.decode() for i in await client.zrange(keys.INCIDENTS, 0, -1)]
    for incident in sorted(incidents):
        entries = await client.xrange(keys.log_key(incident))
        found = check_chain(incident, (unpack_event(fields[b"e"]) for _, fields in entries))
        head = await client.hgetall(keys.head_key(incident))
        if not head and found[0] == 0:
            # In the index, never stored: the index entry is written before the
            # creating append (server/storage/redis_log.py), which may not have run yet.
            continue
        _check_head(incident, found, (int(head.get(b"seq", 0)), head.get(b"hash", b"").decode()))
        checked.incidents[incident] = found
        checked.events += found[0]
        _tick(progress, checked)
    raw = await client.lrange(keys.AUDIT_LOG, 0, -1)
    checked.audit_records = _check_audit([orjson.loads(r) for r in raw])
    return checked


def _tick(progress: Progress | None, checked: Checked) -> None:
    if progress is not None and len(checked.incidents) % 100 == 0:
        progress(f"verified {len(checked.incidents)} incidents, {checked.events} events")
