"""One place that turns Redis trouble into the stores' typed error.

Every Redis-backed store promises ``StorageUnavailable`` when Redis cannot
answer (callers retry, refuse with ``unavailable`` or serve from memory); a
``RedisError`` or a socket's ``OSError`` escaping instead is a traceback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

from server.errors import StorageUnavailable

T = TypeVar("T")


async def redis_call(step: Callable[[], Awaitable[T]]) -> T:
    """``await step()``, with Redis trouble as ``StorageUnavailable``."""
    try:
        return await step()
    except (RedisError, OSError) as exc:
        raise StorageUnavailable(str(exc)) from exc
