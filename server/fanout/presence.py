"""Presence implementations (contract: ``Presence`` in server/fanout/base.py).

* ``MemoryPresence``: this process only (the embedded default).
* ``RedisPresence``: shared by every node. Each claim is a member of the
  incident's ZSET scored by its expiry time; the node that holds it renews
  its claims every ``ttl_s / 3``. When a node dies its claims are not renewed
  and fall out after ``ttl_s`` — nobody has to notice the death.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.errors import StorageUnavailable
from server.fanout.base import Presence as Presence  # re-exported: the interface
from server.storage import redis_keys as keys

log = logging.getLogger(__name__)


class MemoryPresence:
    """Claims in a dict: single node only, and they die with the process."""

    def __init__(self) -> None:
        #: incident -> user -> that user's connections following it.
        self._claims: dict[str, dict[str, set[str]]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._claims.clear()

    async def join(self, incident: str, user: str, connection: str) -> None:
        self._claims.setdefault(incident, {}).setdefault(user, set()).add(connection)

    async def leave(self, incident: str, user: str, connection: str) -> None:
        claims = self._claims.get(incident, {})
        connections = claims.get(user)
        if connections is not None:
            connections.discard(connection)
            if not connections:
                del claims[user]
            if not claims:
                self._claims.pop(incident, None)

    async def online(self, incident: str) -> list[str]:
        return sorted(self._claims.get(incident, ()))


class RedisPresence:
    """Claims in Redis, shared by every node; a dead node's expire after ``ttl_s``."""

    def __init__(self, client: aioredis.Redis, node_id: str, ttl_s: float = 30.0) -> None:
        self._redis = client
        self._node = node_id
        self.ttl_s = ttl_s
        self._held: dict[str, set[str]] = {}
        self._task: asyncio.Task[None] | None = None

    def _member(self, user: str, connection: str) -> str:
        return f"{user}\x00{self._node}\x00{connection}"

    def _expiry(self) -> int:
        return int((time.time() + self.ttl_s) * 1000)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._renew(), name="presence-renew")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for incident, members in list(self._held.items()):
            with contextlib.suppress(RedisError, OSError):
                await self._redis.zrem(keys.presence_key(incident), *members)
        self._held.clear()

    async def join(self, incident: str, user: str, connection: str) -> None:
        member = self._member(user, connection)
        self._held.setdefault(incident, set()).add(member)
        with contextlib.suppress(RedisError, OSError):  # renewed later if Redis is away
            await self._redis.zadd(keys.presence_key(incident), {member: self._expiry()})

    async def leave(self, incident: str, user: str, connection: str) -> None:
        member = self._member(user, connection)
        held = self._held.get(incident)
        if held is not None:
            held.discard(member)
            if not held:
                del self._held[incident]
        with contextlib.suppress(RedisError, OSError):
            await self._redis.zrem(keys.presence_key(incident), member)

    async def online(self, incident: str) -> list[str]:
        now = int(time.time() * 1000)
        try:
            members: Any = await self._redis.zrangebyscore(keys.presence_key(incident), now, "+inf")
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(f"presence of {incident}: {exc}") from exc
        return sorted({m.decode().split("\x00", 1)[0] for m in members})

    async def _renew(self) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 3)
            expiry, now = self._expiry(), int(time.time() * 1000)
            # Each incident's members as they are when its ZADD is sent: a
            # leave during an earlier await may have emptied and dropped the
            # set (and ZADD with no member is an error).
            for incident in list(self._held):
                members = self._held.get(incident)
                if not members:
                    continue
                key = keys.presence_key(incident)
                try:
                    await self._redis.zadd(key, dict.fromkeys(members, expiry))
                    await self._redis.zremrangebyscore(key, "-inf", now)  # others' dead claims
                except (RedisError, OSError) as exc:
                    log.warning("renewing presence of %s failed: %s", incident, exc)
