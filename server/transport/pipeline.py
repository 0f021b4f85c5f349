"""In-order acknowledgements for one connection's pipelined commands.

A phone or a bot may send many posts without waiting for each ack. Each post
is decided and queued for commit as it arrives (so commits are shared across
a connection's posts), and its ack is sent when it is durable — always in the
order the commands arrived. At most ``limit`` commands are in flight per
connection; beyond that the connection's reader waits (backpressure).

One drainer task per busy connection, not one task per command.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from server.domain.events import AppendResult

SendAck = Callable[[int, Any], Awaitable[None]]
Finish = Callable[["asyncio.Future[AppendResult]"], Awaitable[Any]]


class AckPipeline:
    """Its queue and events exist only once a connection pipelines: an idle
    connection (most of them) holds none (each asyncio.Event or deque is about
    600 bytes)."""

    __slots__ = ("_drainer", "_finish", "_idle", "_limit", "_queue", "_send_ack", "_space")

    def __init__(self, send_ack: SendAck, finish: Finish, limit: int = 64) -> None:
        self._send_ack = send_ack
        self._finish = finish
        self._limit = limit
        self._queue: deque[tuple[int | None, Any]] | None = None
        self._drainer: asyncio.Task[None] | None = None
        #: Set while the queue has room; created the first time it is full.
        self._space: asyncio.Event | None = None
        #: Set while no ack waits; created when the first one is queued.
        self._idle: asyncio.Event | None = None

    async def add(self, ack_id: int | None, item: Any) -> None:
        """Queue the ack of one command: a ready payload, or a pending append."""
        queue = self._queue
        if not queue and not isinstance(item, asyncio.Future):
            if ack_id is not None:
                await self._send_ack(ack_id, item)
            return
        if queue is None:
            queue = self._queue = deque()
        queue.append((ack_id, item))
        if self._idle is None:
            self._idle = asyncio.Event()
        else:
            self._idle.clear()
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain(queue, self._idle))
        if len(queue) >= self._limit:
            if self._space is None:
                self._space = asyncio.Event()
            else:
                self._space.clear()
            await self._space.wait()

    async def idle(self) -> None:
        """Wait until every queued ack was sent (before a command that must see them)."""
        if self._idle is not None:
            await self._idle.wait()

    async def _drain(self, queue: deque[tuple[int | None, Any]], idle: asyncio.Event) -> None:
        while queue:
            ack_id, item = queue[0]
            payload = await self._finish(item) if isinstance(item, asyncio.Future) else item
            queue.popleft()
            if len(queue) < self._limit and self._space is not None:
                self._space.set()
            if ack_id is not None:
                await self._send_ack(ack_id, payload)
        idle.set()

    async def close(self) -> None:
        """The connection is gone: stop sending. Commits in flight still complete."""
        if self._drainer is not None:
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer
        for _, item in self._queue or ():
            if isinstance(item, asyncio.Future):
                item.add_done_callback(_consume)
        if self._queue is not None:
            self._queue.clear()
        if self._space is not None:
            self._space.set()
        if self._idle is not None:
            self._idle.set()


def _consume(fut: asyncio.Future[AppendResult]) -> None:
    """Mark an outcome nobody will read as seen (no "never retrieved" noise)."""
    if not fut.cancelled():
        fut.exception()
