"""Leases in Redis (see leases.py for the contract): a key with a TTL on Redis's clock.

The claim and release scripts are the webhook lease's (one step each): a
claim sets the key only if it is free or already ours.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.errors import StorageUnavailable
from server.storage import redis_keys as keys
from server.storage.redis_webhooks import CLAIM_LUA, RELEASE_LUA


class RedisLeases:
    def __init__(self, client: aioredis.Redis) -> None:
        self._claim = client.register_script(CLAIM_LUA)
        self._release = client.register_script(RELEASE_LUA)

    async def claim(self, name: str, node: str, ttl_ms: int) -> bool:
        try:
            held = await self._claim(keys=[keys.lease_key(name)], args=[node, ttl_ms])
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        return bool(held)

    async def release(self, name: str, node: str) -> None:
        try:
            await self._release(keys=[keys.lease_key(name)], args=[node])
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
