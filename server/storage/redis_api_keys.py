"""API keys in Redis, shared by every node (see api_keys.py for the contract).

Create and revoke are Lua scripts that write the key's hash and publish on
the session feed's channel (``REVOCATIONS``) in one step, so a subscribed
node cannot miss one. Last use is a ZSET written with ``ZADD GT``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgpack
import redis.asyncio as aioredis

from server.storage import redis_keys as keys
from server.storage.api_keys import ApiKey, ApiKeyConflict
from server.storage.redis_calls import redis_call

_LUA = Path(__file__).parent / "lua"
CREATE_LUA = (_LUA / "api_key_create.lua").read_text()
REVOKE_LUA = (_LUA / "api_key_revoke.lua").read_text()

T = TypeVar("T")


def _record(key: ApiKey) -> bytes:
    """The immutable fields; revocation and last use are kept beside them."""
    packed: bytes = msgpack.packb(list(key.to_row()[:10]))
    return packed


class RedisApiKeyStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._create = client.register_script(CREATE_LUA)
        self._revoke = client.register_script(REVOKE_LUA)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def _call(self, step: Callable[[], Awaitable[T]]) -> T:
        return await redis_call(step)

    async def create(self, key: ApiKey, now_ms: int) -> None:
        async def run() -> Any:
            return await self._create(
                keys=[keys.api_key_key(key.id), keys.API_KEY_IDS],
                args=[_record(key), key.id, key.user_id, now_ms, keys.REVOCATIONS],
            )

        if not await self._call(run):
            raise ApiKeyConflict(f"API key {key.id} exists")

    async def revoke(self, key_id: str, now_ms: int) -> ApiKey | None:
        async def run() -> Any:
            return await self._revoke(
                keys=[keys.api_key_key(key_id)], args=[key_id, now_ms, keys.REVOCATIONS]
            )

        if not await self._call(run):
            return None
        return await self.get(key_id)

    async def touch(self, key_id: str, now_ms: int) -> None:
        async def write() -> None:
            await self._redis.zadd(keys.API_KEY_LAST_USED, {key_id: now_ms}, gt=True)

        await self._call(write)

    async def get(self, key_id: str) -> ApiKey | None:
        found = await self._read([key_id])
        return found[0] if found else None

    async def all(self) -> list[ApiKey]:
        async def ids() -> Any:
            return await self._redis.smembers(keys.API_KEY_IDS)

        found = await self._read(sorted(raw.decode() for raw in await self._call(ids)))
        return sorted(found, key=lambda k: k.created_ms)

    async def _read(self, key_ids: list[str]) -> list[ApiKey]:
        async def read() -> Any:
            pipe: Any = self._redis.pipeline(transaction=False)
            for key_id in key_ids:
                pipe.hmget(keys.api_key_key(key_id), "record", "revoked")
                pipe.zscore(keys.API_KEY_LAST_USED, key_id)
            return await pipe.execute()

        replies = await self._call(read) if key_ids else []
        found = []
        for (record, revoked), last_used in zip(replies[::2], replies[1::2], strict=True):
            if record is None:
                continue
            row = [*msgpack.unpackb(record), revoked, last_used]
            found.append(ApiKey.from_row(row))
        return found
