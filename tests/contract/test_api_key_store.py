"""The ApiKeyStore contract (server/storage/api_keys.py), per backend.

Two account backend sets built from one deployment's settings stand for two
nodes (or the server and the CLI): what one writes, the other reads, and the
other's session feed announces.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from server.backends import AccountBackends, build_account_backends
from server.settings import Settings
from server.storage.api_keys import ApiKey, ApiKeyConflict, ApiKeyStore, SqliteApiKeyStore
from server.storage.redis_api_keys import RedisApiKeyStore
from server.storage.sessions import Revocation
from tests.contract.conftest import embedded_settings, redis_settings
from tests.redis_server import RedisServer
from tests.waiting import until


def _typed(path: Path, client: aioredis.Redis) -> None:
    """Compile-time check (mypy), never run: each implementation matches its protocol."""
    stores: list[ApiKeyStore] = [SqliteApiKeyStore(path), RedisApiKeyStore(client)]
    del stores


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
    await first.start()
    await second.start()
    yield first, second
    await first.close()
    await second.close()


def now_ms() -> int:
    return int(time.time() * 1000)


def a_key(key_id: str = "0123456789abcdef", **changes: object) -> ApiKey:
    values: dict[str, object] = {
        "id": key_id,
        "user_id": "u_bot",
        "org_id": "police",
        "name": "CAD",
        "secret_hash": "ab" * 32,
        "incidents": ("inc_1", "inc_2"),
        "commands": ("message.post",),
        "coordinator": False,
        "created_ms": now_ms(),
        "created_by": "u_admin",
        **changes,
    }
    return ApiKey(**values)  # type: ignore[arg-type]


async def test_a_created_key_is_read_by_every_node(
    nodes: tuple[AccountBackends, AccountBackends],
) -> None:
    first, second = nodes
    key = a_key()
    open_key = a_key("fedcba9876543210", incidents=None, commands=None, coordinator=True)
    await first.api_keys.create(key, key.created_ms)
    await first.api_keys.create(open_key, open_key.created_ms)
    assert await second.api_keys.get(key.id) == key
    assert await second.api_keys.get(open_key.id) == open_key
    assert {k.id for k in await second.api_keys.all()} == {key.id, open_key.id}
    assert await second.api_keys.get("nope") is None
    assert "secret_hash" not in key.to_wire()
    assert ("ab" * 32) not in str(key.to_wire())


async def test_a_taken_id_is_refused_and_changes_nothing(
    nodes: tuple[AccountBackends, AccountBackends],
) -> None:
    first, second = nodes
    key = a_key()
    await first.api_keys.create(key, key.created_ms)
    with pytest.raises(ApiKeyConflict):
        await second.api_keys.create(a_key(name="other", user_id="u_x"), now_ms())
    assert await first.api_keys.get(key.id) == key


async def test_create_and_revoke_are_announced_on_the_feed(
    nodes: tuple[AccountBackends, AccountBackends],
) -> None:
    first, second = nodes
    heard: list[Revocation] = []

    async def listener(revocation: Revocation) -> None:
        heard.append(revocation)

    second.sessions.listen(listener)
    await until(lambda: second.sessions.feed_up, 5, "the feed is up")
    key = a_key()
    await first.api_keys.create(key, key.created_ms)
    await until(lambda: any(r.kind == "key" for r in heard), 5, "the create is announced")
    revoked = await first.api_keys.revoke(key.id, key.created_ms + 5)
    assert revoked is not None
    assert revoked.revoked_ms == key.created_ms + 5
    await until(lambda: sum(r.kind == "key" for r in heard) == 2, 5, "the revoke is announced")
    announced = [r for r in heard if r.kind == "key"]
    assert [(r.user, r.family) for r in announced] == [(key.user_id, key.id)] * 2


async def test_revoke_keeps_the_first_time_and_ignores_unknown_keys(
    nodes: tuple[AccountBackends, AccountBackends],
) -> None:
    first, second = nodes
    key = a_key()
    await first.api_keys.create(key, key.created_ms)
    await first.api_keys.revoke(key.id, 1000)
    again = await second.api_keys.revoke(key.id, 2000)
    assert again is not None
    assert again.revoked_ms == 1000
    stored = await second.api_keys.get(key.id)
    assert stored is not None
    assert stored.revoked_ms == 1000
    assert await second.api_keys.revoke("0000000000000000", 3000) is None


async def test_last_use_only_moves_forward(
    nodes: tuple[AccountBackends, AccountBackends],
) -> None:
    first, second = nodes
    key = a_key()
    await first.api_keys.create(key, key.created_ms)
    assert (await first.api_keys.get(key.id)) == key  # never used yet
    await first.api_keys.touch(key.id, 5000)
    await second.api_keys.touch(key.id, 4000)  # a slower node, later
    stored = await second.api_keys.get(key.id)
    assert stored is not None
    assert stored.last_used_ms == 5000
    await second.api_keys.touch(key.id, 6000)
    listed = await first.api_keys.all()
    assert [k.last_used_ms for k in listed] == [6000]


async def test_embedded_writes_survive_another_process_closing_the_database(
    tmp_path: Path,
) -> None:
    """Sessions and keys share sessions.db in one process; the CLI opens and closes it.

    Regression: opening the second store used to open and close a descriptor
    of the database, which drops the process's POSIX locks; the CLI then
    deleted the WAL on close and the server's next commits were lost.
    """
    server = build_account_backends(embedded_settings(tmp_path))
    await server.start()
    try:
        key = a_key()
        await server.api_keys.create(key, key.created_ms)
        # Another process (the CLI) opens the database, writes, and closes it.
        other = subprocess.run(
            [sys.executable, "-c", _OTHER_PROCESS, str(tmp_path / "sessions.db")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert other.returncode == 0, other.stderr
        await server.api_keys.touch(key.id, 7000)
        with contextlib.closing(sqlite3.connect(tmp_path / "sessions.db")) as db:
            (stored,) = db.execute("SELECT last_used_ms FROM api_keys").fetchone()
        assert stored == 7000
    finally:
        await server.close()


_OTHER_PROCESS = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("INSERT INTO valid_after VALUES ('u_other', 1)")
db.close()
"""
