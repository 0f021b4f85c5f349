"""Sessions in Redis, shared by every node (see sessions.py for the contract).

The feed is the pub/sub channel ``REVOCATIONS`` on a connection of its own.
Every write changes the durable keys and publishes in one script or
transaction, so a node that is subscribed cannot miss a revocation; a node
that was not (its subscriber reconnecting) gets ``resync`` and re-reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgpack
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.errors import StorageUnavailable
from server.storage import redis_connect
from server.storage import redis_keys as keys
from server.storage.sessions import (
    Listener,
    Revocation,
    RevocationState,
    Rotation,
    RotationStatus,
)

log = logging.getLogger(__name__)

ROTATE_LUA = (Path(__file__).parent / "lua" / "rotate.lua").read_text()
#: Subscriber reconnects back off from this, doubling to 2 s: a revocation
#: missed while down is caught by the resync, but new sessions are refused
#: meanwhile, so reconnect quickly.
RETRY_S = 0.1
#: How long the subscriber waits for a message before it sends a PING. Pub/sub
#: health checks do not notice a half-open link (redis-py #2417): a link that
#: answers nothing, not even a PING, for ``SILENT_S`` is given up and rebuilt,
#: and new sessions are refused meanwhile.
PROBE_S = 1.0
SILENT_S = 3.0

T = TypeVar("T")


class RedisSessionStore:
    def __init__(self, client: aioredis.Redis, url: str) -> None:
        self._redis, self._url = client, url
        self._rotate = client.register_script(ROTATE_LUA)
        self._listeners: list[Listener] = []
        self._subscriber: asyncio.Task[None] | None = None
        self._up = False

    async def open(self) -> None:
        return None

    def _transaction(self) -> Any:
        """A MULTI/EXEC pipeline (typed Any: redis-py's pipeline stubs are partial)."""
        return self._redis.pipeline(transaction=True)

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)
        if self._subscriber is None:
            self._subscriber = asyncio.create_task(self._subscribe(), name="sessions-feed")

    @property
    def feed_up(self) -> bool:
        return self._up

    async def _call(self, step: Callable[[], Awaitable[T]]) -> T:
        try:
            return await step()
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc

    # ------------------------------------------------------------------ feed

    async def _subscribe(self) -> None:
        delay = RETRY_S
        while True:
            link = redis_connect.link(self._url, socket_timeout=PROBE_S * 2)
            pubsub = link.pubsub()
            try:
                await pubsub.subscribe(keys.REVOCATIONS)
                # Strict: a node that could not re-read what it may have
                # missed stays "down" (refusing new sessions) and retries.
                await self._deliver(Revocation("resync", ""), strict=True)
                self._up, delay = True, RETRY_S
                await self._read(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # RedisError, OSError, a timeout: reconnect
                if self._up:
                    log.warning("revocation feed lost, new sessions refused: %s", exc)
            finally:
                self._up = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    await link.aclose()
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)

    async def _read(self, pubsub: Any) -> None:
        heard = time.monotonic()
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=PROBE_S)
            if message is None:
                if time.monotonic() - heard > SILENT_S:
                    raise ConnectionError(f"the revocation feed was silent for {SILENT_S} s")
                await pubsub.ping()  # its "pong" comes back as a message
                continue
            heard = time.monotonic()
            if message.get("type") != "message":
                continue
            kind, user, family, ts_ms = msgpack.unpackb(message["data"])
            await self._deliver(Revocation(kind, user, family, int(ts_ms)))

    async def _deliver(self, revocation: Revocation, strict: bool = False) -> None:
        for listener in self._listeners:
            try:
                await listener(revocation)
            except Exception:
                if strict:
                    raise
                log.exception("a revocation listener failed on %s", revocation)

    @staticmethod
    def _packed(kind: str, user: str, family: str, now_ms: int) -> bytes:
        packed: bytes = msgpack.packb([kind, user, family, now_ms])
        return packed

    # ---------------------------------------------------------------- writes

    async def start_family(
        self, family: str, user: str, token_hash: str, now_ms: int, max_age_ms: int
    ) -> None:
        async def write() -> None:
            async with self._transaction() as pipe:
                pipe.hset(
                    keys.family_key(family),
                    mapping={
                        "user": user,
                        "current": token_hash,
                        "created": now_ms,
                        "last": now_ms,
                    },
                )
                pipe.pexpire(keys.family_key(family), max_age_ms)
                pipe.pexpire(keys.family_used_key(family), max_age_ms)
                pipe.sadd(keys.user_families_key(user), family)
                pipe.pexpire(keys.user_families_key(user), max_age_ms)
                await pipe.execute()

        await self._call(write)

    async def rotate(
        self,
        family: str,
        old_hash: str,
        new_hash: str,
        now_ms: int,
        idle_ms: int,
        max_age_ms: int,
    ) -> Rotation:
        async def run() -> Any:
            return await self._rotate(
                keys=[keys.family_key(family), keys.family_used_key(family), keys.ENDED],
                args=[old_hash, new_hash, now_ms, idle_ms, max_age_ms, family, keys.REVOCATIONS],
            )

        status, user = await self._call(run)
        decoded: RotationStatus = status.decode()
        return Rotation(decoded, user.decode())

    async def end_family(self, family: str, now_ms: int) -> str | None:
        async def write() -> str | None:
            raw: Any = await self._redis.hget(keys.family_key(family), "user")
            if raw is None:
                return None
            user: str = raw.decode()
            async with self._transaction() as pipe:
                pipe.delete(keys.family_key(family), keys.family_used_key(family))
                pipe.zadd(keys.ENDED, {family: now_ms})
                pipe.publish(keys.REVOCATIONS, self._packed("end", user, family, now_ms))
                await pipe.execute()
            return user

        return await self._call(write)

    async def revoke_user(self, user: str, now_ms: int) -> None:
        async def write() -> None:
            families: Any = await self._redis.smembers(keys.user_families_key(user))
            async with self._transaction() as pipe:
                for raw in families:
                    family = raw.decode()
                    pipe.delete(keys.family_key(family), keys.family_used_key(family))
                pipe.delete(keys.user_families_key(user))
                pipe.hset(keys.VALID_AFTER, user, now_ms)
                pipe.publish(keys.REVOCATIONS, self._packed("revoke", user, "", now_ms))
                await pipe.execute()

        await self._call(write)

    async def announce(self, user: str, now_ms: int) -> None:
        async def write() -> None:
            await self._redis.publish(keys.REVOCATIONS, self._packed("changed", user, "", now_ms))

        await self._call(write)

    async def state(self, since_ms: int) -> RevocationState:
        async def read() -> RevocationState:
            valid: Any = await self._redis.hgetall(keys.VALID_AFTER)
            await self._redis.zremrangebyscore(keys.ENDED, "-inf", f"({since_ms}")
            ended: Any = await self._redis.zrange(keys.ENDED, 0, -1, withscores=True)
            return RevocationState(
                {k.decode(): int(v) for k, v in valid.items()},
                {k.decode(): int(v) for k, v in ended},
            )

        return await self._call(read)

    async def close(self) -> None:
        if self._subscriber is not None:
            self._subscriber.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._subscriber
