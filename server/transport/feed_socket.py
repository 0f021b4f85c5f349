"""The feed over Socket.IO: ``feed.subscribe`` starts one reader task per connection.

The task reads pages from the durable feed (services/feed.py) from the
connection's cursor and sends each as a ``feed`` frame
``{"entries": [...], "cursor": "..."}``, then waits for the next wake-up: the
backlog first, then live entries, with no in-memory queue to lose. A
connection that reconnects subscribes again with the last cursor it got.
One frame is sent at a time (the next page is read only once the frame is
handed to the transport), so a slow phone lags behind in the log rather
than piling frames up in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from protocol import v1
from protocol.codec import Codec
from protocol.errors import ProtocolError
from server.domain.model import Principal
from server.errors import StorageUnavailable
from server.services.feed import FeedCursor, FeedService, parse_kinds

log = logging.getLogger(__name__)

#: Entries per ``feed`` frame at most.
FRAME_ENTRIES = 200
#: Longest wait between two looks at the feed (a wake-up may be lost).
WAIT_S = 20.0
#: Pause after a storage error before reading again.
OUTAGE_S = 1.0

Emit = Callable[[str, Any, str], Awaitable[None]]


class FeedConnection(Protocol):
    sid: str
    principal: Principal
    codec: Codec


class FeedSockets:
    """At most one feed reader per connection."""

    def __init__(self, feed: FeedService, emit: Emit) -> None:
        self.feed, self._emit = feed, emit
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def subscribe(self, conn: FeedConnection, cmd: v1.FeedSubscribe) -> dict[str, Any]:
        """Check the cursor now (a typed error in the ack), then read on in a task."""
        kinds = parse_kinds(cmd.kinds)
        cursor = FeedCursor.decode(cmd.after) if cmd.after else await self.feed.start_cursor()
        await self.feed.page(conn.principal, cursor, kinds, 1)  # resync_required here
        self.unsubscribe(conn)
        task = asyncio.create_task(self._read(conn, cursor, kinds), name=f"feed-{conn.sid}")
        self._tasks[conn.sid] = task
        task.add_done_callback(lambda t: self._forget(conn.sid, t))
        return {"cursor": cursor.encode(), "kinds": sorted(kinds)}

    def unsubscribe(self, conn: FeedConnection) -> None:
        task = self._tasks.pop(conn.sid, None)
        if task is not None:
            task.cancel()

    def drop(self, sid: str) -> None:
        task = self._tasks.pop(sid, None)
        if task is not None:
            task.cancel()

    def _forget(self, sid: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(sid) is task:
            del self._tasks[sid]
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("the feed of %s stopped: %r", sid, exc, exc_info=exc)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def count(self) -> int:
        return len(self._tasks)

    async def _read(self, conn: FeedConnection, cursor: FeedCursor, kinds: frozenset[str]) -> None:
        while True:
            generation = self.feed.generation
            try:
                page = await self.feed.page(conn.principal, cursor, kinds, FRAME_ENTRIES)
            except StorageUnavailable as exc:
                log.warning("feed of %s waits for storage: %s", conn.sid, exc)
                await asyncio.sleep(OUTAGE_S)
                continue
            except ProtocolError as err:
                # resync_required: say so, with the cursor to start again from.
                await self._send(conn, "notice", {**err.to_wire(), "feed": True})
                return
            if page.entries:
                frame = {"entries": page.entries, "cursor": page.cursor.encode()}
                await self._send(conn, "feed", frame)
            cursor = page.cursor
            if page.at_head:
                await self.feed.wait(generation, WAIT_S)

    async def _send(self, conn: FeedConnection, name: str, payload: dict[str, Any]) -> None:
        """``feed`` in the connection's encoding (as acks); ``notice`` as every notice."""
        binary = name == "feed" and conn.codec.name == "msgpack"
        data = conn.codec.encode(payload) if binary else payload
        await self._emit(name, data, conn.sid)
