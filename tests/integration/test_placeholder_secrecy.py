"""A placeholder reveals nothing guessable (SPEC sections 9.3 and 14.1).

The attack that prompted chain rule 2: a police-only message with a
predictable client id (``cad-4711``) and a stock text; an NGO reader knows
every field of its canonical content but the text and the ts, and the ts is
bounded by the neighbouring events (under rule 1 it was even exact, from the
incident summary's ``updated``). Hashing each candidate recovered the text
offline in 4.2 s. With the salt, no candidate matches, and the links still
verify for everyone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis

from liaison_client import CommandFailed
from server.domain import chain
from server.domain.events import EventDraft, StoredEvent
from server.services.envelope import placeholder
from tests.conftest import LiaisonServer, connect, new_incident
from tests.integration.test_multinode import start_nodes
from tests.redis_server import RedisServer

SECRET = "Unit 12 suspect detained"
#: What the attacker tries: the real text among plausible stock phrases.
CANDIDATE_TEXTS = ["Unit 12 on scene", "Unit 12 suspect released", SECRET, "Unit 12 clear"]


def guessed_content(
    ph: dict[str, Any], actor: dict[str, str], body_shape: dict[str, Any], text: str, ts: int
) -> dict[str, Any]:
    """The canonical content (rule 1) the attacker builds from a placeholder and a guess."""
    return {
        "incident": ph["incident"],
        "seq": ph["seq"],
        "epoch": ph["epoch"],
        "type": "message.posted",
        "ts_ms": ts,
        "actor_user": actor["user"],
        "actor_org": actor["org"],
        "client_id": "cad-4711",
        "visibility": ["metro-police"],
        "body": {**body_shape, "text": text},
    }


def brute_force(
    ph: dict[str, Any], actor: dict[str, str], body_shape: dict[str, Any], window: Iterable[int]
) -> str | None:
    """Every candidate text at every ts of the window, under rule 1: the text that matches."""
    for ts in window:
        for text in CANDIDATE_TEXTS:
            content = guessed_content(ph, actor, body_shape, text, ts)
            if chain.digest_of(chain.canonical_content(content)) == ph["digest"]:
                return text
    return None


async def test_an_ngo_reader_cannot_recover_a_police_only_text_from_its_placeholder(
    server: LiaisonServer, clients: list[Any]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    assert dispatcher.welcome is not None
    assert dispatcher.welcome["chain"] == 2
    ngo = await connect(clients, server, "outreach", live=False)
    incident = await new_incident(dispatcher, "Placeholder secrecy")
    public = await dispatcher.post(incident, "Shelter team, please stand by")
    before = int(time.time() * 1000)
    secret = await dispatcher.post(incident, SECRET, id="cad-4711", visibility=["metro-police"])
    after = int(time.time() * 1000)

    events = await ngo.timeline(incident)
    ph = events[secret["seq"] - 1]
    assert ph["type"] == "restricted"
    assert set(ph) == {"v", "type", "incident", "seq", "epoch", "digest", "hash"}
    shape = events[public["seq"] - 1]
    body_shape, actor = shape["body"], shape["actor"]
    window = range(min(shape["ts"], before), after + 1)
    assert brute_force(ph, actor, body_shape, window) is None

    # Every reader still verifies the linkage across the placeholder offline...
    assert chain.verify((e["seq"], e["digest"], e["hash"]) for e in events) is None
    # ...and the entitled reader the content too, with the salt only it receives.
    police = await dispatcher.timeline(incident)
    full = police[secret["seq"] - 1]
    assert full["body"]["text"] == SECRET
    assert len(full["salt"]) == 64
    content = guessed_content(ph, actor, body_shape, SECRET, full["ts"])
    assert chain.digest_of(chain.canonical_content(content), full["salt"]) == ph["digest"]


def _police_only_event(salted: bool) -> StoredEvent:
    body: dict[str, Any] = {"text": SECRET, "mentions": {"users": [], "orgs": []}, "reply_to": None}
    draft = EventDraft(
        "inc_1", "message.posted", "u_dispatch", "metro-police", "Dana", "cad-4711",
        ("metro-police",), {**body, "urgent": False},
    )  # fmt: skip
    ev = chain.ChainHead("ep", 6, "ab" * 32, 0).append(draft, 1_767_225_604_500)
    if salted:
        return ev
    # Stored the rule-1 way, as the server did before salts.
    digest = chain.digest_of(chain.canonical_content(ev.chained()))
    return dataclasses.replace(ev, salt=None, digest=digest, hash=chain.chain("ab" * 32, digest))


def test_the_same_attack_recovers_the_text_of_an_unsalted_legacy_event() -> None:
    """The attack is sound: against a rule-1 digest it finds the text."""
    actor = {"user": "u_dispatch", "org": "metro-police"}
    shape: dict[str, Any] = {
        "mentions": {"users": [], "orgs": []},
        "reply_to": None,
        "urgent": False,
    }
    window = range(1_767_225_600_000, 1_767_225_605_000)  # 5 s of candidate ts, in ms
    legacy = placeholder(_police_only_event(salted=False))
    started = time.perf_counter()
    assert brute_force(legacy, actor, shape, window) == SECRET
    elapsed = time.perf_counter() - started
    salted = placeholder(_police_only_event(salted=True))
    assert brute_force(salted, actor, shape, window) is None
    print(f"rule 1 digest recovered in {elapsed:.2f} s; rule 2: no match in the whole window")


@pytest.fixture(params=["sqlite", "redis"])
def backend_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiaisonServer]:
    """A server of the test's own on each backend (Redis: its own redis-server)."""
    env: dict[str, str] = {}
    if request.param == "redis":
        redis: RedisServer = request.getfixturevalue("own_redis")
        env = {"LIAISON_REDIS_URL": redis.url, "LIAISON_NODE_ID": "secrecy"}
    srv = LiaisonServer(tmp_path / "data", env=env)
    srv.start()
    yield srv
    srv.stop()
    assert srv.errors_logged() == []


async def _after_clock_moves(ts_ms: int) -> None:
    """Until the clock is past ``ts_ms``, so a later event cannot share its millisecond."""
    while time.time() * 1000 <= ts_ms + 1:
        await asyncio.sleep(0.001)


async def test_a_police_only_event_moves_nothing_an_ngo_reader_sees(
    backend_server: LiaisonServer, clients: list[Any]
) -> None:
    """Neither the list's ``updated`` and order, nor the view's, nor presence."""
    srv = backend_server
    dispatcher = await connect(clients, srv, "dispatch")
    ngo = await connect(clients, srv, "outreach", live=False)
    quiet = await new_incident(dispatcher, "Quiet")
    last = await dispatcher.post(quiet, "Public note")
    await _after_clock_moves(last["ts"])
    busy = await new_incident(dispatcher, "Busy")
    await dispatcher.follow(quiet)
    listed = await ngo.incidents()
    view = await ngo.incident(quiet)
    assert [s["id"] for s in listed][:2] == [busy, quiet]
    await _after_clock_moves(max(s["updated"] for s in listed))

    secret = await dispatcher.post(quiet, SECRET, visibility=["metro-police"])
    after = await ngo.incidents()
    assert [(s["id"], s["updated"]) for s in after][:2] == [
        (s["id"], s["updated"]) for s in listed[:2]
    ]
    assert await ngo.incidents(f"updated_after={listed[0]['updated']}") == []
    now = await ngo.incident(quiet)
    assert now["updated"] == view["updated"] == last["ts"]
    assert now["online"] == view["online"]
    assert SECRET not in orjson.dumps([after, now]).decode()
    # The police reader's list and view do move.
    police_list = await dispatcher.incidents()
    assert (police_list[0]["id"], police_list[0]["updated"]) == (quiet, secret["ts"])
    assert (await dispatcher.incident(quiet))["updated"] == secret["ts"]


async def test_not_shared_and_absent_incidents_are_refused_through_the_same_work(
    own_redis: RedisServer, tmp_path: Path, clients: list[Any]
) -> None:
    """A refusal must not tell "exists, not yours" from "does not exist": the same
    answer, and no projection loaded for either (a load would make one slower;
    on Redis it subscribes the node to the incident, which PUBSUB NUMSUB shows)."""
    nodes = start_nodes(own_redis, tmp_path, 2)
    try:
        dispatcher = await connect(clients, nodes[0], "dispatch")
        ack = await dispatcher.send(
            {"type": "incident.create", "title": "Police only", "category": "crime",
             "priority": "high", "orgs": ["metro-police"]}
        )  # fmt: skip
        hidden, absent = ack["incident"], "inc_0000000000000000"
        ngo = await connect(clients, nodes[1], "outreach")
        redis = aioredis.Redis.from_url(own_redis.url)
        channel = f"liaison:{{{hidden}}}:ev"
        [(_, subscribed_before)] = await redis.pubsub_numsub(channel)
        answers: list[Any] = []
        for incident in (hidden, absent):
            for path in (f"/api/v1/incidents/{incident}", f"/api/v1/incidents/{incident}/timeline"):
                answers.append(await _get(nodes[1], path, ngo.token))
            answers.append((await ngo.follow(incident))["status"])
            with pytest.raises(CommandFailed) as refused:
                await ngo.post(incident, "hello?")
            answers.append(refused.value.code)
        [(_, subscribed_after)] = await redis.pubsub_numsub(channel)
        await redis.aclose()
        assert answers[:4] == answers[4:]
        assert answers[0][0] == 404
        assert answers[0][1]["error"]["code"] == "not_found"
        assert answers[2] == answers[3] == "not_found"
        assert subscribed_after == subscribed_before, "a refused read loaded the projection"
    finally:
        for node in nodes:
            node.stop()
        for node in nodes:
            assert node.errors_logged() == []


async def _get(srv: LiaisonServer, path: str, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(srv.url + path, headers=headers) as r,
    ):
        return r.status, await r.json()
