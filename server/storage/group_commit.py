"""Group commit: many appends, one durable write.

Appends land in a pending list; one writer task takes everything pending (up
to ``max_batch``) and hands it to the backend's ``commit`` in one go. While a
commit runs, new appends pile up for the next one, so under load each commit
(an fsync, a Redis round trip) is shared by many events — and at low load an
append waits for nothing but its own write. Order is kept: a batch holds the
appends in the order they were enqueued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from server.domain.events import AppendResult, EventDraft
from server.errors import StorageUnavailable

Pending = tuple[EventDraft, "asyncio.Future[AppendResult]"]
Commit = Callable[[list[Pending]], Awaitable[None]]

log = logging.getLogger(__name__)

#: How long ``close`` keeps writing what is pending before it gives up on it.
FLUSH_TIMEOUT_S = 2.0


class GroupCommitQueue:
    def __init__(self, commit: Commit, max_batch: int, name: str) -> None:
        self._commit = commit
        self._max_batch = max_batch
        self._name = name
        self._pending: list[Pending] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: Set while nothing is pending or being committed.
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    def enqueue(self, draft: EventDraft) -> asyncio.Future[AppendResult]:
        fut: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        if self._closed:
            fut.set_exception(StorageUnavailable("the server is shutting down"))
            return fut
        self._pending.append((draft, fut))
        self._idle.clear()
        self._wakeup.set()
        return fut

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                await self._commit(batch)
            self._idle.set()

    async def close(self) -> None:
        """Refuse new appends, write those pending, then stop.

        What is still unwritten after ``FLUSH_TIMEOUT_S`` (storage down) is
        refused as retryable: it was never acknowledged, and its client
        retries it with the same id.
        """
        self._closed = True
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(self._idle.wait(), FLUSH_TIMEOUT_S)
            except TimeoutError:
                log.warning(
                    "%s: %d appends not written within %.1f s of shutdown",
                    self._name,
                    len(self._pending),
                    FLUSH_TIMEOUT_S,
                )
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for _, fut in self._pending:
            if not fut.done():
                fut.set_exception(StorageUnavailable("the server is shutting down"))
        self._pending.clear()
