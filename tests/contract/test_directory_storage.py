"""The DirectoryStorage contract (server/storage/directory.py), run against every backend."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import msgpack
import pytest
import redis.asyncio as aioredis

from server.backends import build_backends
from server.domain.model import Org, Role
from server.domain.sharing import DEFAULT_ORG_LABEL, Label
from server.settings import Settings
from server.storage import redis_keys as keys
from server.storage.directory import (
    DirectoryConflict,
    DirectoryStorage,
    SqliteDirectoryStorage,
    User,
)
from server.storage.redis_directory import RedisDirectoryStorage
from tests.contract.conftest import embedded_settings, redis_settings
from tests.redis_server import RedisServer


def _typed(path: Path, client: aioredis.Redis) -> None:
    """Compile-time check (mypy), never run: each implementation is a DirectoryStorage."""
    sqlite: DirectoryStorage = SqliteDirectoryStorage(path)
    shared: DirectoryStorage = RedisDirectoryStorage(client)
    del sqlite, shared


@pytest.fixture(params=["sqlite", "redis"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings of one deployment; each ``opened`` storage is another process/node of it."""
    if request.param == "sqlite":
        return embedded_settings(tmp_path)
    redis_server: RedisServer = request.getfixturevalue("redis_server")
    redis_server.flush()
    return redis_settings(redis_server, "contract")


async def opened(settings: Settings) -> AsyncIterator[DirectoryStorage]:
    backends = build_backends(settings)
    await backends.directory.open()
    try:
        yield backends.directory
    finally:
        await backends.directory.close()
        for close in backends.shared:
            await close()


@pytest.fixture
async def storage(settings: Settings) -> AsyncIterator[DirectoryStorage]:
    async for storage in opened(settings):
        yield storage


def user(uid: str, username: str, org: str = "o1") -> User:
    return User(uid, username, org, f"Name {uid}", Role.RESPONDER, "hash-" + uid, False)


async def test_what_is_added_is_loaded(storage: DirectoryStorage) -> None:
    assert await storage.load() == ([], [])
    org = Org("o1", "Harbour Shelter", "ngo")
    await storage.add_org(org)
    await storage.add_user(user("u1", "ann"))
    disabled = User("u2", "bob", "o1", "Bob", Role.ADMIN, "h", True)
    await storage.add_user(disabled)
    orgs, users = await storage.load()
    assert orgs == [org]
    assert sorted(users, key=lambda u: u.id) == [user("u1", "ann"), disabled]


async def test_taken_ids_and_usernames_are_refused(storage: DirectoryStorage) -> None:
    await storage.add_org(Org("o1", "One", "ngo"))
    await storage.add_user(user("u1", "ann"))
    with pytest.raises(DirectoryConflict):
        await storage.add_org(Org("o1", "Another name", "police"))
    with pytest.raises(DirectoryConflict):
        await storage.add_user(user("u2", "ann"))  # the username is taken
    orgs, users = await storage.load()
    assert [o.name for o in orgs] == ["One"]
    assert [u.id for u in users] == ["u1"]


async def test_another_process_sees_what_was_added(settings: Settings) -> None:
    async for first in opened(settings):
        await first.add_org(Org("o1", "One", "ngo"))
        await first.add_user(user("u1", "ann"))
    async for second in opened(settings):
        orgs, users = await second.load()
        assert ([o.id for o in orgs], [u.username for u in users]) == (["o1"], ["ann"])
        with pytest.raises(DirectoryConflict):
            await second.add_user(user("u9", "ann"))


async def test_the_version_moves_when_another_process_writes(settings: Settings) -> None:
    async for watcher in opened(settings):
        before = await watcher.version()
        assert await watcher.version() == before, "no write, no change"
        async for writer in opened(settings):
            await writer.add_org(Org("o1", "One", "ngo"))
        after_org = await watcher.version()
        assert after_org != before
        async for writer in opened(settings):
            await writer.add_user(user("u1", "ann"))
        after_user = await watcher.version()
        assert after_user != after_org
        async for writer in opened(settings):
            assert await writer.replace_password_hash("u1", "hash-u1", "new")
        assert await watcher.version() != after_user


async def test_a_password_hash_is_replaced_only_if_unchanged(storage: DirectoryStorage) -> None:
    await storage.add_org(Org("o1", "One", "ngo"))
    await storage.add_user(user("u1", "ann"))
    assert not await storage.replace_password_hash("u1", "stale", "new")
    assert not await storage.replace_password_hash("nobody", "hash-u1", "new")
    assert await storage.replace_password_hash("u1", "hash-u1", "argon")
    _, users = await storage.load()
    assert [(u.id, u.password_hash, u.disabled) for u in users] == [("u1", "argon", False)]


async def test_an_orgs_default_label_is_stored_and_changed(settings: Settings) -> None:
    async for first in opened(settings):
        async for second in opened(settings):
            await first.add_org(Org("o1", "Harbour Shelter", "ngo", Label.GREEN))
            await first.add_org(Org("o2", "Metro Police", "police"))
            token = await second.version()
            await first.update_org(Org("o2", "Metro Police", "police", Label.AMBER_STRICT))
            assert await second.version() != token
            orgs, _ = await second.load()
            assert sorted(orgs, key=lambda o: o.id) == [
                Org("o1", "Harbour Shelter", "ngo", Label.GREEN),
                Org("o2", "Metro Police", "police", Label.AMBER_STRICT),
            ]


async def test_a_directory_from_before_labels_gains_the_column(tmp_path: Path) -> None:
    path = tmp_path / "directory.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE orgs (id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL,"
        " created_ms INTEGER NOT NULL);"
        "INSERT INTO orgs VALUES ('o1', 'Harbour Shelter', 'ngo', 1);"
    )
    old.close()
    storage = SqliteDirectoryStorage(path)
    await storage.open()
    try:
        orgs, _ = await storage.load()
        assert orgs == [Org("o1", "Harbour Shelter", "ngo", DEFAULT_ORG_LABEL)]
        await storage.update_org(Org("o1", "Harbour Shelter", "ngo", Label.RED))
        assert (await storage.load())[0] == [Org("o1", "Harbour Shelter", "ngo", Label.RED)]
    finally:
        await storage.close()


async def test_a_redis_org_row_from_before_labels_reads_as_the_default(
    redis_server: RedisServer,
) -> None:
    redis_server.flush()
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        await client.hset(keys.ORGS, "o1", msgpack.packb(["o1", "Harbour Shelter", "ngo"]))
        orgs, _ = await RedisDirectoryStorage(client).load()
        assert orgs == [Org("o1", "Harbour Shelter", "ngo", DEFAULT_ORG_LABEL)]
    finally:
        await client.aclose()


async def test_a_users_phone_is_stored_and_changed(settings: Settings) -> None:
    async for first in opened(settings):
        async for second in opened(settings):
            await first.add_org(Org("o1", "Harbour Shelter", "ngo"))
            await first.add_user(user("u1", "ana", "o1"))
            await first.add_user(
                User(
                    "u2",
                    "bo",
                    "o1",
                    "Bo",
                    Role.RESPONDER,
                    "h",
                    False,
                    ("first-aid",),
                    "+44 20 7946 0000",
                )
            )
            token = await second.version()
            await first.update_user(
                User("u1", "ana", "o1", "Name u1", Role.RESPONDER, "hash-u1", False, phone="112")
            )
            assert await second.version() != token
            _, users = await second.load()
            assert sorted((u.id, u.tags, u.phone) for u in users) == [
                ("u1", (), "112"),
                ("u2", ("first-aid",), "+44 20 7946 0000"),
            ]


async def test_user_rows_from_before_phones_read_without_one(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Rows of every older length load: seven items (before tags), eight (tags,
    before phone numbers); a directory.db of either schema gains the columns."""
    for with_tags in (False, True):
        path = tmp_path / f"directory-{with_tags}.db"
        old = sqlite3.connect(path)
        old.executescript(
            "CREATE TABLE orgs (id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL,"
            " created_ms INTEGER NOT NULL);"
            "CREATE TABLE users (id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE,"
            " org_id TEXT NOT NULL, name TEXT NOT NULL, role TEXT NOT NULL,"
            " password_hash TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0,"
            " created_ms INTEGER NOT NULL);"
            "INSERT INTO orgs VALUES ('o1', 'Harbour Shelter', 'ngo', 1);"
            "INSERT INTO users VALUES ('u1', 'ana', 'o1', 'Ana', 'responder', 'h', 0, 1);"
        )
        if with_tags:  # main's schema before phone numbers: the tags column, set
            old.execute("ALTER TABLE users ADD COLUMN tags TEXT NOT NULL DEFAULT '[]'")
            old.execute("UPDATE users SET tags = ?", (json.dumps(["boat"]),))
            old.commit()
        old.close()
        storage = SqliteDirectoryStorage(path)
        await storage.open()
        try:
            (loaded,) = (await storage.load())[1]
            assert (loaded.tags, loaded.phone) == ((("boat",) if with_tags else ()), None)
            await storage.update_user(dataclasses.replace(loaded, phone="112"))
            assert [u.phone for u in (await storage.load())[1]] == ["112"]
        finally:
            await storage.close()
    redis_server.flush()
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        row = ["u1", "ana", "o1", "Ana", "responder", "h", False]
        await client.hset(keys.USERS, "u1", msgpack.packb(row))
        await client.hset(keys.USERS, "u2", msgpack.packb(["u2", "bo", *row[2:], ["boat"]]))
        _, users = await RedisDirectoryStorage(client).load()
        assert sorted((u.id, u.tags, u.phone) for u in users) == [
            ("u1", (), None),
            ("u2", ("boat",), None),
        ]
    finally:
        await client.aclose()
