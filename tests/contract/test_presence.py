"""The Presence contract (server/fanout/base.py), run against every implementation."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time

import pytest
import redis.asyncio as aioredis

from server.backends import Backends, running
from server.fanout.base import Presence
from server.fanout.presence import MemoryPresence, RedisPresence
from server.storage import redis_connect
from tests.conftest import ROOT
from tests.contract.conftest import PRESENCE_TTL_S, redis_settings
from tests.processes import end_process
from tests.redis_server import RedisServer


def _typed(client: aioredis.Redis) -> None:
    """Compile-time check (mypy), never run: each implementation is a Presence."""
    memory: Presence = MemoryPresence()
    shared: Presence = RedisPresence(client, "typed", 30.0)
    del memory, shared


def redis_only(presence_set: Backends, request: pytest.FixtureRequest) -> RedisServer:
    if isinstance(presence_set.presence, MemoryPresence):
        pytest.skip("memory presence is single node: its claims die with the process")
    server: RedisServer = request.getfixturevalue("redis_server")
    return server


async def test_join_and_leave_count_connections(presence_set: Backends) -> None:
    presence = presence_set.presence
    assert await presence.online("inc") == []
    await presence.join("inc", "u1", "c1")
    await presence.join("inc", "u2", "c2")
    await presence.join("inc", "u1", "c3")  # a second device of u1
    await presence.join("other", "u3", "c4")
    assert await presence.online("inc") == ["u1", "u2"]
    await presence.leave("inc", "u1", "c1")
    assert await presence.online("inc") == ["u1", "u2"], "u1 is still on c3"
    await presence.leave("inc", "u1", "c3")
    await presence.leave("inc", "u9", "c9")  # never joined: nothing happens
    assert await presence.online("inc") == ["u2"]
    assert await presence.online("other") == ["u3"]


async def test_following_again_never_inflates_presence(presence_set: Backends) -> None:
    """A re-follow (after a gap, a resync) joins a claim held already: one leave ends it."""
    presence = presence_set.presence
    for _ in range(3):
        await presence.join("inc", "u1", "c1")
    await presence.leave("inc", "u1", "c1")
    assert await presence.online("inc") == []


async def test_claims_are_shared_by_the_nodes(
    presence_set: Backends, request: pytest.FixtureRequest
) -> None:
    server = redis_only(presence_set, request)
    async with running(redis_settings(server, "other")) as other:
        await presence_set.presence.join("inc", "u1", "c1")
        await other.presence.join("inc", "u2", "c1")  # same connection id, other node
        assert await other.presence.online("inc") == ["u1", "u2"]
        await other.presence.close()  # a node that stops gives its claims up
        assert await presence_set.presence.online("inc") == ["u1"]


async def test_a_dead_nodes_claims_expire_after_the_ttl(
    presence_set: Backends, request: pytest.FixtureRequest
) -> None:
    server = redis_only(presence_set, request)
    args = [server.url, str(PRESENCE_TTL_S), "inc", "u-doomed"]
    node = subprocess.Popen(
        [sys.executable, "-m", "tests.contract.presence_node", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
    )
    try:
        assert node.stdout is not None
        assert (await asyncio.to_thread(node.stdout.readline)).strip() == b"joined"
        await presence_set.presence.join("inc", "u-alive", "c1")
        # Alive, it renews: its claim outlives several TTLs.
        joined = time.monotonic()
        while time.monotonic() - joined < 3 * PRESENCE_TTL_S:
            assert await presence_set.presence.online("inc") == ["u-alive", "u-doomed"]
            await asyncio.sleep(0.05)  # a polling interval, not a synchronisation
        end_process(node, kill=True)
        killed = time.monotonic()
        online: list[str] = []

        async def expired() -> bool:
            online[:] = await presence_set.presence.online("inc")
            return online == ["u-alive"]

        deadline = killed + 10 * PRESENCE_TTL_S
        while not await expired():
            assert time.monotonic() < deadline, f"still online: {online}"
            await asyncio.sleep(0.05)
        assert time.monotonic() - killed >= PRESENCE_TTL_S / 3, "it expired, not vanished"
        # This node's own claims are renewed meanwhile, far beyond the TTL.
        assert await presence_set.presence.online("inc") == ["u-alive"]
    finally:
        end_process(node, kill=True)
        if node.stdout is not None:
            node.stdout.close()


async def test_close_ends_even_when_the_cancel_lands_while_a_renewal_is_sent(
    presence_set: Backends, request: pytest.FixtureRequest
) -> None:
    """CI once hung here: Python 3.11's wait_for (redis-py sends with it) lost the
    cancellation, and the renewal loop outlived close() (server/wait_for_backport.py).

    A renewal every millisecond, and close() at random points of it: each must end.
    """
    server = redis_only(presence_set, request)
    client = redis_connect.command_client(server.url, 4, 5.0)
    rng = random.Random(13)
    try:
        for attempt in range(150):
            presence = RedisPresence(client, f"busy-{attempt}", ttl_s=0.003)
            await presence.join("inc", "u1", "c1")
            await presence.start()
            await asyncio.sleep(rng.random() * 0.005)  # a point in the renewals, not a sync
            async with asyncio.timeout(10):
                await presence.close()
    finally:
        await client.aclose()
