"""Faults on the Redis deployment: Redis restarts, a cut subscriber connection.

Each test runs its own redis-server (AOF on) and nodes, and reports the counts
it measured (pytest -s shows them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import redis

from liaison_client import CommandFailed, LiaisonClient
from tests.conftest import LiaisonServer, connect, new_incident
from tests.integration.tcp_proxy import FreezableProxy
from tests.integration.test_multinode import start_nodes
from tests.redis_server import RedisServer
from tests.waiting import until


@pytest.fixture
def two_nodes(own_redis: RedisServer, tmp_path: Path) -> Iterator[list[LiaisonServer]]:
    nodes = start_nodes(own_redis, tmp_path, 2)
    yield nodes
    for node in nodes:
        node.stop()


class Poster:
    """Posts steadily; counts what was acknowledged and what was refused."""

    def __init__(self, client: LiaisonClient, incident: str) -> None:
        self.client, self.incident = client, incident
        self.acked: dict[str, int] = {}
        self.refused_retryable = 0
        self.outage_seen = False
        self.stop = asyncio.Event()

    async def run(self, interval: float = 0.01) -> None:
        i = 0
        while not self.stop.is_set():
            command = {
                "type": "message.post",
                "id": f"steady-{i}",
                "incident": self.incident,
                "text": f"steady {i}",
            }
            for _ in range(200):  # this poster retries as long as it takes, same id
                try:
                    ack = await self.client._call(dict(command))
                except (TimeoutError, OSError):
                    self.outage_seen = True
                    await asyncio.sleep(0.05)
                    continue
                if ack.get("ok"):
                    self.acked[command["id"]] = ack["seq"]
                    break
                failure = CommandFailed(ack["error"])
                assert failure.retryable, ack  # never a terminal error for a valid post
                self.refused_retryable += 1
                self.outage_seen = True
                await asyncio.sleep(0.05)
            i += 1
            await asyncio.sleep(interval)


async def test_redis_restart_loses_no_acknowledged_event(
    own_redis: RedisServer, two_nodes: list[LiaisonServer], clients: list[LiaisonClient]
) -> None:
    a, b = two_nodes
    dispatcher = await connect(clients, a, "dispatch")
    incident = await new_incident(dispatcher)
    watcher = await connect(clients, b, "outreach")
    await watcher.follow(incident, after_seq=1)
    poster = Poster(dispatcher, incident)
    task = asyncio.create_task(poster.run())

    await until(lambda: len(poster.acked) >= 30, 20, "posts acknowledged before the kill")
    acked_before = len(poster.acked)
    own_redis.kill()  # kill -9: no shutdown, AOF on disk
    # The outage is seen: posts are refused as retryable or go unanswered.
    await until(lambda: poster.outage_seen, 20, "the poster noticed the outage")
    own_redis.start()
    acked_at_restart = len(poster.acked)
    await until(
        lambda: len(poster.acked) >= acked_at_restart + 30, 30, "posts acknowledged after restart"
    )
    poster.stop.set()
    await asyncio.wait_for(task, 30)

    last = max(poster.acked.values())
    timeline = await dispatcher.timeline(incident)
    stored = [e["cid"] for e in timeline if e["type"] == "message.posted"]
    assert [e["seq"] for e in timeline] == list(range(1, len(timeline) + 1)), "gapless"
    assert len(stored) == len(set(stored)), "no event stored twice"
    assert set(poster.acked) <= set(stored), "every acknowledged event is in the log"
    await watcher.wait_seq(incident, last, timeout=20)
    got = [watcher.events.get_nowait() for _ in range(watcher.events.qsize())]
    assert [e["seq"] for e in got] == list(range(2, len(got) + 2)), "each event once, in order"
    assert {e["cid"] for e in got} >= set(poster.acked)
    print(
        f"\nredis restart: {len(poster.acked)} acked ({acked_before} before the kill), "
        f"{poster.refused_retryable} refused as retryable during the outage, "
        f"0 lost, {len(got)} delivered to the subscriber on the other node"
    )
    assert poster.refused_retryable > 0, "the outage was visible to the poster as 'unavailable'"
    for node in two_nodes:
        assert node.errors_logged() == []


def _kill_named(client: redis.Redis, name: str) -> int:
    killed = 0
    for entry in client.client_list():
        if entry.get("name") == name:
            client.client_kill_filter(_id=entry["id"])
            killed += 1
    return killed


async def test_cut_subscriber_connection_is_noticed_and_gap_filled(
    own_redis: RedisServer, two_nodes: list[LiaisonServer], clients: list[LiaisonClient]
) -> None:
    a, b = two_nodes
    dispatcher = await connect(clients, a, "dispatch")
    incident = await new_incident(dispatcher)
    watcher = await connect(clients, b, "outreach")
    await watcher.follow(incident, after_seq=1)
    await dispatcher.post(incident, "before the cut")
    await watcher.wait_seq(incident, 2)

    async def connections() -> int:
        """node1's subscriber connections so far (the health answer is 503 while it is down)."""
        async with aiohttp.ClientSession() as http, http.get(b.url + "/healthz") as resp:
            health = await resp.json()
        assert resp.status == (200 if health["subscriber"]["connected"] else 503)
        return int(health["subscriber"]["connections"])

    cuts = 0
    acked = []
    for round_ in range(5):
        before = await connections()
        client = redis.Redis(port=own_redis.port)
        try:
            cuts += _kill_named(client, "liaison-sub-node1")
        finally:
            client.close()
        acked += [(await dispatcher.post(incident, f"cut {round_}.{i}"))["seq"] for i in range(10)]
        async with asyncio.timeout(20):
            while await connections() == before:  # wait until node1 has resubscribed
                await asyncio.sleep(0.05)
    started = time.monotonic()
    await watcher.wait_seq(incident, acked[-1], timeout=20)
    recovered_in = time.monotonic() - started
    got = [watcher.events.get_nowait()["seq"] for _ in range(watcher.events.qsize())]
    assert got == list(range(2, acked[-1] + 1))
    assert await connections() == 1 + cuts
    print(
        f"\npub/sub cut {cuts} times on node1: {len(acked)} events posted meanwhile, "
        f"0 missed; the last one arrived {recovered_in:.2f}s after node1 was back"
    )


async def test_deaf_subscriber_is_noticed_by_its_liveness_probe(
    own_redis: RedisServer, tmp_path: Path, clients: list[LiaisonClient]
) -> None:
    """A half-open link (no error, no data) to Redis is found by the probe, not by luck."""
    proxy = FreezableProxy(own_redis.port)
    await proxy.start()
    direct = LiaisonServer(
        tmp_path / "direct", env={"LIAISON_REDIS_URL": own_redis.url, "LIAISON_NODE_ID": "direct"}
    )
    proxied = LiaisonServer(
        tmp_path / "proxied",
        env={
            "LIAISON_REDIS_URL": f"redis://127.0.0.1:{proxy.port}/0",
            "LIAISON_NODE_ID": "proxied",
        },
    )
    try:
        await asyncio.to_thread(direct.start)
        await asyncio.to_thread(proxied.start)
        dispatcher = await connect(clients, direct, "dispatch")
        incident = await new_incident(dispatcher)
        watcher = await connect(clients, proxied, "outreach")
        await watcher.follow(incident, after_seq=1)
        await dispatcher.post(incident, "before")
        await watcher.wait_seq(incident, 2)

        frozen = proxy.freeze_existing()
        started = time.monotonic()
        acked = [(await dispatcher.post(incident, f"while deaf {i}"))["seq"] for i in range(20)]
        await watcher.wait_seq(incident, acked[-1], timeout=30)
        recovered_in = time.monotonic() - started
        got = [watcher.events.get_nowait()["seq"] for _ in range(watcher.events.qsize())]
        assert got == list(range(2, acked[-1] + 1))
        print(
            f"\ndeaf subscriber: {frozen} connections frozen, 20 events posted, 0 missed, "
            f"recovered by the probe in {recovered_in:.1f}s"
        )
    finally:
        await asyncio.to_thread(proxied.stop)
        await asyncio.to_thread(direct.stop)
        await proxy.close()
