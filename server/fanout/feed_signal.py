"""A wake-up for feed readers waiting for new runs: a hint, never the truth.

Readers always read the durable feed (server/storage/feed.py) from their
cursor; this only tells them when to look again. It is set by every run this
node commits (the log's ``deliver``, wrapped in server/backends.py), and, for
runs other nodes commit (Redis), by a poll of the feed's head while someone
waits (``services.feed.FeedService``). A lost wake-up costs latency, never an
entry: a waiter also looks again when its wait times out.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from server.domain.events import StoredEvent
from server.storage.base import Deliver


class FeedSignal:
    """Wakes every waiter at once; cheap to set from a synchronous callback."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.waiters = 0
        #: Bumped by every notify. A reader takes it *before* it reads, and
        #: waits with it: a notify between its read and its wait is not lost.
        self.generation = 0

    def notify(self) -> None:
        """Wake whoever waits now; later waiters wait for the next notify."""
        self.generation += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, generation: int, timeout_s: float) -> bool:
        """Until a notify after ``generation`` (True) or ``timeout_s`` (False)."""
        if self.generation != generation:
            return True
        event = self._event
        self.waiters += 1
        try:
            async with asyncio.timeout(timeout_s):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            self.waiters -= 1


def signalling(deliver: Deliver, signal: FeedSignal) -> Deliver:
    """``deliver`` that also wakes the feed's waiters."""

    def delivered(incident: str, events: Sequence[StoredEvent]) -> None:
        deliver(incident, events)
        signal.notify()

    return delivered
