"""One writer at a time per external reference, on this node and across nodes.

SPEC 28 keeps an external reference (a CAD number) within one mode: a drill
never shares it with a live incident. The check is a lookup of the
reference's incidents, then the append; two creations sent at once, one live
and one an exercise, both passed the lookup before either was stored. While
a creation or an update that sets a reference is checked and committed, it
holds the reference:

* on this node, a per-key lock (KeyedLocks), so concurrent commands queue;
* across nodes, a lease (server/storage/leases.py: Redis's clock, a TTL)
  named after the reference, which another node's holder waits for.

A lease lapses after ``LEASE_MS`` if its node died holding it; only a node
paused longer than that could overlap with the next holder. A command that
cannot get the lease within ``WAIT_S`` is refused as ``unavailable``
(retryable): nothing was stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from protocol.errors import ErrorCode, ProtocolError
from server.errors import StorageUnavailable
from server.services.keyed_locks import KeyedLocks
from server.storage.leases import Leases

log = logging.getLogger(__name__)

#: Outlasts a check and a commit by far; frees a dead node's claim.
LEASE_MS = 10_000
#: How long a command waits for another node's claim of its reference.
WAIT_S = 5.0
_FIRST_PAUSE_S = 0.005
_MAX_PAUSE_S = 0.1


class ReferenceClaims:
    def __init__(
        self, leases: Leases, node: str, locks: KeyedLocks | None = None, wait_s: float = WAIT_S
    ) -> None:
        self._leases = leases
        self._node = node
        self._locks = locks or KeyedLocks()
        self._wait_s = wait_s

    @contextlib.asynccontextmanager
    async def hold(self, ref: str) -> AsyncIterator[None]:
        """Hold ``ref`` on this node, then across nodes, until the block ends."""
        name = f"external_ref:{ref}"
        async with self._locks.hold(name):
            await self._claim(name)
            try:
                yield
            finally:
                try:
                    await self._leases.release(name, self._node)
                except StorageUnavailable as exc:  # the TTL frees it
                    log.warning("releasing the claim of %s failed: %s", name, exc)

    async def _claim(self, name: str) -> None:
        deadline = time.monotonic() + self._wait_s
        pause = _FIRST_PAUSE_S
        while True:
            try:
                if await self._leases.claim(name, self._node, LEASE_MS):
                    return
            except StorageUnavailable as exc:
                raise ProtocolError(ErrorCode.UNAVAILABLE) from exc
            if time.monotonic() + pause > deadline:
                raise ProtocolError(
                    ErrorCode.UNAVAILABLE,
                    "another node is setting this external_ref; retry",
                )
            await asyncio.sleep(pause)  # another node holds it: a short wait, then again
            pause = min(pause * 2, _MAX_PAUSE_S)
