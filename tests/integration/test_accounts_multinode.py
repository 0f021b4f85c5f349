"""Revocation across two server nodes on one real Redis, and failing closed without it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from liaison_client import CommandFailed, LiaisonClient
from tests.conftest import LiaisonServer, connect
from tests.integration.test_accounts import (
    TARGET_S,
    admin_of,
    cut_off_latency,
    login_refusal,
    watch_disconnect,
)
from tests.integration.test_multinode import start_nodes
from tests.redis_server import RedisServer
from tests.waiting import until


@pytest.fixture
def pair(own_redis: RedisServer, tmp_path: Path) -> Iterator[list[LiaisonServer]]:
    nodes = start_nodes(own_redis, tmp_path, 2)
    yield nodes
    for node in nodes:
        node.stop()
    for node in nodes:
        assert node.errors_logged() == [], node.log_path.read_text()[-3000:]


@pytest.mark.parametrize("action", ["disable", "revoke-sessions"])
async def test_revocation_on_one_node_cuts_off_the_user_on_both(
    pair: list[LiaisonServer], clients: list[LiaisonClient], action: str
) -> None:
    a, b = pair
    admin = await admin_of(clients, a)
    on_a = await connect(clients, a, "outreach")
    on_b = await connect(clients, b, "outreach")
    closed_a, closed_b = watch_disconnect(on_a), watch_disconnect(on_b)
    start = time.monotonic()
    await admin.request("POST", f"/api/v1/users/u_outreach/{action}")
    socket_a, token_a = await cut_off_latency(on_a, pair, start, closed_a)
    socket_b, token_b = await cut_off_latency(on_b, pair, start, closed_b)
    print(
        f"\n{action} on node0 (Redis, 2 nodes): socket closed node0 {socket_a * 1000:.0f} ms,"
        f" node1 {socket_b * 1000:.0f} ms; token refused on both nodes by"
        f" {max(token_a, token_b) * 1000:.0f} ms"
    )
    for latency in (socket_a, socket_b, token_a, token_b):
        assert latency < TARGET_S
    for client in (on_a, on_b):  # told why, so they stop reconnecting
        await until(client.session_ended.is_set, 2, "the client learns its session ended")
    for node in pair:
        for client in (on_a, on_b):
            refreshing = LiaisonClient(node.url)
            clients.append(refreshing)
            refreshing.refresh_token = client.refresh_token
            with pytest.raises(CommandFailed) as refusal:
                await refreshing.refresh()
            assert refusal.value.code == "unauthenticated"
    expected = "unauthenticated" if action == "disable" else None
    assert await login_refusal(b, "outreach", "liaison-demo") == expected


async def test_nodes_fail_closed_without_redis(
    pair: list[LiaisonServer], own_redis: RedisServer, clients: list[LiaisonClient]
) -> None:
    phone = await connect(clients, pair[1], "officer", live=False)
    own_redis.kill()
    for node in pair:
        assert await login_refusal(node, "dispatch", "liaison-demo") == "unavailable"
        refreshing = LiaisonClient(node.url)
        clients.append(refreshing)
        refreshing.refresh_token = phone.refresh_token
        with pytest.raises(CommandFailed) as refusal:
            await refreshing.refresh()
        assert refusal.value.code == "unavailable"
    own_redis.start()
    for node in pair:
        client = LiaisonClient(node.url)
        clients.append(client)

        async def logs_in(client: LiaisonClient = client) -> bool:
            try:
                await client.login("dispatch", "liaison-demo")
            except CommandFailed:
                return False
            return True

        deadline = time.monotonic() + 10
        while not await logs_in():
            assert time.monotonic() < deadline, "logins did not come back with Redis"
            await asyncio.sleep(0.05)
