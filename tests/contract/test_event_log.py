"""The EventLog contract, run against every backend.

The ``log`` fixture yields the log of a started backend set (tests/contract/
conftest.py); add a backend there.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from server.backends import Backends, running
from server.domain import chain
from server.domain.events import EventDraft
from server.errors import ClientIdReused, LogNotFound, StorageUnavailable
from server.fanout.memory import MemoryBroker
from server.storage.base import EventLog
from server.storage.redis_log import RedisConfig, RedisEventLog, connect
from server.storage.sqlite import SqliteConfig, SqliteEventLog
from tests.contract.conftest import embedded_settings


def _typed(path: Path, url: str) -> None:
    """Compile-time check (mypy), never run: each implementation is an EventLog."""
    redis_config = RedisConfig(url=url, node_id="typed")
    sqlite_log: EventLog = SqliteEventLog(SqliteConfig(path), MemoryBroker().publish)
    redis_log: EventLog = RedisEventLog(redis_config, connect(redis_config), MemoryBroker().publish)
    del sqlite_log, redis_log


@pytest.fixture
def log(log_set: Backends) -> EventLog:
    return log_set.log


def draft(
    incident: str,
    cid: str,
    *,
    kind: str = "message.posted",
    user: str = "u1",
    visibility: tuple[str, ...] | None = None,
) -> EventDraft:
    body = (
        {"title": "t", "category": "c", "priority": "normal", "orgs": ["o1"]}
        if kind == "incident.created"
        else {"text": cid}
    )
    return EventDraft(
        incident=incident,
        type=kind,
        actor_user=user,
        actor_org="o1",
        actor_name="User One",
        client_id=cid,
        visibility=visibility,
        body=body,
        epoch="ep-" + incident if kind == "incident.created" else None,
    )


async def open_incident(log: EventLog, incident: str = "inc1") -> None:
    await log.append(draft(incident, "create-" + incident, kind="incident.created"))


async def test_seq_is_gapless_from_one_under_concurrency(log: EventLog) -> None:
    await open_incident(log)
    results = await asyncio.gather(*(log.append(draft("inc1", f"c{i}")) for i in range(300)))
    assert sorted(r.event.seq for r in results) == list(range(2, 302))
    assert [r.event.seq for r in results] == list(range(2, 302)), "append order is seq order"
    head = await log.head("inc1")
    assert head is not None
    assert (head.epoch, head.seq) == ("ep-inc1", 301)


async def test_seqs_are_per_incident(log: EventLog) -> None:
    await open_incident(log, "a")
    await open_incident(log, "b")
    a = await log.append(draft("a", "x1"))
    b = await log.append(draft("b", "x2"))
    assert (a.event.seq, b.event.seq) == (2, 2)
    assert await log.incidents() == ["a", "b"]


async def test_heads_of_many_incidents_in_one_read(log: EventLog) -> None:
    for name in ("a", "b", "c"):
        await open_incident(log, name)
    await log.append(draft("b", "x1"))
    many = [f"none-{i}" for i in range(1_200)]  # more than one chunk of a query or pipeline
    heads = await log.heads(["a", "b", *many, "c", "a"])
    assert heads == {name: await log.head(name) for name in ("a", "b", "c")}
    assert heads["b"].seq == 2
    assert await log.heads([]) == {}


async def test_same_client_id_is_stored_once(log: EventLog) -> None:
    await open_incident(log)
    first, *retries = await asyncio.gather(*(log.append(draft("inc1", "same")) for _ in range(5)))
    assert not first.duplicate
    assert all(r.duplicate and r.event == first.event for r in retries)
    later = await log.append(draft("inc1", "same"))
    assert later.duplicate
    assert later.event == first.event
    assert len(await log.read("inc1", 0, 100)) == 2
    assert await log.find("inc1", "u1", "same") == first.event
    assert await log.find("other", "u1", "same") is None
    other_user = await log.append(draft("inc1", "same", user="u2"))
    assert not other_user.duplicate, "client ids are scoped to their user"


async def test_client_id_reused_in_another_incident_is_refused(log: EventLog) -> None:
    """SPEC §12: ids are scoped to the user across all incidents, on every backend."""
    await open_incident(log, "a")
    await open_incident(log, "b")
    first = await log.append(draft("a", "shared"))
    with pytest.raises(ClientIdReused):
        await log.append(draft("b", "shared"))
    with pytest.raises(ClientIdReused):
        await log.append(draft("b", "shared"))  # refused again, not stored meanwhile
    assert [e.client_id for e in await log.read("b", 0, 10)] == ["create-b"]
    assert (await log.append(draft("a", "shared"))).event == first.event, "still a retry in a"
    other_user = await log.append(draft("b", "shared", user="u2"))
    assert not other_user.duplicate, "another user's id is another id"


async def test_client_id_reused_for_another_type_is_refused(log: EventLog) -> None:
    await open_incident(log)
    await log.append(draft("inc1", "typed"))
    with pytest.raises(ClientIdReused):
        await log.append(draft("inc1", "typed", kind="message.edited"))
    with pytest.raises(ClientIdReused):
        await log.append(draft("inc1", "create-inc1"))  # the creation's id, for a post


async def test_concurrent_reuse_in_two_incidents_stores_one(log: EventLog) -> None:
    await open_incident(log, "a")
    await open_incident(log, "b")
    outcomes = await asyncio.gather(
        log.append(draft("a", "race")), log.append(draft("b", "race")), return_exceptions=True
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["AppendResult", "ClientIdReused"]


async def test_a_cancelled_retry_does_not_stop_the_writer(log: EventLog) -> None:
    """A caller that goes away (its connection dropped) cancels its future; the
    writer must go on storing for everyone else."""
    await open_incident(log)
    await log.append(draft("inc1", "stored"))
    log.enqueue(draft("inc1", "stored")).cancel()  # a retry nobody waits for any more
    log.enqueue(draft("inc1", "new-and-dropped")).cancel()
    later = await asyncio.wait_for(log.append(draft("inc1", "later")), 10)
    assert not later.duplicate
    assert log.health()["healthy"]
    cids = [e.client_id for e in await log.read("inc1", 0, 10)]
    assert cids == ["create-inc1", "stored", "new-and-dropped", "later"], "still written"


async def test_a_cancelled_first_of_two_same_ids_still_answers_the_second(log: EventLog) -> None:
    """Two connections of one user send one new id in the same batch; the first drops."""
    await open_incident(log)
    first = log.enqueue(draft("inc1", "twice"))
    second = log.enqueue(draft("inc1", "twice"))
    first.cancel()
    result = await asyncio.wait_for(second, 10)
    assert result.event.client_id == "twice"
    assert result.duplicate, "the second is answered with the event the first stored"
    assert [e.client_id for e in await log.read("inc1", 0, 10)] == ["create-inc1", "twice"]


async def test_read_ranges(log: EventLog) -> None:
    await open_incident(log)
    for i in range(9):
        await log.append(draft("inc1", f"c{i}"))
    assert [e.seq for e in await log.read("inc1", 0, 100)] == list(range(1, 11))
    assert [e.seq for e in await log.read("inc1", 4, 3)] == [5, 6, 7]
    assert await log.read("inc1", 10, 5) == []
    assert await log.read("nope", 0, 5) == []
    assert await log.head("nope") is None


async def test_append_to_unknown_incident_fails(log: EventLog) -> None:
    with pytest.raises(LogNotFound):
        await log.append(draft("ghost", "c1"))


async def test_events_are_hash_chained(log: EventLog) -> None:
    await open_incident(log)
    for i in range(5):
        await log.append(draft("inc1", f"c{i}", visibility=("o1",) if i % 2 else None))
    events = await log.read("inc1", 0, 100)
    assert chain.verify((e.seq, e.digest, e.hash) for e in events) is None
    for e in events:
        assert chain.event_digest(e) == e.digest
        assert e.salt is not None
    tampered = [(e.seq, e.digest if e.seq != 3 else "0" * 64, e.hash) for e in events]
    assert chain.verify(tampered) == 3


async def test_timestamps_never_go_backwards(log: EventLog) -> None:
    await open_incident(log)
    for i in range(50):
        await log.append(draft("inc1", f"c{i}"))
    stamps = [e.ts_ms for e in await log.read("inc1", 0, 100)]
    assert stamps == sorted(stamps)


async def test_log_survives_reopen(tmp_path: Path) -> None:
    async with running(embedded_settings(tmp_path)) as first:
        await open_incident(first.log)
        await first.log.append(draft("inc1", "c1"))
    async with running(embedded_settings(tmp_path)) as second:
        assert [e.seq for e in await second.log.read("inc1", 0, 10)] == [1, 2]
        nxt = await second.log.append(draft("inc1", "c2"))
        assert nxt.event.seq == 3
        assert (await second.log.append(draft("inc1", "c1"))).duplicate


async def test_a_retried_creation_returns_the_first_incident(log: EventLog) -> None:
    """A retried ``incident.create`` decides a fresh incident id each time; its
    client id must still give back the incident it created, on every backend."""
    first = await log.append(draft("a", "create-once", kind="incident.created"))
    retry = await log.append(draft("b", "create-once", kind="incident.created"))
    assert retry.duplicate
    assert retry.event == first.event
    assert await log.head("b") is None, "no second incident"
    assert await log.incidents() == ["a"]


async def test_close_writes_what_is_pending_then_refuses(log: EventLog) -> None:
    await open_incident(log)
    pending = [log.enqueue(draft("inc1", f"p{i}")) for i in range(20)]
    await log.close()
    assert [(await p).event.seq for p in pending] == list(range(2, 22)), "pending were written"
    with pytest.raises(StorageUnavailable):
        await asyncio.wait_for(log.append(draft("inc1", "late")), 5)
    late = log.enqueue(draft("inc1", "late"))
    with pytest.raises(StorageUnavailable):
        await asyncio.wait_for(late, 5)


async def test_limit_below_one_reads_one(log: EventLog) -> None:
    await open_incident(log)
    await log.append(draft("inc1", "c1"))
    assert [e.seq for e in await log.read("inc1", 0, 0)] == [1]
    assert [e.seq for e in await log.read("inc1", 0, -1)] == [1]
