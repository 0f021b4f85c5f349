"""The directory in Redis, shared by every node (see directory.py)."""

from __future__ import annotations

from typing import Any

import msgpack
import redis.asyncio as aioredis
from redis.exceptions import RedisError, WatchError

from server.domain.model import Org
from server.errors import StorageUnavailable
from server.storage import redis_keys as keys
from server.storage.directory import DirectoryConflict, User, org_from_row


def _packed_org(org: Org) -> bytes:
    """[id, name, kind, default label, tags]; rows of older versions have three
    or four items."""
    packed: bytes = msgpack.packb(
        [org.id, org.name, org.kind, org.default_label.value, list(org.tags)]
    )
    return packed


class RedisDirectoryStorage:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client

    async def open(self) -> None:
        return None

    async def load(self) -> tuple[list[Org], list[User]]:
        try:
            raw_orgs: Any = await self._redis.hvals(keys.ORGS)
            raw_users: Any = await self._redis.hvals(keys.USERS)
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        orgs = [org_from_row(msgpack.unpackb(raw)) for raw in raw_orgs]
        users = [User.from_row(msgpack.unpackb(raw)) for raw in raw_users]
        return orgs, users

    async def add_org(self, org: Org) -> None:
        added = await self._redis.hsetnx(keys.ORGS, org.id, _packed_org(org))
        if not added:
            raise DirectoryConflict(f"organisation {org.id!r} exists")
        await self._redis.incr(keys.DIRECTORY_VERSION)

    async def add_user(self, user: User) -> None:
        # The username is claimed first, so two nodes cannot both add it.
        if not await self._redis.hsetnx(keys.USERNAMES, user.username, user.id):
            raise DirectoryConflict(f"user {user.username!r} exists")
        await self._redis.hset(keys.USERS, user.id, msgpack.packb(user.to_row()))
        await self._redis.incr(keys.DIRECTORY_VERSION)

    async def version(self) -> object:
        try:
            value: Any = await self._redis.get(keys.DIRECTORY_VERSION)
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        return value

    async def replace_password_hash(self, user_id: str, old: str, new: str) -> bool:
        """WATCH/MULTI, so a concurrent write to the user (a disable) is never undone."""
        async with self._redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(keys.USERS)
                    raw: Any = await pipe.hget(keys.USERS, user_id)
                    row = msgpack.unpackb(raw) if raw is not None else None
                    if row is None or row[5] != old:
                        return False
                    row[5] = new
                    pipe.multi()  # type: ignore[no-untyped-call]
                    _ = pipe.hset(keys.USERS, user_id, msgpack.packb(row))
                    _ = pipe.incr(keys.DIRECTORY_VERSION)
                    await pipe.execute()
                    return True
                except WatchError:
                    continue

    async def update_user(self, user: User) -> None:
        try:
            await self._redis.hset(keys.USERS, user.id, msgpack.packb(user.to_row()))
            await self._redis.incr(keys.DIRECTORY_VERSION)
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def update_org(self, org: Org) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                _ = pipe.hset(keys.ORGS, org.id, _packed_org(org))
                _ = pipe.incr(keys.DIRECTORY_VERSION)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def close(self) -> None:
        return None
