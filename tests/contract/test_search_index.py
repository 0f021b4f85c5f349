"""The text index and the external-reference lookup, run against every backend.

``EventLog.text_matches`` (server/storage/base.py) and ``IncidentQuery.ref``:
the same answers from SQLite and Redis, written with the append, and built
at start for a log stored before them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from server.backends import running
from server.domain.search_text import MAX_TERMS_PER_EVENT
from server.storage.base import EventLog, IncidentQuery
from server.storage.redis_log import APPEND_LUA
from tests.contract.conftest import embedded_settings, redis_settings
from tests.contract.test_event_log import log  # noqa: F401  (fixture)
from tests.contract.test_incident_index import create, make, projected
from tests.redis_server import RedisServer


async def post(store: EventLog, incident: str, cid: str, text: str, **kw: object) -> int:
    result = await store.append(make(incident, cid, "message.posted", {"text": text}, **kw))  # type: ignore[arg-type]
    return result.event.seq


async def test_words_are_found_by_every_term_newest_first(log: EventLog) -> None:  # noqa: F811
    await create(log, "inc", title="Harbour bridge")
    a = await post(log, "inc", "a", "Man on the BRIDGE, north side")
    b = await post(log, "inc", "b", "bridge cleared; north lane open")
    await post(log, "inc", "c", "nothing here")
    head = await log.head("inc")
    assert head is not None
    assert await log.text_matches("inc", ["bridge"], 0, head.seq + 1) == [b, a, 1]
    assert await log.text_matches("inc", ["north", "bridge"], 0, head.seq + 1) == [b, a]
    assert await log.text_matches("inc", ["bridge", "lane"], 0, head.seq + 1) == [b]
    assert await log.text_matches("inc", ["bridge"], a, b) == []  # both bounds exclusive
    assert await log.text_matches("inc", ["bridge"], 1, head.seq + 1) == [b, a]
    assert await log.text_matches("inc", ["absent"], 0, 99) == []
    assert await log.text_matches("nowhere", ["bridge"], 0, 99) == []
    assert await log.text_matches("inc", [], 0, 99) == []


async def test_words_are_per_incident_and_of_text_fields_only(log: EventLog) -> None:  # noqa: F811
    await create(log, "one")
    await create(log, "two")
    await post(log, "one", "x", "kestrel")
    subject = {"subject": {"name": "Kestrel Smith", "phone": "07700900123"}, "title": "Welfare"}
    await log.append(make("two", "t", "task.created", {**subject, "details": "check in"}))
    assert await log.text_matches("two", ["kestrel"], 0, 99) == []  # a protected field
    assert await log.text_matches("two", ["07700900123"], 0, 99) == []
    assert await log.text_matches("two", ["welfare", "check"], 0, 99) == [2]
    assert await log.text_matches("one", ["kestrel"], 0, 99) == [2]


async def test_many_words_are_cut_at_the_same_place(log: EventLog) -> None:  # noqa: F811
    await create(log, "inc")
    text = " ".join(f"w{i}" for i in range(MAX_TERMS_PER_EVENT + 10))
    await post(log, "inc", "long", text)
    assert await log.text_matches("inc", [f"w{MAX_TERMS_PER_EVENT - 1}"], 0, 99) == [2]
    assert await log.text_matches("inc", [f"w{MAX_TERMS_PER_EVENT}"], 0, 99) == []


async def test_ref_is_an_exact_lookup_that_follows_updates(log: EventLog) -> None:  # noqa: F811
    await create(log, "a")
    await create(log, "b")
    await create(log, "c", orgs=("o1",))
    await log.append(make("a", "ra", "incident.updated", {"external_ref": "CAD-123"}))
    await log.append(make("c", "rc", "incident.updated", {"external_ref": "CAD-123"}))
    await log.append(make("b", "rb", "incident.updated", {"external_ref": "CAD-1234"}))
    page = await log.list_incidents(IncidentQuery(org="o2", ref="CAD-123"))
    assert page.incidents == [await projected(log, "a", "o2")]  # c: o2 is not in it
    assert page.incidents[0]["external_ref"] == "CAD-123"
    assert [
        i["id"]
        for i in (await log.list_incidents(IncidentQuery(org="o1", ref="CAD-123"))).incidents
    ] in (["c", "a"],)
    assert (await log.list_incidents(IncidentQuery(org="o1", ref="cad-123"))).incidents == []
    # A changed reference is found under the new one only.
    await log.append(make("a", "ra2", "incident.updated", {"external_ref": "CAD-999"}))
    ids = [
        i["id"]
        for i in (await log.list_incidents(IncidentQuery(org="o2", ref="CAD-123"))).incidents
    ]
    assert ids == []
    page = await log.list_incidents(IncidentQuery(org="o2", ref="CAD-999"))
    assert [i["id"] for i in page.incidents] == ["a"]


async def test_ref_pages_follow_the_cursor(log: EventLog) -> None:  # noqa: F811
    for name in ("p", "q", "r"):
        await create(log, name)
        await log.append(make(name, "ref" + name, "incident.updated", {"external_ref": "X1"}))
    first = await log.list_incidents(IncidentQuery(org="o1", ref="X1", limit=2))
    assert first.next is not None
    assert len(first.incidents) == 2
    second = await log.list_incidents(IncidentQuery(org="o1", ref="X1", after=first.next, limit=2))
    assert second.next is None
    ids = [i["id"] for i in first.incidents + second.incidents]
    assert sorted(ids) == ["p", "q", "r"]
    assert len(set(ids)) == 3


#: The text index as earlier layouts left it: (SQL, search_built.done).
EARLIER_INDEXES = {
    "B-tree (layout 1)": (
        "CREATE TABLE event_terms (incident TEXT, term TEXT, seq INTEGER)",
        1,
    ),
    "FTS5 with content (layout 2)": (
        "CREATE VIRTUAL TABLE event_words USING fts5(words, detail=none, tokenize='ascii');"
        # A word the event does not hold: the rebuild must not keep it.
        # (rowid: log 1, seq 2; the words hex-encoded, as _fts_doc stores them)
        " INSERT INTO event_words(rowid, words) VALUES (4294967298, '7374616c65')",
        2,
    ),
}


@pytest.mark.parametrize("earlier", EARLIER_INDEXES)
async def test_sqlite_indexes_the_words_of_an_older_log(tmp_path: Path, earlier: str) -> None:
    async with running(embedded_settings(tmp_path)) as first:
        await create(first.log, "old")
        await post(first.log, "old", "m", "older words")
    sql, done = EARLIER_INDEXES[earlier]
    with sqlite3.connect(tmp_path / "events.db") as db:  # as that layout left it
        db.execute("DROP TABLE event_words")
        db.executescript(sql)
        db.execute("UPDATE search_built SET done = ?", (done,))
    async with running(embedded_settings(tmp_path)) as second:
        assert await second.log.text_matches("old", ["older"], 0, 99) == [2]
        assert await second.log.text_matches("old", ["older", "words"], 0, 99) == [2]
        assert await second.log.text_matches("old", ["older"], 2, 99) == []
        assert await second.log.text_matches("old", ["older", "nope"], 0, 99) == []
        assert await second.log.text_matches("old", ["stale"], 0, 99) == []
    with sqlite3.connect(tmp_path / "events.db") as db:
        tables = dict(db.execute("SELECT name, sql FROM sqlite_master"))
    assert "event_terms" not in tables
    assert "content=''" in tables["event_words"], "contentless: no copy of the words"


async def test_redis_indexes_the_words_of_an_older_log(redis_server: RedisServer) -> None:
    redis_server.flush()
    async with running(redis_settings(redis_server, "old")) as first:
        await create(first.log, "old")
        await post(first.log, "old", "m", "older words")
    client = aioredis.Redis.from_url(redis_server.url)
    terms = await client.keys("liaison:{old}:term:*")
    await client.delete(*terms, "liaison:search:built")
    await client.aclose()
    async with running(redis_settings(redis_server, "new")) as second:
        assert await second.log.text_matches("old", ["older"], 0, 99) == [2]


async def test_words_of_any_script_are_found_as_cut(log: EventLog) -> None:  # noqa: F811
    await create(log, "intl")
    text = 'Café STRAßE مرحبا 東京 "quoted" AND OR NOT near* x_y'
    seq = await post(log, "intl", "intl", text)
    for word in ("café", "straße", "مرحبا", "東京", "quoted", "and", "or", "not", "near", "x", "y"):
        assert await log.text_matches("intl", [word], 0, 99) == [seq], word
    assert await log.text_matches("intl", ["cafe"], 0, 99) == []  # no accent folding
    assert await log.text_matches("intl", ['"'], 0, 99) == []


@pytest.mark.parametrize("kept", ["no script", "only append.lua"])
async def test_an_append_after_redis_lost_its_scripts_is_stored_once_whole(
    redis_server: RedisServer, kept: str
) -> None:
    """A restarted Redis, or a promoted replica, has no scripts: the append
    (append.lua, header.lua, terms.lua in one MULTI) answers NOSCRIPT inside
    the EXEC, loads what was lost and sends it again. With append.lua kept and
    the others lost, the events are stored by the first EXEC and only the
    header and the words follow: each event once, its words found, its title
    in the index."""
    redis_server.flush()
    async with running(redis_settings(redis_server, "n")) as node:
        await create(node.log, "inc")
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            await client.script_flush()
            if kept == "only append.lua":
                await client.script_load(APPEND_LUA)
            update = {"title": "Kestrel lane"}
            result = await node.log.append(make("inc", "u", "incident.updated", update))
            assert (result.event.seq, result.duplicate) == (2, False)
            assert await post(node.log, "inc", "m", "kestrel seen") == 3
            assert await client.xlen("liaison:{inc}:log") == 3
        finally:
            await client.aclose()
        assert await node.log.text_matches("inc", ["kestrel"], 0, 99) == [3, 2]
        page = await node.log.list_incidents(IncidentQuery(org="o1"))
        assert [i["title"] for i in page.incidents] == ["Kestrel lane"]
