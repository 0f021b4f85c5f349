"""Redis high availability: Sentinel failover under load, and the durable (WAIT) setting.

Real processes only: a master, two replicas and three Sentinels
(tests/redis_sentinel.py), two Liaison nodes given the ``redis+sentinel://``
URL, real Socket.IO clients posting steadily. The master is killed with
SIGKILL; each test reports what it measured (pytest -s shows it).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from liaison_client import CommandFailed, LiaisonClient
from server.backends import running
from tests.conftest import LiaisonServer, connect, new_incident
from tests.contract.conftest import redis_settings
from tests.integration.test_faults import Poster
from tests.redis_sentinel import SentinelGroup
from tests.redis_server import RedisServer
from tests.waiting import until

#: Short enough that a post refused during the failover is retried quickly,
#: long enough for a loopback replica's acknowledgement on a loaded machine
#: (500 ms was not, once, at a load average of 15 on 2 cores).
REPLICA_TIMEOUT_MS = 1000


def durable_env(url: str, node: str) -> dict[str, str]:
    return {
        "LIAISON_REDIS_URL": url,
        "LIAISON_NODE_ID": node,
        "LIAISON_REDIS_MIN_REPLICAS": "1",
        "LIAISON_REDIS_REPLICA_TIMEOUT_MS": str(REPLICA_TIMEOUT_MS),
        "LIAISON_PRESENCE_TTL_S": "1.5",
    }


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """Shared by this module's tests; the failover test, which kills the master, is last."""
    group = SentinelGroup(tmp_path_factory.mktemp("sentinel-group"))
    try:
        group.start(ready=False)  # the nodes start meanwhile (sentinel_nodes)
        yield group
    finally:
        group.stop()


@pytest.fixture(scope="module")
def sentinel_nodes(
    sentinels: SentinelGroup, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[LiaisonServer]]:
    base = tmp_path_factory.mktemp("sentinel-nodes")
    nodes = [
        LiaisonServer(base / f"node{i}", env=durable_env(sentinels.url, f"node{i}"))
        for i in range(2)
    ]
    try:
        with ThreadPoolExecutor(1) as pool:
            # One after another: two nodes seeding the demo data at once race
            # (seed_demo's directory reload). The Sentinels settle meanwhile.
            first = pool.submit(nodes[0].start)
            sentinels.wait_ready()
            first.result()
        nodes[1].start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()  # also a node whose start failed: no process left behind
    for node in nodes:
        assert node.errors_logged() == [], node.log_path.read_text()[-3000:]


async def test_unconfirmed_append_is_outcome_unknown_then_retried_idempotently(
    sentinels: SentinelGroup, sentinel_nodes: list[LiaisonServer], clients: list[LiaisonClient]
) -> None:
    """No replica confirms in time: the post is refused as outcome_unknown, never acked."""
    dispatcher = await connect(clients, sentinel_nodes[0], "dispatch")
    incident = await new_incident(dispatcher)  # acked: the replicas confirmed it
    command = {"type": "message.post", "id": "paused-1", "incident": incident, "text": "x"}
    pids = [r.proc.pid for r in sentinels.replicas if r.proc is not None]
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)  # alive to the master, but it acknowledges nothing
    try:
        ack = await dispatcher._call(dict(command))
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    assert not ack["ok"], "acknowledged although no replica confirmed it"
    failure = CommandFailed(ack["error"])
    assert (failure.code, failure.retryable) == ("outcome_unknown", True)
    retried = await dispatcher.send(dict(command))  # the same id, once the replicas are back
    assert retried["duplicate"] is True, "it was stored on the master: the original comes back"
    timeline = await dispatcher.timeline(incident)
    assert [e["cid"] for e in timeline].count("paused-1") == 1


async def test_master_killed_under_load_loses_no_acknowledged_event(
    sentinels: SentinelGroup, sentinel_nodes: list[LiaisonServer], clients: list[LiaisonClient]
) -> None:
    a, b = sentinel_nodes
    dispatcher = await connect(clients, a, "dispatch")
    incident = await new_incident(dispatcher)
    outreach = await connect(clients, b, "outreach")
    watcher = await connect(clients, b, "outreach")
    await watcher.follow(incident, after_seq=1)
    posters = [Poster(dispatcher, incident), Poster(outreach, incident)]
    tasks = [asyncio.create_task(p.run()) for p in posters]

    def acked() -> int:
        return sum(len(p.acked) for p in posters)

    await until(lambda: acked() >= 40, 20, "posts acknowledged before the kill")
    old = sentinels.master.port
    acked_before = acked()
    killed_at = time.monotonic()
    sentinels.master.kill()  # kill -9: whatever the replicas had not confirmed is gone
    promoted = await asyncio.to_thread(sentinels.wait_promoted, old)
    promoted_in = time.monotonic() - killed_at
    acked_at_promotion = acked()
    await until(lambda: acked() >= acked_at_promotion + 40, 30, "posts acknowledged after")
    resumed_in = time.monotonic() - killed_at
    for poster in posters:
        poster.stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 30)

    timeline = await dispatcher.timeline(incident)
    seqs = [e["seq"] for e in timeline]
    assert seqs == list(range(1, len(timeline) + 1)), "gapless"
    key = {(e["actor"]["user"], e["cid"]): e["seq"] for e in timeline}
    assert len(key) == len(timeline), "no event stored twice"
    creator = timeline[0]["actor"]["user"]
    other = {e["actor"]["user"] for e in timeline} - {creator}
    assert len(other) == 1
    stored = {
        (who, cid): seq
        for (user, cid), seq in key.items()
        for who in ["dispatch" if user == creator else "outreach"]
    }
    for who, poster in zip(("dispatch", "outreach"), posters, strict=True):
        for cid, seq in poster.acked.items():
            # The acknowledged event is the one at the acknowledged seq.
            assert stored.get((who, cid)) == seq, f"acknowledged {who} {cid}@{seq} is lost"
    last = max(max(p.acked.values()) for p in posters)
    await watcher.wait_seq(incident, last, timeout=20)
    got = [watcher.events.get_nowait() for _ in range(watcher.events.qsize())]
    assert [e["seq"] for e in got] == list(range(2, len(got) + 2)), "each event once, in order"
    assert [e["hash"] for e in got] == [e["hash"] for e in timeline[1 : len(got) + 1]]
    refused = sum(p.refused_retryable for p in posters)
    print(
        f"\nsentinel failover (durable, WAIT 1): {acked()} acked ({acked_before} before the "
        f"kill), 0 lost; replica on port {promoted.port} promoted {promoted_in:.1f}s after the "
        f"kill, posts acknowledged again by {resumed_in:.1f}s; {refused} refused as retryable; "
        f"{len(got)} delivered in order to a follower on the other node"
    )
    assert refused > 0, "the failover was visible to the posters as retryable refusals"


async def test_idle_command_connections_are_closed_when_redis_goes(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    """Pooled connections left idle through a Redis restart are dead, and each
    failed the first command sent on it afterwards (a login refused, an audit
    record not stored). The broker's subscriber sees Redis go at once and
    closes them, so the commands after the restart connect afresh."""
    async with running(redis_settings(own_redis, "n")) as node:
        broker: Any = node.broker
        await until(broker.connected.is_set, 10, "subscribed")
        client = broker._redis  # the node's shared command client
        assert all(await asyncio.gather(*(client.ping() for _ in range(8))))
        idle = list(client.connection_pool._available_connections)
        assert len(idle) >= 2, "the pings left idle connections in the pool"
        own_redis.kill()
        await until(lambda: not broker.connected.is_set(), 10, "the subscriber sees it")
        await until(lambda: not any(c.is_connected for c in idle), 5, "idle ones closed")
        own_redis.start()
        await until(broker.connected.is_set, 20, "subscribed again")
        assert all(await asyncio.gather(*(client.ping() for _ in range(8))))
