"""The LoginThrottle contract (server/throttle.py), run against both implementations.

Real time, short windows: the Redis implementation keeps its clock in Redis
(key expiries), so no clock is injected; waits poll ``retry_after``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from server.throttle import LoginThrottle, MemoryLoginThrottle, RedisLoginThrottle, ThrottleRule
from tests.redis_server import RedisServer

RULE = ThrottleRule(limit=2, window_s=4.0)


@pytest.fixture(params=["memory", "redis"])
async def throttle(request: pytest.FixtureRequest) -> AsyncIterator[LoginThrottle]:
    if request.param == "memory":
        yield MemoryLoginThrottle()
        return
    redis_server: RedisServer = request.getfixturevalue("redis_server")
    redis_server.flush()
    client = aioredis.Redis.from_url(redis_server.url)
    shared: LoginThrottle = RedisLoginThrottle(client)
    yield shared
    await client.aclose()


async def fail(throttle: LoginThrottle, *keys: str, rule: ThrottleRule = RULE) -> None:
    await throttle.failed(list(keys), [rule] * len(keys))


async def wait_unlocked(throttle: LoginThrottle, key: str, deadline_s: float = 10.0) -> None:
    deadline = time.monotonic() + deadline_s
    while await throttle.retry_after([key]) > 0:
        assert time.monotonic() < deadline, "the lock never ended"
        await asyncio.sleep(0.05)


async def test_the_limit_th_failure_locks_for_a_second(throttle: LoginThrottle) -> None:
    await fail(throttle, "user:ann")
    assert await throttle.retry_after(["user:ann"]) == 0
    await fail(throttle, "user:ann")
    wait = await throttle.retry_after(["user:ann", "addr:10.0.0.1"])
    assert 0 < wait <= 1.0
    assert await throttle.retry_after(["user:bob"]) == 0, "keys are independent"


async def test_each_further_failure_doubles_the_lock(throttle: LoginThrottle) -> None:
    await fail(throttle, "user:ann")
    await fail(throttle, "user:ann")
    await wait_unlocked(throttle, "user:ann")
    await fail(throttle, "user:ann")
    assert 1.0 < await throttle.retry_after(["user:ann"]) <= 2.0


async def test_success_clears_its_key_only(throttle: LoginThrottle) -> None:
    await fail(throttle, "user:ann", "addr:10.0.0.1")
    await fail(throttle, "user:ann", "addr:10.0.0.1")
    await throttle.succeeded("user:ann")
    assert await throttle.retry_after(["user:ann"]) == 0
    assert await throttle.retry_after(["addr:10.0.0.1"]) > 0


async def test_failures_are_forgotten_after_the_window(throttle: LoginThrottle) -> None:
    short = ThrottleRule(limit=2, window_s=0.3)
    await fail(throttle, "user:ann", rule=short)
    await asyncio.sleep(0.4)  # the window itself is what is under test
    await fail(throttle, "user:ann", rule=short)
    assert await throttle.retry_after(["user:ann"]) == 0, "the first failure was forgotten"


def test_the_back_off_doubles_and_never_outlasts_the_window() -> None:
    rule = ThrottleRule(limit=5, window_s=900.0)
    assert [rule.lock_s(n) for n in (1, 4, 5, 6, 7)] == [0, 0, 1, 2, 4]
    assert rule.lock_s(15) == 900.0
    assert rule.lock_s(10_000) == 900.0
