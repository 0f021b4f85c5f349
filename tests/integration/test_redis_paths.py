"""Redis mode under faults found from outside: dropped callers, lost replies,
lagging subscribers, exhausted pools, outages.

Nodes talk to a real redis-server, most of them through ``FaultProxy``, which
holds or drops Redis replies and freezes connections by what they send.
Clients are real Socket.IO and HTTP clients. A node runs in a subprocess, so
it is started from a thread: the proxy lives on this test's event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from liaison_client import LiaisonClient
from tests.conftest import LiaisonServer, connect, new_incident
from tests.integration.tcp_proxy import FaultProxy
from tests.redis_server import RedisServer

#: RESP of the ZREM that a node sends when a follower's connection is gone.
ZREM = b"$4\r\nZREM\r\n"


def idem_key(incident: str) -> bytes:
    """Every append's client-id lookup names this key (see redis_keys.py)."""
    return f"liaison:{{{incident}}}:idem".encode()


async def start_node(base: Path, name: str, redis_url: str, **env: str) -> LiaisonServer:
    env |= {"LIAISON_REDIS_URL": redis_url, "LIAISON_NODE_ID": name}
    node = LiaisonServer(base / name, env=env)
    await asyncio.to_thread(node.start)
    return node


@pytest.fixture
async def proxy(own_redis: RedisServer) -> AsyncIterator[FaultProxy]:
    fault_proxy = FaultProxy(own_redis.port)
    await fault_proxy.start()
    yield fault_proxy
    await fault_proxy.close()


@pytest.fixture
async def proxied(proxy: FaultProxy, tmp_path: Path) -> AsyncIterator[LiaisonServer]:
    """One node whose every Redis connection goes through ``proxy``."""
    node = await start_node(tmp_path, "proxied", proxy.url)
    yield node
    proxy.release_replies()
    await asyncio.to_thread(node.stop)
    assert node.errors_logged() == [], node.log_path.read_text()[-3000:]


async def probe(client: LiaisonClient) -> None:
    """A round trip on the client's connection that needs no storage.

    The server handles one connection's frames in order, so when this
    answers, every command sent before it has been taken in.
    """
    reply = await client.sio.call("probe", {}, timeout=5)
    assert reply["error"]["code"] == "unknown_type"


def post(incident: str, cid: str, text: str = "hello") -> dict[str, Any]:
    return {"type": "message.post", "id": cid, "incident": incident, "text": text}


async def test_a_retry_dropped_before_its_answer_does_not_stop_the_node(
    proxy: FaultProxy, proxied: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    """The phone retries a stored post and drops before the node answers: the
    node's single writer must keep storing for everyone."""
    dispatcher = await connect(clients, proxied, "dispatch")
    incident = await new_incident(dispatcher)
    phone = await connect(clients, proxied, "outreach")
    await phone.follow(incident, after_seq=1)
    assert not (await phone.send(post(incident, "once")))["duplicate"]

    proxy.hold_replies()
    mark = proxy.mark()
    retry = asyncio.create_task(phone._call(post(incident, "once")))
    await proxy.wait_sent(idem_key(incident), mark)  # the writer looks the retry up
    await phone.close()  # the connection drops before the node answers
    await proxy.wait_sent(ZREM, mark)  # the node has handled the disconnect
    proxy.release_replies()
    retry.cancel()

    dispatcher.ack_timeout = 8.0
    ack = await dispatcher._call(post(incident, "after", "still storing?"))
    assert ack["ok"], ack
    assert not ack["duplicate"]
    async with aiohttp.ClientSession() as http, http.get(proxied.url + "/healthz") as resp:
        health = await resp.json()
    assert resp.status == 200
    assert health["writer"]["healthy"]


async def test_a_cancelled_first_of_two_connections_does_not_stall_the_second(
    proxy: FaultProxy, proxied: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    """Two connections of one user send one new id; the first one drops."""
    dispatcher = await connect(clients, proxied, "dispatch")
    incident = await new_incident(dispatcher)
    first = await connect(clients, proxied, "outreach")
    second = await connect(clients, proxied, "outreach")
    await first.follow(incident, after_seq=1)

    proxy.hold_replies()
    mark = proxy.mark()
    blocker = asyncio.create_task(dispatcher._call(post(incident, "blocker")))
    await proxy.wait_sent(idem_key(incident), mark)  # the writer is busy with it
    sent_first = asyncio.create_task(first._call(post(incident, "same-new-id")))
    await probe(first)
    second.ack_timeout = 8.0
    sent_second = asyncio.create_task(second._call(post(incident, "same-new-id")))
    await probe(second)  # both wait in the same next batch
    await first.close()
    await proxy.wait_sent(ZREM, mark)  # the first caller is gone: its append is cancelled
    sent_first.cancel()
    proxy.release_replies()

    ack = await sent_second
    assert ack["ok"], ack
    assert (await blocker)["ok"]
    later = await second._call(post(incident, "next"))
    assert later["ok"], "the second connection's acks are not stalled"
    timeline = await dispatcher.timeline(incident)
    assert [e["cid"] for e in timeline].count("same-new-id") == 1
    assert ack["seq"] == next(e["seq"] for e in timeline if e["cid"] == "same-new-id")


async def test_a_lost_reply_to_an_append_is_outcome_unknown_and_the_retry_finds_it(
    proxy: FaultProxy, proxied: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    """Redis applied the append but its reply was lost: not "unavailable".

    The append of a message is the MULTI of append.lua and terms.lua (the
    EVALSHA before it is the client-id claim, claim.lua)."""
    dispatcher = await connect(clients, proxied, "dispatch")
    incident = await new_incident(dispatcher)

    proxy.mute_reply_after(b"MULTI")
    ack = await dispatcher._call(post(incident, "lost-reply"))
    assert not ack["ok"]
    assert ack["error"]["code"] == "outcome_unknown"
    assert ack["error"]["retryable"]
    retried = await dispatcher._call(post(incident, "lost-reply"))
    assert retried["ok"]
    assert retried["duplicate"], "it was stored; the retry says so"

    proxy.mute_reply_after(b"MULTI")
    headers = {"Authorization": f"Bearer {dispatcher.token}"}
    url = proxied.url + "/api/v1/commands"
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(url, json=post(incident, "lost-rest")) as resp:
            body = await resp.json()
        assert (resp.status, body["error"]["code"]) == (503, "outcome_unknown")
        async with http.post(url, json=post(incident, "lost-rest")) as resp:
            body = await resp.json()
        assert resp.status == 200
        assert body["duplicate"]
    cids = [e["cid"] for e in await dispatcher.timeline(incident)]
    assert cids.count("lost-reply") == cids.count("lost-rest") == 1


async def test_a_lost_reply_to_the_claim_is_unavailable_and_the_retry_stores_once(
    proxy: FaultProxy, proxied: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    """The client-id claim (claim.lua) runs before the append: with its reply
    lost nothing was stored, so the answer is ``unavailable``; the claim it
    may have left is the post's own, and the retry stores the post once."""
    dispatcher = await connect(clients, proxied, "dispatch")
    incident = await new_incident(dispatcher)

    proxy.mute_reply_after(b"EVALSHA")
    ack = await dispatcher._call(post(incident, "lost-claim"))
    assert not ack["ok"]
    assert ack["error"]["code"] == "unavailable"
    retried = await dispatcher._call(post(incident, "lost-claim"))
    assert retried["ok"]
    assert not retried["duplicate"], "the first attempt stored nothing"
    again = await dispatcher._call(post(incident, "lost-claim"))
    assert again["duplicate"]
    cids = [e["cid"] for e in await dispatcher.timeline(incident)]
    assert cids.count("lost-claim") == 1


async def test_positions_are_checked_against_the_log_not_a_lagging_projection(
    own_redis: RedisServer, proxy: FaultProxy, tmp_path: Path, clients: list[LiaisonClient]
) -> None:
    """Node B's pub/sub link stalls: its cached projection lags behind the log."""
    a = await start_node(tmp_path, "direct", own_redis.url)
    b = await start_node(tmp_path, "lagging", proxy.url)
    try:
        dispatcher = await connect(clients, a, "dispatch")
        incident = await new_incident(dispatcher)
        watcher = await connect(clients, b, "outreach")
        await watcher.follow(incident, after_seq=1)
        assert proxy.freeze_senders_of(b"liaison-sub-lagging") == 1
        head = [(await dispatcher.post(incident, f"while B lags {i}"))["seq"] for i in range(2)]

        reader = await connect(clients, b, "shelter-lead")
        result = await reader.follow(incident, after_seq=head[-1])
        assert result["status"] == "ok", result
        assert result["head_seq"] == head[-1]
        page = await reader.request(
            "GET", f"/api/v1/incidents/{incident}/timeline?after_seq={head[-1]}"
        )
        assert (page["head_seq"], page["events"]) == (head[-1], [])
        assert reader.resyncs == [], "nobody was told to throw their state away"
    finally:
        proxy.release_replies()
        await asyncio.to_thread(b.stop)
        await asyncio.to_thread(a.stop)


async def test_a_subscriber_that_stalls_while_subscribing_is_rebuilt(
    own_redis: RedisServer, proxy: FaultProxy, tmp_path: Path, clients: list[LiaisonClient]
) -> None:
    """Node B's pub/sub connection goes deaf, and so does the next one, during
    its very first command (the handshake): B must not wait on it forever, but
    give up on it, connect again and fill the gap. (A regression guard: the
    subscribe is bounded by the probe timeout; redis-py 8's own handshake
    timeout also ends it after about 5 s.)"""
    a = await start_node(tmp_path, "direct", own_redis.url)
    b = await start_node(tmp_path, "stalling", proxy.url)
    try:
        dispatcher = await connect(clients, a, "dispatch")
        incident = await new_incident(dispatcher)
        watcher = await connect(clients, b, "outreach")
        await watcher.follow(incident, after_seq=1)
        assert proxy.freeze_senders_of(b"liaison-sub-stalling") == 1
        async with asyncio.timeout(20):  # the probe notices, B connects again: frozen too
            while proxy.links_that_sent(b"liaison-sub-stalling") < 2:
                await asyncio.sleep(0.05)
        last = [(await dispatcher.post(incident, f"while B is deaf {i}"))["seq"] for i in range(3)]
        proxy.thaw()
        await watcher.wait_seq(incident, last[-1], timeout=30)
        got = [watcher.events.get_nowait()["seq"] for _ in range(watcher.events.qsize())]
        assert got == list(range(2, last[-1] + 1)), "each event once, in order"
        async with aiohttp.ClientSession() as http, http.get(b.url + "/healthz") as resp:
            assert resp.status == 200, await resp.text()
    finally:
        proxy.release_replies()
        await asyncio.to_thread(b.stop)
        await asyncio.to_thread(a.stop)


async def follow_at_once(node: LiaisonServer, token: str, incident: str, count: int) -> list[str]:
    """``count`` connections of one user follow ``incident`` at the same moment."""
    followers = [LiaisonClient(node.url) for _ in range(count)]
    try:
        for client in followers:
            client.token = token
        await asyncio.gather(*(c.connect(timeout=30) for c in followers))
        results = await asyncio.gather(
            *(c._call({"type": "follow", "incidents": [{"incident": incident}]}) for c in followers)
        )
    finally:
        await asyncio.gather(*(c.close() for c in followers))
    return [r["incidents"][0]["status"] if r.get("ok") else r["error"]["code"] for r in results]


async def test_two_hundred_concurrent_follows_on_one_node(
    own_redis: RedisServer, tmp_path: Path, clients: list[LiaisonClient]
) -> None:
    # 200 connections of one user: past the per-user cap (20) by design.
    node = await start_node(tmp_path, "busy", own_redis.url, LIAISON_MAX_CONNECTIONS_PER_USER="0")
    try:
        dispatcher = await connect(clients, node, "dispatch")
        incident = await new_incident(dispatcher)
        for i in range(5):
            await dispatcher.post(incident, f"before {i}")
        assert dispatcher.token is not None
        statuses = await follow_at_once(node, dispatcher.token, incident, 200)
        print(f"\n200 concurrent follows on one node: {statuses.count('ok')} ok")
        assert statuses == ["ok"] * 200, {s: statuses.count(s) for s in set(statuses)}
    finally:
        await asyncio.to_thread(node.stop)
    assert node.errors_logged() == [], node.log_path.read_text()[-3000:]


async def test_an_outage_answers_unavailable_on_every_read_path(
    own_redis: RedisServer, tmp_path: Path, clients: list[LiaisonClient]
) -> None:
    node = await start_node(tmp_path, "outage", own_redis.url)
    try:
        dispatcher = await connect(clients, node, "dispatch")
        incidents = [await new_incident(dispatcher, f"outage {i}") for i in range(2)]
        own_redis.kill()
        ack = await dispatcher._call(
            {"type": "follow", "incidents": [{"incident": i} for i in incidents]}
        )
        assert ack["ok"], "one follow answers per incident"
        assert [(r["incident"], r["status"]) for r in ack["incidents"]] == [
            (i, "unavailable") for i in incidents
        ]
        assert all(r["retryable"] for r in ack["incidents"])
        for path in (
            "/api/v1/incidents",
            f"/api/v1/incidents/{incidents[0]}",
            f"/api/v1/incidents/{incidents[0]}/timeline",
        ):
            headers = {"Authorization": f"Bearer {dispatcher.token}"}
            async with aiohttp.ClientSession(headers=headers) as http:
                async with http.get(node.url + path) as resp:
                    body = await resp.json()
            assert (resp.status, body["error"]["code"]) == (503, "unavailable"), path
    finally:
        await asyncio.to_thread(node.stop)
    assert node.errors_logged() == [], node.log_path.read_text()[-3000:]
