"""The WebhookStore contract (server/storage/webhooks.py), per backend.

Two stores opened on one deployment's storage stand for two nodes (or the
server and the CLI): what one writes, the other reads.
"""

from __future__ import annotations

import stat
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from server.backends import WEBHOOKS_DB, build_account_backends
from server.settings import Settings
from server.storage.redis_webhooks import RedisWebhookStore
from server.storage.webhooks import (
    DeliveryRecord,
    DeliveryState,
    SigningSecret,
    SqliteWebhookStore,
    Subscription,
    WebhookConflict,
    WebhookStore,
)
from tests.contract.conftest import embedded_settings, redis_settings
from tests.redis_server import RedisServer
from tests.waiting import until_true


def _typed(path: Path, client: aioredis.Redis) -> None:
    """Compile-time check (mypy), never run: each implementation matches its protocol."""
    stores: list[WebhookStore] = [SqliteWebhookStore(path), RedisWebhookStore(client)]
    del stores


@pytest.fixture(params=["sqlite", "redis"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return embedded_settings(tmp_path)
    redis_server: RedisServer = request.getfixturevalue("redis_server")
    redis_server.flush()
    return redis_settings(redis_server, "contract")


@pytest.fixture
async def nodes(settings: Settings) -> AsyncIterator[tuple[WebhookStore, WebhookStore]]:
    sets = [build_account_backends(settings), build_account_backends(settings)]
    stores: list[WebhookStore] = []
    for backends in sets:
        assert backends.webhooks is not None
        await backends.webhooks.open()
        stores.append(backends.webhooks)
    yield stores[0], stores[1]
    for store, backends in zip(stores, sets, strict=True):
        await store.close()
        await backends.close()


def now_ms() -> int:
    return int(time.time() * 1000)


def a_sub(sub_id: str = "wh_0123456789abcdef", **changes: object) -> Subscription:
    values: dict[str, object] = {
        "id": sub_id,
        "org_id": "harbour-shelter",
        "url": "https://receiver.example/hook",
        "incidents": None,
        "categories": ("welfare",),
        "types": ("message.posted", "restricted"),
        "secrets": (SigningSecret("whsec_AAAA", now_ms()),),
        "created_ms": now_ms(),
        "created_by": "u_admin",
        **changes,
    }
    return Subscription(**values)  # type: ignore[arg-type]


async def test_a_subscription_is_read_back_whole_by_another_node(
    nodes: tuple[WebhookStore, WebhookStore],
) -> None:
    first, second = nodes
    sub = a_sub()
    await first.create(sub)
    assert await second.get(sub.id) == sub
    assert await second.all() == [sub]
    with pytest.raises(WebhookConflict):
        await second.create(replace(sub, url="https://other.example/"))
    assert await first.get(sub.id) == sub
    assert await first.get("wh_unknown") is None


async def test_state_and_secrets_change_without_undoing_each_other(
    nodes: tuple[WebhookStore, WebhookStore],
) -> None:
    first, second = nodes
    sub = a_sub()
    await first.create(sub)
    state = DeliveryState(failures=3, failing_since_ms=5, next_attempt_ms=9)
    assert await first.save_state(sub.id, state)
    rotated = (SigningSecret("whsec_BBBB", 2), SigningSecret("whsec_AAAA", 1, expires_ms=99))
    assert await second.set_secrets(sub.id, rotated)
    stored = await first.get(sub.id)
    assert stored is not None
    assert stored.state == state
    assert stored.secrets == rotated
    assert not await first.save_state("wh_unknown", state)


async def test_the_cursor_is_a_compare_and_set_and_a_rewind_wins(
    nodes: tuple[WebhookStore, WebhookStore],
) -> None:
    first, second = nodes
    sub = a_sub()
    await first.create(sub)
    assert await first.cursors(sub.id) == {}
    assert await first.advance(sub.id, "inc_a", None, 0)
    assert not await second.advance(sub.id, "inc_a", None, 3)  # someone set it already
    assert await second.advance(sub.id, "inc_a", 0, 3)
    assert await first.rewind(sub.id, "inc_a", 1)  # a replay
    assert not await first.advance(sub.id, "inc_a", 3, 4)  # the worker's stale view
    assert await first.advance(sub.id, "inc_b", None, 7)
    assert await second.cursors(sub.id) == {"inc_a": 1, "inc_b": 7}
    assert not await first.advance("wh_unknown", "inc_a", None, 1)


async def test_the_delivery_log_keeps_the_newest(
    nodes: tuple[WebhookStore, WebhookStore],
) -> None:
    first, second = nodes
    sub = a_sub()
    await first.create(sub)
    for seq in range(1, 8):
        entry = DeliveryRecord(ts_ms=seq, kind="attempt", incident="inc_a", seq=seq, status=500)
        await first.record(sub.id, entry, keep=5)
    got = await second.deliveries(sub.id, 100)
    assert [d.seq for d in got] == [7, 6, 5, 4, 3]
    assert got[0] == DeliveryRecord(ts_ms=7, kind="attempt", incident="inc_a", seq=7, status=500)
    assert [d.seq for d in await second.deliveries(sub.id, 2)] == [7, 6]


async def test_one_node_holds_a_lease_until_it_lapses_or_is_released(
    nodes: tuple[WebhookStore, WebhookStore],
) -> None:
    first, second = nodes
    sub = a_sub()
    await first.create(sub)
    assert await first.claim(sub.id, "node-a", now_ms(), 300)
    assert not await second.claim(sub.id, "node-b", now_ms(), 300)
    assert await first.claim(sub.id, "node-a", now_ms(), 300)  # a renewal
    await second.release(sub.id, "node-b")  # not node-b's: nothing changes
    assert not await second.claim(sub.id, "node-b", now_ms(), 300)
    await until_true(
        lambda: second.claim(sub.id, "node-b", now_ms(), 300), 5, "the lapsed lease taken over"
    )
    await second.release(sub.id, "node-b")
    assert await first.claim(sub.id, "node-a", now_ms(), 300)


async def test_delete_removes_everything_and_later_writes_are_ignored(
    nodes: tuple[WebhookStore, WebhookStore],
) -> None:
    first, second = nodes
    sub, other = a_sub(), a_sub("wh_fedcba9876543210")
    await first.create(sub)
    await first.create(other)
    await first.advance(sub.id, "inc_a", None, 2)
    await first.record(sub.id, DeliveryRecord(1, "attempt"), 10)
    assert await first.claim(sub.id, "node-a", now_ms(), 60_000)
    assert await second.delete(sub.id)
    assert not await second.delete(sub.id)
    assert await first.get(sub.id) is None
    assert [s.id for s in await first.all()] == [other.id]
    assert await first.cursors(sub.id) == {}
    assert await first.deliveries(sub.id, 10) == []
    assert not await first.rewind(sub.id, "inc_a", 0)
    await first.record(sub.id, DeliveryRecord(2, "attempt"), 10)
    assert await first.deliveries(sub.id, 10) == []
    assert await second.claim(sub.id, "node-b", now_ms(), 1000)  # its lease went too


async def test_the_embedded_file_is_private(tmp_path: Path) -> None:
    """It holds the signing secrets."""
    store = SqliteWebhookStore(tmp_path / WEBHOOKS_DB)
    await store.open()
    await store.create(a_sub())
    await store.close()
    assert stat.S_IMODE((tmp_path / WEBHOOKS_DB).stat().st_mode) == 0o600
