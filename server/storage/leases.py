"""Leases: one node at a time runs a background job (the deadline rules).

A lease is held by a node for ``ttl_ms`` unless renewed; a node that dies
stops renewing it and, once it lapses, another node's ``claim`` succeeds.
That is the whole guarantee: two nodes may briefly both believe they hold it
(a paused node, a renewal racing the expiry), so what a lease guards must be
idempotent itself. The deadline engine is: a fired event's client id is
deterministic, so a double fire is stored once.

* ``MemoryLeases``: one process (the embedded SQLite mode, which is one node
  by construction). A restarted process is a new holder at once.
* ``RedisLeases`` (redis_leases.py): shared by every node, on Redis's clock.
"""

from __future__ import annotations

import time
from typing import Protocol


class Leases(Protocol):
    async def claim(self, name: str, node: str, ttl_ms: int) -> bool:
        """Take or renew ``name`` for ``node``; False while another node holds it.

        Raises StorageUnavailable if the shared store cannot be reached: the
        caller then holds nothing and must stop running the job.
        """
        ...

    async def release(self, name: str, node: str) -> None:
        """Give ``name`` up if ``node`` holds it (a clean shutdown: no wait for the TTL)."""
        ...


class MemoryLeases:
    """Leases within one process (single node only)."""

    def __init__(self) -> None:
        #: name -> (holder, expiry on the monotonic clock)
        self._held: dict[str, tuple[str, float]] = {}

    async def claim(self, name: str, node: str, ttl_ms: int) -> bool:
        now = time.monotonic()
        holder = self._held.get(name)
        if holder is not None and holder[0] != node and holder[1] > now:
            return False
        self._held[name] = (node, now + ttl_ms / 1000)
        return True

    async def release(self, name: str, node: str) -> None:
        holder = self._held.get(name)
        if holder is not None and holder[0] == node:
            del self._held[name]
