"""Webhook subscriptions in Redis, shared by every node (see webhooks.py for the contract).

Records are JSON in one hash; a record is changed under WATCH, so a secret
rotation and a state write racing on two nodes do not undo each other. The
cursor compare-and-set, the bounded log and the lease are Lua scripts (one
step each). The lease is a key with a TTL set by Redis's own clock: a node
that dies stops renewing it and another takes over when it expires.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from server.storage import redis_keys as keys
from server.storage.redis_calls import redis_call
from server.storage.webhooks import (
    DeliveryRecord,
    DeliveryState,
    SigningSecret,
    Subscription,
    WebhookConflict,
)

_LUA = Path(__file__).parent / "lua"
ADVANCE_LUA = (_LUA / "webhook_advance.lua").read_text()
CLAIM_LUA = (_LUA / "webhook_claim.lua").read_text()
RELEASE_LUA = (_LUA / "webhook_release.lua").read_text()
RECORD_LUA = (_LUA / "webhook_record.lua").read_text()

T = TypeVar("T")


class RedisWebhookStore:
    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._advance = client.register_script(ADVANCE_LUA)
        self._claim = client.register_script(CLAIM_LUA)
        self._release = client.register_script(RELEASE_LUA)
        self._record = client.register_script(RECORD_LUA)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def _call(self, step: Callable[[], Awaitable[T]]) -> T:
        return await redis_call(step)

    def _transaction(self) -> Any:
        """A MULTI/EXEC pipeline (typed Any: redis-py's pipeline stubs are partial)."""
        return self._redis.pipeline(transaction=True)

    async def create(self, sub: Subscription) -> None:
        async def run() -> Any:
            return await self._redis.hsetnx(keys.WEBHOOKS, sub.id, sub.to_json())

        if not await self._call(run):
            raise WebhookConflict(f"webhook {sub.id} exists")

    async def get(self, sub_id: str) -> Subscription | None:
        async def run() -> Any:
            return await self._redis.hget(keys.WEBHOOKS, sub_id)

        raw = await self._call(run)
        return None if raw is None else Subscription.from_json(raw)

    async def all(self) -> list[Subscription]:
        async def run() -> Any:
            return await self._redis.hvals(keys.WEBHOOKS)

        subs = [Subscription.from_json(raw) for raw in await self._call(run)]
        return sorted(subs, key=lambda s: s.created_ms)

    async def delete(self, sub_id: str) -> bool:
        async def run() -> Any:
            async with self._transaction() as pipe:
                pipe.hdel(keys.WEBHOOKS, sub_id)
                pipe.delete(
                    keys.webhook_cursors_key(sub_id),
                    keys.webhook_deliveries_key(sub_id),
                    keys.webhook_lease_key(sub_id),
                )
                return await pipe.execute()

        removed = await self._call(run)
        return bool(removed[0])

    async def _change(self, sub_id: str, change: Callable[[Subscription], Subscription]) -> bool:
        async def run() -> bool:
            async with self._transaction() as pipe:
                while True:
                    try:
                        await pipe.watch(keys.WEBHOOKS)
                        raw = await pipe.hget(keys.WEBHOOKS, sub_id)
                        if raw is None:
                            return False
                        pipe.multi()
                        pipe.hset(
                            keys.WEBHOOKS, sub_id, change(Subscription.from_json(raw)).to_json()
                        )
                        await pipe.execute()
                        return True
                    except WatchError:
                        continue

        return await self._call(run)

    async def set_secrets(self, sub_id: str, secrets: tuple[SigningSecret, ...]) -> bool:
        return await self._change(sub_id, lambda s: replace(s, secrets=secrets))

    async def save_state(self, sub_id: str, state: DeliveryState) -> bool:
        return await self._change(sub_id, lambda s: replace(s, state=state))

    async def cursors(self, sub_id: str) -> dict[str, int]:
        async def run() -> Any:
            return await self._redis.hgetall(keys.webhook_cursors_key(sub_id))

        return {k.decode(): int(v) for k, v in (await self._call(run)).items()}

    async def _set_cursor(
        self, sub_id: str, incident: str, expected: int | None, seq: int, force: bool
    ) -> bool:
        async def run() -> Any:
            return await self._advance(
                keys=[keys.WEBHOOKS, keys.webhook_cursors_key(sub_id)],
                args=[sub_id, incident, "" if expected is None else expected, seq, int(force)],
            )

        return bool(await self._call(run))

    async def advance(self, sub_id: str, incident: str, expected: int | None, seq: int) -> bool:
        return await self._set_cursor(sub_id, incident, expected, seq, force=False)

    async def rewind(self, sub_id: str, incident: str, seq: int) -> bool:
        return await self._set_cursor(sub_id, incident, None, seq, force=True)

    async def record(self, sub_id: str, entry: DeliveryRecord, keep: int) -> None:
        async def run() -> Any:
            return await self._record(
                keys=[keys.WEBHOOKS, keys.webhook_deliveries_key(sub_id)],
                args=[sub_id, entry.to_json(), max(1, keep)],
            )

        await self._call(run)

    async def deliveries(self, sub_id: str, limit: int) -> list[DeliveryRecord]:
        async def run() -> Any:
            return await self._redis.lrange(
                keys.webhook_deliveries_key(sub_id), 0, max(1, limit) - 1
            )

        return [DeliveryRecord.from_json(raw) for raw in await self._call(run)]

    async def claim(self, sub_id: str, node: str, now_ms: int, ttl_ms: int) -> bool:
        """``now_ms`` is not used: the lease runs on Redis's clock (one for all nodes)."""

        async def run() -> Any:
            return await self._claim(keys=[keys.webhook_lease_key(sub_id)], args=[node, ttl_ms])

        return bool(await self._call(run))

    async def release(self, sub_id: str, node: str) -> None:
        async def run() -> Any:
            return await self._release(keys=[keys.webhook_lease_key(sub_id)], args=[node])

        await self._call(run)
