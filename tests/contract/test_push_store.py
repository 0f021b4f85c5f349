"""The PushStore contract (server/storage/push.py), per backend: two stores on one
deployment's storage stand for two nodes (what one writes, the other reads)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from server.storage.push import PushStore, PushSubscription, SqlitePushStore
from server.storage.redis_push import RedisPushStore
from tests.redis_server import RedisServer


def _typed(path: Path, client: aioredis.Redis) -> None:
    """Compile-time check (mypy), never run: each implementation matches its protocol."""
    stores: list[PushStore] = [SqlitePushStore(path), RedisPushStore(client)]
    del stores


def sub(endpoint: str = "https://push.example/a", user: str = "u_a") -> PushSubscription:
    return PushSubscription(endpoint, "BKEY", "AUTH", user, "fam1", 1_000, 2_000)


@pytest.fixture(params=["sqlite", "redis"])
async def stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[PushStore, PushStore]]:
    if request.param == "sqlite":
        pair: tuple[PushStore, PushStore] = (
            SqlitePushStore(tmp_path / "push.db"),
            SqlitePushStore(tmp_path / "push.db"),
        )
        clients: list[aioredis.Redis] = []
    else:
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        redis_server.flush()
        clients = [aioredis.from_url(redis_server.url), aioredis.from_url(redis_server.url)]
        pair = (RedisPushStore(clients[0]), RedisPushStore(clients[1]))
    for store in pair:
        await store.open()
    yield pair
    for store in pair:
        await store.close()
    for client in clients:
        await client.aclose()


async def test_a_subscription_is_stored_by_endpoint_and_read_by_another_node(
    stores: tuple[PushStore, PushStore],
) -> None:
    one, other = stores
    assert await other.users() == []
    await one.add(sub())
    await one.add(sub("https://push.example/b"))
    assert await other.users() == ["u_a"]
    assert [s.endpoint for s in await other.of_user("u_a")] == [
        "https://push.example/a",
        "https://push.example/b",
    ]
    assert (await other.of_user("u_a"))[0] == sub()
    await one.add(replace(sub(), auth="NEW"))  # the same browser again: replaced
    assert [s.auth for s in await other.of_user("u_a")] == ["NEW", "AUTH"]


async def test_an_endpoint_moves_to_its_new_user_and_only_its_owner_removes_it(
    stores: tuple[PushStore, PushStore],
) -> None:
    one, other = stores
    await one.add(sub())
    await other.add(sub(user="u_b"))  # signed in as someone else on that browser
    assert await one.users() == ["u_b"]
    assert await one.of_user("u_a") == []
    assert not await one.remove("https://push.example/a", "u_a")
    assert await one.remove("https://push.example/a", "u_b")
    assert not await other.remove("https://push.example/a")
    assert await other.users() == []
    await one.add(sub())
    assert await other.remove("https://push.example/a")  # a 410: whoever owns it


async def test_cursors_are_per_user_and_outlive_the_subscriptions(
    stores: tuple[PushStore, PushStore],
) -> None:
    one, other = stores
    assert await other.cursor("u_a") is None
    await one.set_cursor("u_a", "e-1-0")
    await one.set_cursor("u_a", "e-2-3")
    await one.set_cursor("u_b", "e-9-0")
    assert await other.cursor("u_a") == "e-2-3"
    await one.add(sub())
    await one.remove(sub().endpoint)
    assert await other.cursor("u_a") == "e-2-3"
