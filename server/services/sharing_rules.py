"""This node's copy of the sharing agreements: ``grant`` from memory, kept current.

``SharingRules`` implements ``AgreementsView`` (server/domain/sharing.py) for
the read paths. Every agreement is held in memory, indexed by (owner,
recipient); a write made here is applied here at once, and a write made by
another node or by the CLI arrives through the store's change feed::

    another node / CLI ─▶ AgreementStore ─┬ Redis: pub/sub wake-up ──┐
                                          └ version poll (poll_s) ───┴▶ catch_up ─▶ reload

``catch_up`` compares the store's cheap version token and re-reads the (few)
records only when it moved. The poll is the whole feed on SQLite (0.2 s) and
the safety net under pub/sub on Redis (1 s): a lost wake-up delays a change
by at most that, it never loses one.

Grants are cached per (owner, recipient, category, kind) together with the
window of time in which they hold: the latest boundary (a ``valid_from``, a
``valid_until``, a ``revoked_ms`` of a candidate agreement) at or before the
instant computed and the earliest one after it. A lookup outside the window
recomputes, so an expiry is honoured at the millisecond with no write and no
timer; any change to the set clears the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from server.domain.sharing import Agreement, Grant, combine
from server.storage.agreements import AgreementStore

log = logging.getLogger(__name__)

#: Distinct cached (owner, recipient, category, kind) keys before the cache
#: is cleared: categories are free text, so the key space has no bound.
CACHE_LIMIT = 65_536

#: Agreements per (owner, recipient) pair.
Pairs = dict[tuple[str, str], tuple[Agreement, ...]]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class _Cached:
    grant: Grant
    #: The grant holds for ``since_ms <= now < until_ms``.
    since_ms: int
    until_ms: int


class SharingRules:
    """Implements AgreementsView; the writes (create, revoke) also go through here."""

    def __init__(self, store: AgreementStore) -> None:
        self.store = store
        #: Full re-reads so far (a wake-up with nothing new adds none).
        self.reloads = 0
        self._version = 0
        self._token: object = None
        self._by_id: dict[str, Agreement] = {}
        self._pairs: Pairs = {}
        self._cache: dict[tuple[str, str, str, str], _Cached] = {}
        self._woken = asyncio.Event()
        self._watcher: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the store, read every agreement, then follow the change feed."""
        await self.store.open()
        await self.reload()
        self.store.listen(self._woken.set)
        self._watcher = asyncio.create_task(self._watch(), name="sharing-rules")

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
        await self.store.close()

    async def _watch(self) -> None:
        """Catch up on every wake-up and every ``poll_s``; one warning per outage."""
        failing = False
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), self.store.poll_s)
            self._woken.clear()
            try:
                await self.catch_up()
            except Exception as exc:  # storage away: keep serving from memory
                if not failing:
                    log.warning("agreements refresh failed (serving from memory): %s", exc)
                failing = True
            else:
                if failing:
                    log.info("agreements refresh works again")
                failing = False

    async def catch_up(self) -> None:
        """Re-read if another process or node wrote since the last read; cheap otherwise."""
        if await self.store.version() != self._token:
            await self.reload()

    async def reload(self) -> None:
        # The token first: a write landing during the read is caught next time.
        self._token = await self.store.version()
        agreements = await self.store.list()
        self.reloads += 1
        fresh = {a.id: a for a in agreements}
        if fresh != self._by_id:
            self._install(fresh)

    def _install(self, by_id: dict[str, Agreement]) -> None:
        pairs: dict[tuple[str, str], list[Agreement]] = {}
        for agreement in sorted(by_id.values(), key=lambda a: a.id):
            for recipient in agreement.recipients:
                pairs.setdefault((agreement.owner, recipient), []).append(agreement)
        self._by_id = by_id
        self._pairs = {pair: tuple(found) for pair, found in pairs.items()}
        self._cache = {}
        self._version += 1

    # -------------------------------------------------------- AgreementsView

    def version(self) -> int:
        return self._version

    def all(self) -> Sequence[Agreement]:
        return tuple(self._by_id.values())

    def get(self, agreement_id: str) -> Agreement | None:
        return self._by_id.get(agreement_id)

    def grant(self, owner: str, recipient: str, category: str, kind: str, now_ms: int) -> Grant:
        """What the agreements in force at ``now_ms`` give ``recipient`` of ``owner``'s event."""
        key = (owner, recipient, category, kind)
        cached = self._cache.get(key)
        if cached is not None and cached.since_ms <= now_ms < cached.until_ms:
            return cached.grant
        pair = self._pairs.get((owner, recipient), ())
        candidates = [a for a in pair if a.covers(owner, recipient, category, kind)]
        grant = combine([a for a in candidates if a.in_force(now_ms)])
        since, until = _window(candidates, now_ms)
        if len(self._cache) >= CACHE_LIMIT:
            self._cache = {}
        self._cache[key] = _Cached(grant, since, until)
        return grant

    # ---------------------------------------------------------------- writes

    async def create(self, agreement: Agreement) -> Agreement:
        """Store a new agreement; in force on this node when this returns."""
        await self.store.create(agreement)
        self._install({**self._by_id, agreement.id: agreement})
        return agreement

    async def revoke(self, agreement_id: str, by: str, at_ms: int) -> Agreement | None:
        """Revoke once (a second revoke returns the record unchanged); None: unknown id."""
        stored = await self.store.revoke(agreement_id, at_ms, by)
        if stored is not None and self._by_id.get(stored.id) != stored:
            self._install({**self._by_id, stored.id: stored})
        return stored


def _window(candidates: Sequence[Agreement], now_ms: int) -> tuple[int, int]:
    """The span around ``now_ms`` in which no candidate starts, ends or is revoked."""
    since, until = -(2**63), 2**63
    for agreement in candidates:
        for boundary in agreement.boundaries():
            if boundary <= now_ms:
                since = max(since, boundary)
            else:
                until = min(until, boundary)
    return since, until
