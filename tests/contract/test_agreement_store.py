"""The AgreementStore contract (server/storage/agreements.py), per backend, and
SharingRules following it.

Two stores built from one deployment's settings stand for two nodes (or the
server and the CLI): what one writes, the other reads, and its SharingRules
picks up through the change feed within the target.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from server.backends import AGREEMENTS_DB, AccountBackends, build_account_backends
from server.domain.sharing import Agreement, FieldClass, Precision
from server.services.sharing_rules import SharingRules
from server.settings import Settings
from server.storage import redis_keys as keys
from server.storage.agreements import (
    AgreementConflict,
    AgreementStore,
    SqliteAgreementStore,
    encode,
)
from server.storage.redis_agreements import POLL_S, RedisAgreementStore
from tests.conftest import free_port
from tests.contract.conftest import embedded_settings, redis_settings
from tests.redis_server import RedisServer
from tests.waiting import until

#: A change on one node is in force on another within this (DESIGN: under 1 s).
TARGET_S = 1.0
NOW = int(time.time() * 1000)


def _typed(path: Path, client: aioredis.Redis) -> None:
    """Compile-time check (mypy), never run: each implementation matches its protocol."""
    stores: list[AgreementStore] = [SqliteAgreementStore(path), RedisAgreementStore(client, "")]
    del stores


def agreement(agreement_id: str, **changes: object) -> Agreement:
    base = Agreement(
        id=agreement_id,
        owner="metro-police",
        recipients=("harbour-shelter", "rangers"),
        kinds=("message",),
        fields=(FieldClass.NAME, FieldClass.POSITION),
        position=Precision.EXACT,
        categories=None,
        history=True,
        valid_from_ms=NOW,
        valid_until_ms=NOW + 3_600_000,
        revoked_ms=None,
        created_by="u_admin",
        note="for the record",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "redis"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return embedded_settings(tmp_path)
    redis_server: RedisServer = request.getfixturevalue("redis_server")
    redis_server.flush()
    return redis_settings(redis_server, "contract")


@pytest.fixture
async def nodes(settings: Settings) -> AsyncIterator[tuple[AccountBackends, AccountBackends]]:
    first, second = build_account_backends(settings), build_account_backends(settings)
    for node in (first, second):
        await node.agreements.open()
    yield first, second
    for node in (first, second):
        await node.agreements.close()
        await node.close()


async def test_what_one_creates_the_other_lists_and_its_version_moves(
    nodes: tuple[AccountBackends, AccountBackends],
) -> None:
    a, b = nodes[0].agreements, nodes[1].agreements
    before = await b.version()
    record = agreement("agr_1")
    await a.create(record)
    assert await b.list() == [record]
    assert await b.version() != before
    unchanged = await b.version()
    assert await b.version() == unchanged, "no write, no change"


async def test_an_id_is_taken_once(nodes: tuple[AccountBackends, AccountBackends]) -> None:
    a, b = nodes[0].agreements, nodes[1].agreements
    await a.create(agreement("agr_2"))
    with pytest.raises(AgreementConflict):
        await b.create(agreement("agr_2", owner="harbour-shelter", recipients=("metro-police",)))
    assert [x.owner for x in await a.list()] == ["metro-police"]


async def test_a_revoke_is_once_and_nothing_else_changes(
    nodes: tuple[AccountBackends, AccountBackends],
) -> None:
    a, b = nodes[0].agreements, nodes[1].agreements
    record = agreement("agr_3")
    await a.create(record)
    first = await a.revoke("agr_3", NOW + 10, "u_police-admin")
    assert first == replace(record, revoked_ms=NOW + 10, revoked_by="u_police-admin")
    assert await b.revoke("agr_3", NOW + 20, "cli:root") == first
    assert await b.list() == [first]
    assert await a.revoke("agr_unknown", NOW, "u_x") is None


async def test_sqlite_refuses_to_delete_or_edit_a_record(tmp_path: Path) -> None:
    store = SqliteAgreementStore(tmp_path / AGREEMENTS_DB)
    await store.open()
    await store.create(agreement("agr_4"))
    await store.revoke("agr_4", NOW + 1, "u_admin")
    await store.close()
    db = sqlite3.connect(tmp_path / AGREEMENTS_DB)
    with pytest.raises(sqlite3.IntegrityError, match="never delete"):
        db.execute("DELETE FROM agreements")
    with pytest.raises(sqlite3.IntegrityError, match="revoked once"):
        db.execute("UPDATE agreements SET revoked_ms = 0")
    db.close()


async def test_the_other_nodes_rules_follow_within_the_target(
    nodes: tuple[AccountBackends, AccountBackends], settings: Settings
) -> None:
    writer, reader = SharingRules(nodes[0].agreements), SharingRules(nodes[1].agreements)
    await writer.start()
    await reader.start()
    try:
        start = time.monotonic()
        await writer.create(agreement("agr_5"))
        assert writer.get("agr_5") is not None, "in force on the writing node at once"
        await until(lambda: reader.get("agr_5") is not None, TARGET_S, "the create arrives")
        created_s = time.monotonic() - start
        start = time.monotonic()
        await writer.revoke("agr_5", "u_admin", int(time.time() * 1000))
        await until(
            lambda: (found := reader.get("agr_5")) is not None and found.revoked_ms is not None,
            TARGET_S,
            "the revoke arrives",
        )
        revoked_s = time.monotonic() - start
        backend = "redis" if settings.redis_url else "sqlite"
        print(
            f"\n{backend}: create seen by the other store's rules in {created_s * 1000:.0f} ms,"
            f" revoke in {revoked_s * 1000:.0f} ms"
        )
    finally:
        await reader.close()
        await writer.close()


async def test_a_lost_wake_up_is_caught_by_the_version_poll(redis_server: RedisServer) -> None:
    """No pub/sub at all (its link points at a closed port): the poll alone keeps up."""
    redis_server.flush()
    client = aioredis.Redis.from_url(redis_server.url)
    rules = SharingRules(RedisAgreementStore(client, f"redis://127.0.0.1:{free_port()}"))
    await rules.start()
    try:
        start = time.monotonic()
        record = agreement("agr_quiet")
        await client.hset(keys.AGREEMENTS, record.id, encode(record))
        await client.incr(keys.AGREEMENTS_VERSION)  # and no PUBLISH
        await until(lambda: rules.get("agr_quiet") is not None, POLL_S + 0.5, "the poll")
        print(
            f"\nredis, no wake-up: caught by the poll in {(time.monotonic() - start) * 1000:.0f} ms"
        )
        assert rules.reloads == 2, "one read at start, one when the version moved"
    finally:
        await rules.close()
        await client.aclose()
