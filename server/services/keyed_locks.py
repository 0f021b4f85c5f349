"""Per-key asyncio locks that exist only while someone holds or awaits them.

A ``dict[key, Lock]`` filled with ``setdefault`` keeps one lock per key ever
asked for, forever: a client following 200,000 made-up incident ids grew a
node by ~58 MB that was never freed. Here a key's lock is created on first
use and removed when its last holder or waiter leaves, so memory follows the
work in flight, not the history of ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        #: Holders plus waiters; the entry is dropped when this reaches 0.
        self.users = 0


class KeyedLocks:
    """Mutual exclusion per key, with no memory kept for idle keys."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            # Also on cancellation while waiting: the count stays exact.
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]

    def busy(self, key: str) -> bool:
        """Whether someone holds or waits for ``key`` right now."""
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)
