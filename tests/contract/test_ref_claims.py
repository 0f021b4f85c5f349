"""ReferenceClaims (server/services/ref_claims.py) on both lease backends: one
holder of an external reference at a time, on a node and across nodes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from protocol.errors import ErrorCode, ProtocolError
from server.services.ref_claims import ReferenceClaims
from server.storage.leases import Leases, MemoryLeases
from server.storage.redis_leases import RedisLeases
from tests.redis_server import RedisServer


@pytest.fixture(params=["memory", "redis"])
async def shared_leases(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[Leases, Leases]]:
    """The leases two nodes see: one MemoryLeases in one process, or two Redis clients."""
    if request.param == "memory":
        memory = MemoryLeases()
        yield memory, memory
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    server.flush()
    a, b = aioredis.Redis.from_url(server.url), aioredis.Redis.from_url(server.url)
    try:
        yield RedisLeases(a), RedisLeases(b)
    finally:
        await a.aclose()
        await b.aclose()


async def _overlaps(claims: list[ReferenceClaims], rounds: int) -> int:
    """Holders of one reference inside the block at once, beyond one, over ``rounds``."""
    inside = 0
    overlaps = 0

    async def one(claim: ReferenceClaims) -> None:
        nonlocal inside, overlaps
        async with claim.hold("CAD-1"):
            inside += 1
            overlaps += inside > 1
            await asyncio.sleep(0.001)  # the check and the commit take a while
            inside -= 1

    await asyncio.gather(*(one(claims[i % len(claims)]) for i in range(rounds)))
    return overlaps


async def test_one_holder_at_a_time_on_a_node_and_across_nodes(
    shared_leases: tuple[Leases, Leases],
) -> None:
    first, second = shared_leases
    node_a = ReferenceClaims(first, "node-a")
    node_b = ReferenceClaims(second, "node-b")
    assert await _overlaps([node_a, node_b], 24) == 0
    # Other references do not wait for it.
    async with node_a.hold("CAD-1"):
        async with asyncio.timeout(1):
            async with node_b.hold("CAD-2"):
                pass


async def test_a_claim_held_elsewhere_past_the_wait_is_refused_as_unavailable(
    shared_leases: tuple[Leases, Leases],
) -> None:
    first, second = shared_leases
    stuck = ReferenceClaims(first, "node-a")
    waiting = ReferenceClaims(second, "node-b", wait_s=0.2)
    async with stuck.hold("CAD-1"):
        with pytest.raises(ProtocolError) as refused:
            async with waiting.hold("CAD-1"):
                pytest.fail("held by two nodes")
        assert refused.value.code == ErrorCode.UNAVAILABLE
    async with asyncio.timeout(1):  # released: the other node gets it
        async with waiting.hold("CAD-1"):
            pass


async def test_the_claim_is_released_when_the_block_raises(
    shared_leases: tuple[Leases, Leases],
) -> None:
    first, second = shared_leases
    node_a = ReferenceClaims(first, "node-a")
    with pytest.raises(ValueError, match="refused"):
        async with node_a.hold("CAD-1"):
            raise ValueError("refused")
    async with asyncio.timeout(1):
        async with ReferenceClaims(second, "node-b", wait_s=0.2).hold("CAD-1"):
            pass
