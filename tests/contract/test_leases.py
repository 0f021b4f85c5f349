"""The Leases contract (server/storage/leases.py), once per backend: memory and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from server.backends import Backends
from server.storage.leases import Leases
from tests.contract.conftest import _started
from tests.waiting import until_true


@pytest.fixture(params=["memory", "redis"])
async def lease_set(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backends]:
    async for backends in _started(request, tmp_path):
        yield backends


async def test_one_holder_at_a_time_renewable_and_released(lease_set: Backends) -> None:
    leases: Leases = lease_set.leases
    assert await leases.claim("deadlines", "a", 10_000)
    assert not await leases.claim("deadlines", "b", 10_000)
    assert await leases.claim("deadlines", "a", 10_000)  # a renewal
    assert await leases.claim("other", "b", 10_000)  # names are independent
    await leases.release("deadlines", "b")  # not b's: nothing happens
    assert not await leases.claim("deadlines", "b", 10_000)
    await leases.release("deadlines", "a")
    assert await leases.claim("deadlines", "b", 10_000)


async def test_a_lease_not_renewed_lapses_to_another_node(lease_set: Backends) -> None:
    leases: Leases = lease_set.leases
    assert await leases.claim("deadlines", "a", 200)
    assert not await leases.claim("deadlines", "b", 200)

    async def taken() -> bool:
        await asyncio.sleep(0.02)
        return await leases.claim("deadlines", "b", 200)

    await until_true(taken, 3, "the lapsed lease taken by b")
    assert not await leases.claim("deadlines", "a", 200)
