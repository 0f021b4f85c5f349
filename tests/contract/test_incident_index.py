"""The incident index contract (``EventLog.list_incidents``), run against every backend.

The index must give, for every incident an organisation takes part in, what
``IncidentState.summary()`` gives for the same log, ordered by last update,
paged by cursor, without loading projections.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from server.backends import running
from server.domain.events import EventDraft
from server.domain.incident import IncidentState
from server.storage.base import EventLog, IncidentPage, IncidentQuery
from tests.contract.conftest import embedded_settings, redis_settings
from tests.contract.test_event_log import log  # noqa: F401  (fixture)
from tests.redis_server import RedisServer


def make(
    incident: str,
    cid: str,
    kind: str,
    body: dict[str, Any],
    *,
    org: str = "o1",
    visibility: tuple[str, ...] | None = None,
) -> EventDraft:
    return EventDraft(
        incident=incident,
        type=kind,
        actor_user="u-" + org,
        actor_org=org,
        actor_name="User",
        client_id=cid,
        visibility=visibility,
        body=body,
        epoch="ep-" + incident if kind == "incident.created" else None,
    )


async def create(
    store: EventLog, incident: str, *, title: str = "Bridge", orgs: tuple[str, ...] = ("o1", "o2")
) -> None:
    body = {
        "title": title,
        "category": "welfare",
        "priority": "high",
        "orgs": list(orgs),
        "location": {"lat": 1.0, "lon": 2.0},
        "lead_org": orgs[0],
        "liaisons": {orgs[0]: "u-" + orgs[0]},
    }
    await store.append(make(incident, "create-" + incident, "incident.created", body))


async def projected(store: EventLog, incident: str, org: str) -> dict[str, Any]:
    """The projection's summary as ``org`` sees it."""
    head = await store.head(incident)
    assert head is not None
    state = IncidentState(id=incident, epoch=head.epoch)
    for ev in await store.read(incident, 0, 1_000):
        state.apply(ev)
    return state.summary(org)


async def next_millisecond(store: EventLog, incident: str) -> None:
    """Wait until the clock is past the incident's last event (index order is by ms)."""
    [last] = (await store.read(incident, 0, 1_000))[-1:]
    while time.time() * 1000 < last.ts_ms + 1:
        await asyncio.sleep(0.001)


async def walk(store: EventLog, query: IncidentQuery) -> list[IncidentPage]:
    pages = [await store.list_incidents(query)]
    while pages[-1].next is not None:
        nxt = IncidentQuery(**{**_fields(query), "after": pages[-1].next})
        pages.append(await store.list_incidents(nxt))
    return pages


def _fields(query: IncidentQuery) -> dict[str, Any]:
    return {name: getattr(query, name) for name in query.__dataclass_fields__}


async def test_summary_equals_the_projection(log: EventLog) -> None:  # noqa: F811
    await create(log, "inc1")
    await log.append(make("inc1", "m1", "message.posted", {"text": "hi"}))
    update = {"title": "Harbour bridge", "add_orgs": ["o3", "o1"], "liaisons": {"o3": "u-o3"}}
    await log.append(make("inc1", "u1", "incident.updated", update))
    await log.append(make("inc1", "s1", "incident.status_changed", {"status": "open"}))
    await log.append(make("inc1", "u2", "incident.updated", {"priority": "urgent", "title": None}))
    police = ("o1",)
    await log.append(make("inc1", "m2", "message.posted", {"text": "x"}, visibility=police))
    page = await log.list_incidents(IncidentQuery(org="o2"))
    assert page.incidents == [await projected(log, "inc1", "o2")]
    assert page.next is None
    police_page = await log.list_incidents(IncidentQuery(org="o1"))
    assert police_page.incidents == [await projected(log, "inc1", "o1")]
    assert page.incidents[0]["orgs"] == ["o1", "o2", "o3"]
    assert page.incidents[0]["status"] == "open"


async def test_a_restricted_event_moves_updated_only_for_who_sees_it(log: EventLog) -> None:  # noqa: F811
    """Neither ``updated`` nor the order tells an NGO that a police-only event was stored."""
    await create(log, "quiet")
    await next_millisecond(log, "quiet")
    await create(log, "busy")
    await next_millisecond(log, "busy")
    before = {o: (await log.list_incidents(IncidentQuery(org=o))).incidents for o in ("o1", "o2")}
    assert [s["id"] for s in before["o2"]] == ["busy", "quiet"]
    note = make("quiet", "n1", "message.posted", {"text": "x"}, visibility=("o1",))
    stored = (await log.append(note)).event
    ngo = (await log.list_incidents(IncidentQuery(org="o2"))).incidents
    assert [s["id"] for s in ngo] == ["busy", "quiet"], "the order did not move for o2"
    assert [s["updated"] for s in ngo] == [s["updated"] for s in before["o2"]]
    polled = IncidentQuery(org="o2", updated_after=before["o2"][0]["updated"])
    assert (await log.list_incidents(polled)).incidents == []
    police = (await log.list_incidents(IncidentQuery(org="o1"))).incidents
    assert (police[0]["id"], police[0]["updated"]) == ("quiet", stored.ts_ms)
    assert ngo[1] == await projected(log, "quiet", "o2")


async def test_only_participants_see_an_incident(log: EventLog) -> None:  # noqa: F811
    await create(log, "a", orgs=("o1", "o2"))
    await create(log, "b", orgs=("o3",))
    assert [s["id"] for s in (await log.list_incidents(IncidentQuery(org="o1"))).incidents] == ["a"]
    assert (await log.list_incidents(IncidentQuery(org="nobody"))).incidents == []
    await next_millisecond(log, "a")
    await log.append(make("b", "join", "incident.updated", {"add_orgs": ["o1"]}, org="o3"))
    listed = (await log.list_incidents(IncidentQuery(org="o1"))).incidents
    assert [s["id"] for s in listed] == ["b", "a"], "joined, and b was updated last"


async def test_pages_follow_the_cursor_most_recent_first(log: EventLog) -> None:  # noqa: F811
    for i in range(25):
        await create(log, f"inc{i:02d}")
    await next_millisecond(log, "inc24")
    await log.append(make("inc00", "late", "message.posted", {"text": "bump"}))
    pages = await walk(log, IncidentQuery(org="o1", limit=10))
    assert [len(p.incidents) for p in pages] == [10, 10, 5]
    ids = [s["id"] for p in pages for s in p.incidents]
    assert ids[0] == "inc00", "a new event moves an incident to the top"
    assert sorted(ids) == [f"inc{i:02d}" for i in range(25)], "each once"
    order = [(s["updated"], s["id"]) for p in pages for s in p.incidents]
    assert order == sorted(order, reverse=True)


async def test_filters(log: EventLog) -> None:  # noqa: F811
    await create(log, "a", title="ÉCOLE Saint-Jean")
    await create(log, "b", title="Harbour")
    await log.append(make("b", "s", "incident.status_changed", {"status": "closed"}))
    since = (await log.list_incidents(IncidentQuery(org="o1"))).incidents[0]["updated"]

    async def ids(**kw: Any) -> list[str]:
        page = await log.list_incidents(IncidentQuery(org="o1", **kw))
        return [s["id"] for s in page.incidents]

    assert await ids(status="closed") == ["b"]
    assert await ids(status="reported") == ["a"]
    assert await ids(category="welfare") == ["b", "a"]
    assert await ids(category="fire") == []
    assert await ids(text="école") == ["a"], "case-insensitive beyond ASCII"
    assert await ids(text="arbou") == ["b"]
    assert await ids(updated_after=since) == []
    await next_millisecond(log, "b")
    await log.append(make("a", "m", "message.posted", {"text": "later"}))
    assert await ids(updated_after=since) == ["a"]


async def test_restricted_events_move_the_seq_but_only_their_readers_updated(
    log: EventLog,  # noqa: F811
) -> None:
    """``seq`` is the head, of any visibility (a placeholder is there for all);
    ``updated`` is the ts of the last event the reader may see (SPEC section 18)."""
    await create(log, "a")
    [created] = await log.read("a", 0, 1)
    await next_millisecond(log, "a")
    result = await log.append(
        make("a", "p", "message.posted", {"text": "police only"}, visibility=("o1",))
    )
    [entry] = (await log.list_incidents(IncidentQuery(org="o2"))).incidents
    assert (entry["seq"], entry["updated"]) == (2, created.ts_ms)
    [entry] = (await log.list_incidents(IncidentQuery(org="o1"))).incidents
    assert (entry["seq"], entry["updated"]) == (2, result.event.ts_ms)


async def test_sqlite_indexes_a_log_written_before_the_index(tmp_path: Path) -> None:
    async with running(embedded_settings(tmp_path)) as first:
        await create(first.log, "old")
        await first.log.append(make("old", "s", "incident.status_changed", {"status": "open"}))
        await next_millisecond(first.log, "old")
        police = make("old", "p", "message.posted", {"text": "x"}, visibility=("o1",))
        await first.log.append(police)
        expected = await projected(first.log, "old", "o2")
    with sqlite3.connect(tmp_path / "events.db") as db:
        db.execute("DELETE FROM incident_index")
        db.execute("DELETE FROM incident_orgs")
    async with running(embedded_settings(tmp_path)) as second:
        assert (await second.log.list_incidents(IncidentQuery(org="o2"))).incidents == [expected]


async def test_redis_nodes_writing_one_header_converge(redis_server: RedisServer) -> None:
    """Two nodes change the same incident's header at once: the index ends up
    as the projection of the log, whatever order their merges landed in."""
    redis_server.flush()
    async with (
        running(redis_settings(redis_server, "n1")) as n1,
        running(redis_settings(redis_server, "n2")) as n2,
    ):
        nodes = [n1.log, n2.log]
        await create(nodes[0], "inc")
        for i in range(20):
            changes = [
                make("inc", f"t{i}", "incident.updated", {"title": f"title {i}"}),
                make("inc", f"s{i}", "incident.status_changed", {"status": f"s{i}"}, org="o2"),
            ]
            await _together(nodes, changes)
        page = await nodes[1].list_incidents(IncidentQuery(org="o1"))
        assert page.incidents == [await projected(nodes[0], "inc", "o1")]


async def test_redis_indexes_logs_written_before_the_index(redis_server: RedisServer) -> None:
    redis_server.flush()
    async with running(redis_settings(redis_server, "old")) as first:
        await create(first.log, "old")
        await first.log.append(make("old", "s", "incident.status_changed", {"status": "open"}))
        await next_millisecond(first.log, "old")
        police = make("old", "p", "message.posted", {"text": "x"}, visibility=("o1",))
        await first.log.append(police)
        expected = await projected(first.log, "old", "o2")
    client = aioredis.Redis.from_url(redis_server.url)
    # As a Redis written before the index, and before its per-organisation orders.
    await client.delete("liaison:index:updated", "liaison:{old}:summary")
    await client.delete("liaison:index:org:o1", "liaison:index:org:o2", "liaison:index:org-built")
    await client.aclose()
    async with running(redis_settings(redis_server, "new")) as second:
        assert (await second.log.list_incidents(IncidentQuery(org="o2"))).incidents == [expected]


@pytest.mark.parametrize("limit", [1, 3])
async def test_redis_short_pages_still_reach_every_entry(
    redis_server: RedisServer, limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Redis call scans a bounded stretch of the index: pages may come short,
    but following ``next`` reaches every entry exactly once."""
    from server.storage import redis_log

    monkeypatch.setattr(redis_log, "INDEX_SCAN", 4)
    redis_server.flush()
    async with running(redis_settings(redis_server, "scan")) as node:
        for i in range(12):
            await create(node.log, f"mine{i:02d}", orgs=("o1",) if i % 3 == 0 else ("o9",))
        pages = await walk(node.log, IncidentQuery(org="o1", limit=limit))
        ids = [s["id"] for p in pages for s in p.incidents]
        assert ids == ["mine09", "mine06", "mine03", "mine00"]


async def _together(nodes: list[EventLog], drafts: list[EventDraft]) -> None:
    await asyncio.gather(*(n.append(d) for n, d in zip(nodes, drafts, strict=True)))


async def test_redis_an_organisation_added_by_another_node_gets_the_next_update(
    redis_server: RedisServer,
) -> None:
    """A node caches an incident's organisations beside its head; an org added
    through another node must still have its ``updated`` moved by this node."""
    redis_server.flush()
    async with (
        running(redis_settings(redis_server, "n1")) as n1,
        running(redis_settings(redis_server, "n2")) as n2,
    ):
        await create(n1.log, "inc")
        await n1.log.append(make("inc", "m0", "message.posted", {"text": "cached"}))
        await n2.log.append(make("inc", "join", "incident.updated", {"add_orgs": ["o3"]}))
        await next_millisecond(n1.log, "inc")
        last = (await n1.log.append(make("inc", "m1", "message.posted", {"text": "x"}))).event
        [entry] = (await n1.log.list_incidents(IncidentQuery(org="o3"))).incidents
        assert entry["updated"] == last.ts_ms
        assert entry == await projected(n1.log, "inc", "o3")
