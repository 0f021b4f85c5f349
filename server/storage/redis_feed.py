"""RedisFeedLog: the change feed of the Redis backend (see server/storage/feed.py).

``lua/append.lua`` writes a run to ``keys.FEED`` with id ``<pos>-0``, where
``pos`` is ``INCR keys.FEED_POS``, in the same script as the events: atomic
with them and in the order scripts run, which is commit order for every node.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.errors import StorageUnavailable
from server.storage import redis_keys as keys
from server.storage.feed import MAX_RUNS, FeedHead, FeedRun, new_epoch


class RedisFeedLog:
    """Reads of the feed stream. ``client`` is the node's shared one (not closed here)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client

    async def start(self) -> None:
        """Nothing to open; the epoch is drawn by the first ``head``."""

    async def close(self) -> None:
        """Nothing to close."""

    async def head(self) -> FeedHead:
        """MGET of epoch and counter; a feed without an epoch gets one (SET NX).

        A flushed Redis loses both: the epoch drawn then differs from every
        cursor handed out before, so those get ``resync_required``.
        """
        try:
            epoch, pos = await self._mget()
            if epoch is None:
                await self.redis.set(keys.FEED_EPOCH, new_epoch(), nx=True)
                epoch, pos = await self._mget()
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        if epoch is None:
            raise StorageUnavailable("the feed's epoch vanished")
        return FeedHead(epoch.decode(), int(pos or 0))

    async def _mget(self) -> tuple[bytes | None, bytes | None]:
        values: Any = await self.redis.mget([keys.FEED_EPOCH, keys.FEED_POS])
        return values[0], values[1]

    async def read(self, after: int, limit: int) -> list[FeedRun]:
        try:
            entries: Any = await self.redis.xrange(
                keys.FEED, min=f"{after + 1}-0", max="+", count=min(max(1, limit), MAX_RUNS)
            )
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        return [
            FeedRun(
                pos=int(entry_id.split(b"-")[0]),
                incident=keys.incident_of_log_key(fields[b"k"].decode()),
                first=int(fields[b"f"]),
                last=int(fields[b"l"]),
            )
            for entry_id, fields in entries
        ]
