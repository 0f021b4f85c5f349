"""The SessionStore and AuditLog contracts (server/storage/sessions.py, audit.py), per backend.

Two stores built from one deployment's settings stand for two nodes (or the
server and the CLI): what one writes, the other's feed announces.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from server.backends import AccountBackends, build_account_backends
from server.settings import Settings
from server.storage.audit import AuditEntry, AuditLog, SqliteAuditLog, verify_records
from server.storage.redis_audit import RedisAuditLog
from server.storage.redis_sessions import RedisSessionStore
from server.storage.sessions import Revocation, SessionStore, SqliteSessionStore
from tests.contract.conftest import embedded_settings, redis_settings
from tests.integration.tcp_proxy import FreezableProxy
from tests.redis_server import RedisServer
from tests.waiting import until

HOUR_MS = 3_600_000


def _typed(path: Path, client: aioredis.Redis) -> None:
    """Compile-time check (mypy), never run: each implementation matches its protocol."""
    stores: list[SessionStore] = [SqliteSessionStore(path), RedisSessionStore(client, "")]
    logs: list[AuditLog] = [SqliteAuditLog(path), RedisAuditLog(client)]
    del stores, logs


@pytest.fixture(params=["sqlite", "redis"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return embedded_settings(tmp_path)
    redis_server: RedisServer = request.getfixturevalue("redis_server")
    redis_server.flush()
    return redis_settings(redis_server, "contract")


async def _node(settings: Settings) -> AccountBackends:
    backends = build_account_backends(settings)
    await backends.start()
    return backends


@pytest.fixture
async def nodes(settings: Settings) -> AsyncIterator[tuple[AccountBackends, AccountBackends]]:
    first, second = await _node(settings), await _node(settings)
    yield first, second
    await first.close()
    await second.close()


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_rotation_replaces_the_token(nodes: tuple[AccountBackends, AccountBackends]) -> None:
    store = nodes[0].sessions
    t = now_ms()
    await store.start_family("f1", "u1", "h1", t, HOUR_MS)
    assert (await store.rotate("f1", "h1", "h2", t + 1, HOUR_MS, HOUR_MS)).status == "ok"
    rotated = await nodes[1].sessions.rotate("f1", "h2", "h3", t + 2, HOUR_MS, HOUR_MS)
    assert (rotated.status, rotated.user) == ("ok", "u1")


async def test_reuse_ends_the_family_everywhere(
    nodes: tuple[AccountBackends, AccountBackends],
) -> None:
    first, second = nodes
    seen: list[Revocation] = []

    async def listener(revocation: Revocation) -> None:
        seen.append(revocation)

    second.sessions.listen(listener)
    await until(lambda: second.sessions.feed_up, 5, "the feed is up")
    t = now_ms()
    await first.sessions.start_family("f1", "u1", "h1", t, HOUR_MS)
    await first.sessions.rotate("f1", "h1", "h2", t, HOUR_MS, HOUR_MS)
    reused = await first.sessions.rotate("f1", "h1", "hx", t, HOUR_MS, HOUR_MS)
    assert (reused.status, reused.user) == ("reused", "u1")
    # The legitimate holder's token is dead too: the family is gone.
    assert (await first.sessions.rotate("f1", "h2", "h3", t, HOUR_MS, HOUR_MS)).status == "unknown"
    await until(lambda: any(r.kind == "end" for r in seen), 2, "the end is announced")
    assert [r for r in seen if r.kind == "end"] == [Revocation("end", "u1", "f1", t)]
    state = await second.sessions.state(t - 1)
    assert state.ended == {"f1": t}


async def test_a_forged_hash_changes_nothing(
    nodes: tuple[AccountBackends, AccountBackends],
) -> None:
    store, t = nodes[0].sessions, now_ms()
    await store.start_family("f1", "u1", "h1", t, HOUR_MS)
    assert (await store.rotate("f1", "nope", "h2", t, HOUR_MS, HOUR_MS)).status == "unknown"
    assert (await store.rotate("nofamily", "h1", "h2", t, HOUR_MS, HOUR_MS)).status == "unknown"
    assert (await store.rotate("f1", "h1", "h2", t, HOUR_MS, HOUR_MS)).status == "ok"


async def test_idle_and_old_families_expire(
    nodes: tuple[AccountBackends, AccountBackends],
) -> None:
    store, t = nodes[0].sessions, now_ms()
    await store.start_family("idle", "u1", "h1", t, HOUR_MS)
    assert (await store.rotate("idle", "h1", "h2", t + 1001, 1000, HOUR_MS)).status == "expired"
    assert (await store.rotate("idle", "h1", "h2", t + 1002, HOUR_MS, HOUR_MS)).status == "unknown"
    await store.start_family("old", "u1", "g1", t, HOUR_MS)
    assert (await store.rotate("old", "g1", "g2", t + 500, 1000, HOUR_MS)).status == "ok"
    assert (await store.rotate("old", "g2", "g3", t + 900, 1000, 800)).status == "expired"


async def test_revoke_user_ends_every_family_and_is_announced(
    nodes: tuple[AccountBackends, AccountBackends],
) -> None:
    first, second = nodes
    seen: list[Revocation] = []

    async def listener(revocation: Revocation) -> None:
        seen.append(revocation)

    second.sessions.listen(listener)
    await until(lambda: second.sessions.feed_up, 5, "the feed is up")
    t = now_ms()
    for family in ("a", "b"):
        await first.sessions.start_family(family, "u1", "h" + family, t, HOUR_MS)
    await first.sessions.start_family("c", "u2", "hc", t, HOUR_MS)
    await first.sessions.revoke_user("u1", t + 5)
    await until(lambda: any(r.kind == "revoke" for r in seen), 2, "the revocation is announced")
    assert Revocation("revoke", "u1", "", t + 5) in seen
    for family in ("a", "b"):
        rotation = await first.sessions.rotate(family, "h" + family, "x", t, HOUR_MS, HOUR_MS)
        assert rotation.status == "unknown"
    assert (await first.sessions.rotate("c", "hc", "hc2", t, HOUR_MS, HOUR_MS)).status == "ok"
    assert (await second.sessions.state(t)).valid_after == {"u1": t + 5}
    await first.sessions.announce("u2", t + 6)
    await until(lambda: any(r.kind == "changed" for r in seen), 2, "the change is announced")


async def test_end_family_names_its_user(nodes: tuple[AccountBackends, AccountBackends]) -> None:
    store, t = nodes[0].sessions, now_ms()
    await store.start_family("f1", "u1", "h1", t, HOUR_MS)
    assert await nodes[1].sessions.end_family("f1", t) == "u1"
    assert await store.end_family("f1", t) is None
    assert (await store.rotate("f1", "h1", "h2", t, HOUR_MS, HOUR_MS)).status == "unknown"


async def test_audit_records_chain_across_nodes(
    nodes: tuple[AccountBackends, AccountBackends],
) -> None:
    first, second = nodes

    async def append(log: AuditLog, i: int) -> None:
        await log.append(AuditEntry(f"u{i}", "auth.login", f"u{i}", "ok", "127.0.0.1"), now_ms())

    await asyncio.gather(*(append((first, second)[i % 2].audit, i) for i in range(20)))
    records = await second.audit.read(0, 100)
    assert [r.seq for r in records] == list(range(1, 21))
    assert sorted(r.actor for r in records) == sorted(f"u{i}" for i in range(20))
    wire = [r.to_wire() for r in records]
    assert verify_records(wire) is None
    assert [r.seq for r in await first.audit.read(18, 5)] == [19, 20]
    wire[4] = {**wire[4], "outcome": "unauthenticated"}  # an edited record
    assert verify_records(wire) == 5


async def test_a_silent_redis_feed_is_noticed_and_rebuilt(redis_server: RedisServer) -> None:
    """A half-open pub/sub link (frozen by a proxy) turns the feed down, then it comes back."""
    redis_server.flush()
    proxy = FreezableProxy(redis_server.port)
    await proxy.start()
    client = aioredis.Redis.from_url(redis_server.url)
    store = RedisSessionStore(client, f"redis://127.0.0.1:{proxy.port}/0")
    seen: list[Revocation] = []

    async def listener(revocation: Revocation) -> None:
        seen.append(revocation)

    try:
        store.listen(listener)
        await until(lambda: store.feed_up, 5, "the feed is up")
        assert proxy.freeze_existing() == 1
        await until(lambda: not store.feed_up, 6, "the silent feed is noticed")
        await until(lambda: store.feed_up, 6, "the feed is rebuilt")
        assert [r.kind for r in seen] == ["resync", "resync"]
        await store.revoke_user("u1", now_ms())
        await until(lambda: any(r.kind == "revoke" for r in seen), 2, "it delivers again")
    finally:
        await store.close()
        await client.aclose()
        await proxy.close()
