"""Data written before chain salts keeps working and verifying (SPEC section 14.1, rule 1).

No migration rewrites anything: an event stored without a salt keeps the
digest over its content alone; new events are salted; one chain spans both.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import msgpack
import orjson

from server.domain import chain, summary
from server.domain.audience import PLACEHOLDER
from server.domain.events import EventDraft, StoredEvent
from server.fanout.memory import MemoryBroker
from server.services.envelope import envelope, shaped
from server.storage import sqlite as sqlite_log
from server.storage.base import IncidentQuery
from server.storage.codec import unpack_event
from server.storage.sqlite import SqliteConfig, SqliteEventLog

#: The tables as the code before salts created them: no ``salt`` column, and
#: one head ts for everyone in the index (no ``updated_ts`` per organisation).
OLD_SCHEMA = sqlite_log.SCHEMA.replace("    salt       TEXT,\n", "").replace(
    "    updated_ts INTEGER NOT NULL DEFAULT 0,\n", ""
)


def legacy_events() -> list[StoredEvent]:
    """Two events sequenced the rule-1 way: digest over the content alone."""
    created = EventDraft(
        "inc1", "incident.created", "u1", "o1", "One", "c0", None,
        {"title": "t", "category": "c", "priority": "normal", "orgs": ["o1", "o2"]},
        epoch="ep",
    )  # fmt: skip
    note = EventDraft("inc1", "message.posted", "u1", "o1", "One", "c1", ("o1",), {"text": "x"})
    out, prev = [], chain.GENESIS
    for seq, draft in enumerate((created, note), start=1):
        values = draft.content() | {"seq": seq, "epoch": "ep", "ts_ms": 1_000 * seq}
        digest = chain.digest_of(chain.canonical_content(values))
        prev = chain.chain(prev, digest)
        out.append(StoredEvent(**values, digest=digest, hash=prev))
    return out


def write_old_data_dir(path: Path, events: list[StoredEvent]) -> None:
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    head = events[-1]
    db.execute("INSERT INTO logs VALUES (?, ?, ?, ?, ?, ?)",
               ("inc1", "ep", head.seq, head.hash, head.ts_ms, 1_000))  # fmt: skip
    rows = [sqlite_log._event_to_row(ev)[:-1] for ev in events]  # no salt column
    db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    header: summary.Header = {}
    summary.merge(header, events)
    wire = summary.summary("inc1", header, 0, 0)
    index_row = ("inc1", orjson.dumps(header), wire["title"], wire["status"], wire["category"])
    db.execute("INSERT INTO incident_index VALUES (?, ?, ?, ?, ?)", index_row)
    db.executemany("INSERT INTO incident_orgs VALUES (?, ?)", [("o1", "inc1"), ("o2", "inc1")])
    db.commit()
    db.close()


async def test_an_old_sqlite_data_dir_verifies_and_new_events_chain_onto_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "liaison.db"
    write_old_data_dir(path, legacy_events())
    log = SqliteEventLog(SqliteConfig(path), MemoryBroker().publish)
    await log.start()
    try:
        # The upgrade filled each organisation's ``updated``: o2 never saw seq 2.
        listed = [await log.list_incidents(IncidentQuery(org=o)) for o in ("o1", "o2")]
        assert [page.incidents[0]["updated"] for page in listed] == [2_000, 1_000]
        draft = EventDraft(
            "inc1", "message.posted", "u1", "o1", "One", "c2", ("o1",), {"text": "y"}
        )
        await log.append(draft)
        events = await log.read("inc1", 0, 10)
        [ngo] = (await log.list_incidents(IncidentQuery(org="o2"))).incidents
        assert (ngo["seq"], ngo["updated"]) == (3, 1_000)
    finally:
        await log.close()
    assert [e.salt is None for e in events] == [True, True, False]
    assert all(chain.event_digest(e) == e.digest for e in events)
    assert chain.verify((e.seq, e.digest, e.hash) for e in events) is None
    # The legacy envelope is what it always was (no salt key); the new one has it.
    assert "salt" not in envelope(events[1])
    assert "salt" in envelope(events[2])
    placeholders = [shaped(e, PLACEHOLDER) for e in events[1:]]
    assert all("salt" not in p for p in placeholders)


def test_an_old_redis_entry_decodes_as_rule_1() -> None:
    """The Redis log holds msgpack arrays of the fields; old ones are one shorter."""
    ev = legacy_events()[1]
    old_entry = msgpack.packb(ev.to_fields()[:-1], use_bin_type=True)
    decoded = unpack_event(old_entry)
    assert decoded == ev
    assert decoded.salt is None
    assert chain.event_digest(decoded) == decoded.digest
    assert dataclasses.replace(decoded, salt="00" * 32) != decoded
