"""Login throttling: failures counted per key, then an exponential back-off.

A key is ``user:<username>`` or ``addr:<client address>``; the login handler
checks both. The rule, for each key:

* failures are counted in a window (``window_s``, 15 minutes by default) that
  starts at the key's first failure and is forgotten when it ends;
* from the ``limit``-th failure in the window on, the key is locked for
  1 s, then 2 s, 4 s ... per further failure, never longer than the window;
* while a key is locked every login through it is refused with
  ``rate_limited`` and a ``retry_after`` (seconds), the right password too,
  and the password is not checked (a locked attempt is not a guess);
* a good login clears its username's count, never its address's (one good
  account must not reset the budget of an address spraying others).

Two implementations of one contract (tests/contract/test_login_throttle.py):
``MemoryLoginThrottle`` (one node: the embedded default; state is lost on a
restart, which a restart-rate attacker cannot exploit faster than the
back-off) and ``RedisLoginThrottle`` (shared by every node, so a brute force
spread over nodes is counted once).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.errors import StorageUnavailable
from server.storage import redis_keys as keys


@dataclass(frozen=True, slots=True)
class ThrottleRule:
    #: Failures in the window after which a key is locked.
    limit: int = 5
    #: Seconds a key's failures are remembered, from its first failure.
    window_s: float = 900.0

    def lock_s(self, failures: int) -> float:
        """Back-off after ``failures`` in the window: 0 below the limit, then 1, 2, 4 ... s."""
        if failures < self.limit:
            return 0.0
        return float(min(self.window_s, 2.0 ** min(failures - self.limit, 30)))


class LoginThrottle(Protocol):
    """Failure counts and locks per key (see the module docstring for the rule).

    * ``retry_after`` is 0 when none of ``keys`` is locked, else the seconds
      until the last of their locks ends (> 0).
    * ``failed`` counts one failure for each key; it may lock them.
    * ``succeeded`` forgets one key's failures and lock.
    * Raises StorageUnavailable if the shared state cannot be reached.
    """

    async def retry_after(self, keys: list[str]) -> float: ...

    async def failed(self, keys: list[str], rules: list[ThrottleRule]) -> None: ...

    async def succeeded(self, key: str) -> None: ...


@dataclass(slots=True)
class _Entry:
    failures: int
    window_ends: float
    locked_until: float


class MemoryLoginThrottle:
    """One node's state. Bounded: the oldest keys go first past ``max_keys``,
    so a spray of random usernames cannot grow it without limit."""

    def __init__(
        self, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._max_keys = max_keys
        self._clock = clock

    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and now >= max(entry.window_ends, entry.locked_until):
            del self._entries[key]
            return None
        return entry

    async def retry_after(self, keys: list[str]) -> float:
        now = self._clock()
        waits = [e.locked_until - now for k in keys if (e := self._live(k, now)) is not None]
        return max([w for w in waits if w > 0], default=0.0)

    async def failed(self, keys: list[str], rules: list[ThrottleRule]) -> None:
        now = self._clock()
        for key, rule in zip(keys, rules, strict=True):
            entry = self._live(key, now)
            if entry is None or now >= entry.window_ends:
                entry = _Entry(0, now + rule.window_s, entry.locked_until if entry else 0.0)
            entry.failures += 1
            lock = rule.lock_s(entry.failures)
            if lock:
                entry.locked_until = now + lock
            self._entries[key] = entry
            self._entries.move_to_end(key)
        while len(self._entries) > self._max_keys:
            self._entries.popitem(last=False)

    async def succeeded(self, key: str) -> None:
        self._entries.pop(key, None)


class RedisLoginThrottle:
    """Shared by every node: a counter that expires with its window, and a lock
    key whose PTTL is the wait. One MULTI per failure, so two nodes counting
    at once both count."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client

    async def retry_after(self, keys_: list[str]) -> float:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys_:
                    _ = pipe.pttl(keys.LOGIN_LOCK + key)
                ttls: list[Any] = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(f"the login throttle: {exc}") from exc
        return max((int(ms) / 1000 for ms in ttls if int(ms) > 0), default=0.0)

    async def failed(self, keys_: list[str], rules: list[ThrottleRule]) -> None:
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for key, rule in zip(keys_, rules, strict=True):
                    _ = pipe.incr(keys.LOGIN_FAILURES + key)
                    _ = pipe.pexpire(keys.LOGIN_FAILURES + key, _ms(rule.window_s), nx=True)
                replies: list[Any] = await pipe.execute()
            counts = [int(n) for n in replies[::2]]
            async with self._redis.pipeline(transaction=True) as pipe:
                for key, rule, count in zip(keys_, rules, counts, strict=True):
                    if lock := rule.lock_s(count):
                        _ = pipe.set(keys.LOGIN_LOCK + key, count, px=_ms(lock))
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(f"the login throttle: {exc}") from exc

    async def succeeded(self, key: str) -> None:
        try:
            await self._redis.delete(keys.LOGIN_FAILURES + key, keys.LOGIN_LOCK + key)
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(f"the login throttle: {exc}") from exc


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))
