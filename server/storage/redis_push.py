"""Push subscriptions in Redis, shared by every node (see push.py for the contract).

Records are JSON in one hash by endpoint; each user's endpoints are a set,
and the users with any a set too. Adding and removing are Lua scripts, so
the three never disagree (a subscription moving between users included).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import redis.asyncio as aioredis

from server.storage import redis_keys as keys
from server.storage.push import PushSubscription
from server.storage.redis_calls import redis_call

_LUA = Path(__file__).parent / "lua"
ADD_LUA = (_LUA / "push_add.lua").read_text()
REMOVE_LUA = (_LUA / "push_remove.lua").read_text()

T = TypeVar("T")


class RedisPushStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._add = client.register_script(ADD_LUA)
        self._remove = client.register_script(REMOVE_LUA)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def _call(self, step: Callable[[], Awaitable[T]]) -> T:
        return await redis_call(step)

    async def add(self, sub: PushSubscription) -> None:
        async def run() -> Any:
            return await self._add(
                keys=[keys.PUSH_SUBS, keys.PUSH_USERS],
                args=[sub.endpoint, sub.user_id, sub.to_json(), keys.PUSH_USER_PREFIX],
            )

        await self._call(run)

    async def remove(self, endpoint: str, user: str | None = None) -> bool:
        async def run() -> Any:
            return await self._remove(
                keys=[keys.PUSH_SUBS, keys.PUSH_USERS],
                args=[endpoint, user or "", keys.PUSH_USER_PREFIX],
            )

        return bool(await self._call(run))

    async def of_user(self, user: str) -> list[PushSubscription]:
        async def run() -> list[Any]:
            endpoints = sorted(await self._redis.smembers(keys.push_user_key(user)))
            if not endpoints:
                return []
            return list(await self._redis.hmget(keys.PUSH_SUBS, endpoints))

        records = await self._call(run)
        return [PushSubscription.from_json(r) for r in records if r is not None]

    async def users(self) -> list[str]:
        async def run() -> Any:
            return await self._redis.smembers(keys.PUSH_USERS)

        return sorted(u.decode() for u in await self._call(run))

    async def cursor(self, user: str) -> str | None:
        async def run() -> Any:
            return await self._redis.hget(keys.PUSH_CURSORS, user)

        value = await self._call(run)
        return None if value is None else bytes(value).decode()

    async def set_cursor(self, user: str, cursor: str) -> None:
        async def run() -> Any:
            return await self._redis.hset(keys.PUSH_CURSORS, user, cursor)

        await self._call(run)
