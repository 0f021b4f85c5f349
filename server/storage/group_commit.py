"""Group commit: many appends, one durable write.

Appends land in a pending list; one writer task takes everything pending (up
to ``max_batch``) and hands it to the backend's ``commit`` in one go. While a
commit runs, new appends pile up for the next one, so under load each commit
(an fsync, a Redis round trip) is shared by many events — and at low load an
append waits for nothing but its own write. Order is kept: a batch holds the
appends in the order they were enqueued.

The writer is the only one that stores anything, so it is supervised:

* A future handed to a batch may be cancelled at any time by its caller (a
  connection that drops cancels the task awaiting it). Backends settle
  futures only through ``settle`` / ``fail``, which ignore a future that is
  done already; the write itself still happens.
* A ``commit`` that raises fails the futures of its batch that are still
  waiting, as retryable, and the writer goes on with the next batch.
* If the writer task ends anyway (a bug in this loop), it is restarted, up
  to ``MAX_RESTARTS`` times; after that the queue is ``dead``: appends are
  refused at once with StorageUnavailable and ``stats()['healthy']`` is False,
  so /healthz takes the node out of the load balancer. A write never hangs
  on a writer that no longer runs (measured before this: a node that stopped
  storing forever while /healthz said ok).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from server.domain.events import AppendResult, EventDraft
from server.errors import StorageUnavailable

log = logging.getLogger(__name__)

Pending = tuple[EventDraft, "asyncio.Future[AppendResult]"]
Commit = Callable[[list[Pending]], Awaitable[None]]
#: Told of every commit that returned: its size, and the seconds its oldest
#: append waited from enqueue to durable ack (server/metrics.py; once per
#: commit, not per append, to keep the writer's loop cheap).
CommitObserver = Callable[[int, float], None]

#: Writer restarts before the queue gives up and reports itself unhealthy.
MAX_RESTARTS = 5

#: How long ``close`` keeps writing what is pending before it gives up on it.
FLUSH_TIMEOUT_S = 2.0


def settle(fut: asyncio.Future[AppendResult], result: AppendResult) -> None:
    """Resolve a batch future unless its caller cancelled it (or it was answered)."""
    if not fut.done():
        fut.set_result(result)


def fail(fut: asyncio.Future[AppendResult], error: BaseException) -> None:
    """Fail a batch future unless its caller cancelled it (or it was answered)."""
    if not fut.done():
        fut.set_exception(error)


class GroupCommitQueue:
    def __init__(
        self, commit: Commit, max_batch: int, name: str, observer: CommitObserver | None = None
    ) -> None:
        self._commit = commit
        self.observer = observer
        self._max_batch = max_batch
        self._name = name
        self._pending: list[Pending] = []
        #: When each pending append was enqueued (monotonic), in step with ``_pending``.
        self._stamps: list[float] = []
        self._inflight: list[Pending] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        #: Set while nothing is pending or being committed.
        self._idle = asyncio.Event()
        self._idle.set()
        self.restarts = 0
        self.dead = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)
        self._task.add_done_callback(self._on_writer_done)

    def enqueue(self, draft: EventDraft) -> asyncio.Future[AppendResult]:
        fut: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        if self.dead or self._closing:
            fut.set_exception(StorageUnavailable(f"the {self._name} task is not running"))
            return fut
        self._pending.append((draft, fut))
        self._stamps.append(time.monotonic())
        self._idle.clear()
        self._wakeup.set()
        return fut

    def stats(self) -> dict[str, Any]:
        """For /healthz: whether the writer runs, and how many appends wait for it.

        ``waiting`` counts appends whose caller still waits (a cancelled one
        is still written, but nobody is told).
        """
        queued = self._inflight + self._pending
        return {
            "healthy": not self.dead,
            "restarts": self.restarts,
            "queued": len(queued),
            "waiting": sum(not fut.done() for _, fut in queued),
        }

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._pending[: self._max_batch]
                oldest = self._stamps[0]
                del self._pending[: self._max_batch]
                del self._stamps[: self._max_batch]
                await self._commit_one(batch, oldest)
            self._idle.set()

    async def _commit_one(self, batch: list[Pending], oldest: float) -> None:
        self._inflight = batch
        try:
            await self._commit(batch)
        except Exception as exc:
            log.exception("%s: a commit of %d appends failed", self._name, len(batch))
            error = StorageUnavailable(f"the commit failed: {exc}")
            for _, fut in batch:
                fail(fut, error)
        else:
            if self.observer is not None:
                self.observer(len(batch), time.monotonic() - oldest)
        finally:
            self._inflight = []

    def _on_writer_done(self, task: asyncio.Task[None]) -> None:
        """Restart a writer that ended while nobody asked it to."""
        if self._closing:
            return
        error = None if task.cancelled() else task.exception()
        log.error("%s stopped unexpectedly (%r)", self._name, error, exc_info=error)
        for _, fut in self._inflight:
            fail(fut, StorageUnavailable("the writer stopped during this commit"))
        self._inflight = []
        if self.restarts >= MAX_RESTARTS:
            self.dead = True
            log.error("%s gave up after %d restarts; refusing writes", self._name, self.restarts)
            self._refuse_pending(StorageUnavailable(f"the {self._name} task is not running"))
            return
        self.restarts += 1
        self.start()
        self._wakeup.set()

    def _refuse_pending(self, error: StorageUnavailable) -> None:
        for _, fut in self._pending:
            fail(fut, error)
        self._pending.clear()
        self._stamps.clear()

    async def close(self) -> None:
        """Refuse new appends, write those pending, then stop.

        What is still unwritten after ``FLUSH_TIMEOUT_S`` (storage down) is
        refused as retryable: it was never acknowledged, and its client
        retries it with the same id.
        """
        self._closing = True
        if self._task is not None and not self._task.done():
            try:
                await asyncio.wait_for(self._idle.wait(), FLUSH_TIMEOUT_S)
            except TimeoutError:
                log.warning(
                    "%s: %d appends not written within %.1f s of shutdown",
                    self._name,
                    len(self._pending) + len(self._inflight),
                    FLUSH_TIMEOUT_S,
                )
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._refuse_pending(StorageUnavailable("the server is shutting down"))
