"""asyncio's queue and event, for objects kept per connection: nothing allocated while idle.

CPython allocates a 64-slot block (760 bytes) for every deque, empty or not,
and ``asyncio.Queue`` holds four of them, ``asyncio.Event`` one, from their
creation. Per connection, that was about a seventh of an idle connection's
memory. These keep their waiters and items only while they have some.

:class:`SocketQueue`: engine.io keeps one queue per session for the packets its writer sends. An
``asyncio.Queue`` holds three deques and an ``Event`` with a fourth from its
creation: about 3 KB per connection (CPython allocates a 64-slot block for
every deque, empty or not), although a WebSocket session's queue is empty
nearly all the time (events and acks are written straight to the transport;
only pings and a few notices pass through it). This one allocates its items
and its waiters only while it has some, and drops them once drained.

The same behaviour as ``asyncio.Queue(maxsize=0)`` for every method engine.io
and Liaison call (tests/unit/test_socket_queue.py runs both side by side):
``put``/``put_nowait`` never wait, ``get`` waits in FIFO order of its callers,
``task_done``/``join`` count unfinished items, and a ``get`` cancelled after
an item was handed to it passes the wake-up on.

:class:`Flag`: ``asyncio.Event``'s ``set``, ``is_set`` and ``wait``, for the
gateway's "this session is gone" (awaited only while a session is sent away).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any


class SocketQueue:
    __slots__ = ("_finished", "_getters", "_items", "_unfinished", "on_put")

    def __init__(self) -> None:
        #: Called after each put: a WebSocket session's writer starts then
        #: (sio_seam's ``_OnDemandWriter``) instead of waiting in a ``get``.
        self.on_put: Callable[[], None] | None = None
        self._items: deque[Any] | None = None
        #: A list: there is one getter (engine.io's writer) nearly always.
        self._getters: list[asyncio.Future[None]] | None = None
        self._unfinished = 0
        self._finished: asyncio.Event | None = None

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return False

    def put_nowait(self, item: Any) -> None:
        if self._items is None:
            self._items = deque()
        self._items.append(item)
        self._unfinished += 1
        self._wake_one_getter()
        if self.on_put is not None:
            self.on_put()

    async def put(self, item: Any) -> None:
        self.put_nowait(item)

    def get_nowait(self) -> Any:
        if not self._items:
            raise asyncio.QueueEmpty
        item = self._items.popleft()
        if not self._items:
            self._items = None  # drained: its block goes back to the allocator
        return item

    async def get(self) -> Any:
        while not self._items:
            getter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            waiting = self._getters
            waiting.append(getter)
            try:
                await getter
            except BaseException:
                getter.cancel()  # a no-op if it was woken already
                if getter in waiting:  # not woken: still where it was put
                    waiting.remove(getter)
                    if not waiting and waiting is self._getters:
                        self._getters = None
                if self._items and not getter.cancelled():
                    self._wake_one_getter()  # it was handed an item it will not take
                raise
        return self.get_nowait()

    def task_done(self) -> None:
        if self._unfinished <= 0:
            raise ValueError("task_done() called too many times")
        self._unfinished -= 1
        if self._unfinished == 0 and self._finished is not None:
            self._finished.set()
            self._finished = None  # its waiters hold it; the next join makes another

    async def join(self) -> None:
        if self._unfinished == 0:
            return
        if self._finished is None:
            self._finished = asyncio.Event()
        await self._finished.wait()

    def _wake_one_getter(self) -> None:
        getters = self._getters
        while getters:
            getter = getters.pop(0)
            if not getter.done():
                getter.set_result(None)
                break
        if not getters:
            self._getters = None


class Flag:
    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters or [], None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self) -> None:
        if self._set:
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        waiting = self._waiters
        waiting.append(waiter)
        try:
            await waiter
        finally:
            if waiter in waiting:  # cancelled before set(), which empties it
                waiting.remove(waiter)
