"""Sharing agreements in Redis, shared by every node (see agreements.py for the contract).

One hash holds every record; each write changes it, bumps the version
counter and publishes the new version in one MULTI/EXEC, so a subscribed
node cannot miss it. The subscriber is only a wake-up: a node that was not
subscribed (reconnecting) catches up from the version on its next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import WatchError

from server.domain.sharing import Agreement
from server.storage import redis_connect
from server.storage import redis_keys as keys
from server.storage.agreements import AgreementConflict, Wake, decode, encode, revoked
from server.storage.redis_calls import redis_call

log = logging.getLogger(__name__)

#: The safety net under pub/sub: a lost message delays a change by at most this.
POLL_S = 1.0
#: The subscriber PINGs when it heard nothing for ``PROBE_S`` and rebuilds a
#: link that stayed silent for ``SILENT_S`` (pub/sub health checks do not
#: notice a half-open link, redis-py #2417); reconnects back off to 2 s.
PROBE_S = 1.0
SILENT_S = 3.0
RETRY_S = 0.1

T = TypeVar("T")


class RedisAgreementStore:
    def __init__(self, client: aioredis.Redis, url: str, poll_s: float = POLL_S) -> None:
        self._redis, self._url, self.poll_s = client, url, poll_s
        self._wakes: list[Wake] = []
        self._subscriber: asyncio.Task[None] | None = None
        #: Subscribed now (False while reconnecting: the poll alone carries changes).
        self.feed_up = False

    async def open(self) -> None:
        return None

    async def _call(self, step: Callable[[], Awaitable[T]]) -> T:
        return await redis_call(step)

    def _transaction(self) -> Any:
        """A MULTI/EXEC pipeline (typed Any: redis-py's pipeline stubs are partial)."""
        return self._redis.pipeline(transaction=True)

    async def create(self, agreement: Agreement) -> None:
        async def write() -> Any:
            async with self._transaction() as pipe:
                pipe.hsetnx(keys.AGREEMENTS, agreement.id, encode(agreement))
                pipe.incr(keys.AGREEMENTS_VERSION)
                pipe.publish(keys.AGREEMENTS_CHANGED, b"create")
                return await pipe.execute()

        added, *_ = await self._call(write)
        if not added:  # the version moved for nothing: readers re-read, harmlessly
            raise AgreementConflict(f"agreement {agreement.id!r} exists")

    async def revoke(self, agreement_id: str, revoked_ms: int, revoked_by: str) -> Agreement | None:
        """WATCH/MULTI: of two nodes revoking at once, the first one's names stay."""

        async def write() -> Agreement | None:
            async with self._transaction() as pipe:
                while True:
                    try:
                        await pipe.watch(keys.AGREEMENTS)
                        raw = await pipe.hget(keys.AGREEMENTS, agreement_id)
                        if raw is None:
                            return None
                        stored = decode(raw)
                        if stored.revoked_ms is not None:
                            return stored
                        updated = revoked(stored, revoked_ms, revoked_by)
                        pipe.multi()
                        pipe.hset(keys.AGREEMENTS, agreement_id, encode(updated))
                        pipe.incr(keys.AGREEMENTS_VERSION)
                        pipe.publish(keys.AGREEMENTS_CHANGED, b"revoke")
                        await pipe.execute()
                        return updated
                    except WatchError:
                        continue

        return await self._call(write)

    async def list(self) -> list[Agreement]:
        async def read() -> Any:
            return await self._redis.hvals(keys.AGREEMENTS)

        return [decode(raw) for raw in await self._call(read)]

    async def version(self) -> object:
        async def read() -> Any:
            return await self._redis.get(keys.AGREEMENTS_VERSION)

        return await self._call(read)

    def listen(self, wake: Wake) -> None:
        self._wakes.append(wake)
        if self._subscriber is None:
            self._subscriber = asyncio.create_task(self._subscribe(), name="agreements-feed")

    # ------------------------------------------------------------------ feed

    async def _subscribe(self) -> None:
        delay = RETRY_S
        while True:
            link = redis_connect.link(self._url, socket_timeout=PROBE_S * 2)
            pubsub = link.pubsub()
            try:
                await pubsub.subscribe(keys.AGREEMENTS_CHANGED)
                self._wake()  # whatever was written while not subscribed
                self.feed_up, delay = True, RETRY_S
                await self._read(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # RedisError, OSError, a silent link: reconnect
                if self.feed_up:  # once per outage, not once per retry
                    log.warning("agreements feed lost (polling meanwhile): %s", exc)
            finally:
                self.feed_up = False
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
                    raise ConnectionError(f"the agreements feed was silent for {SILENT_S} s")
                await pubsub.ping()  # its "pong" comes back as a message
                continue
            heard = time.monotonic()
            if message.get("type") == "message":
                self._wake()

    def _wake(self) -> None:
        for wake in self._wakes:
            wake()

    async def close(self) -> None:
        if self._subscriber is not None:
            self._subscriber.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._subscriber
            self._subscriber = None
