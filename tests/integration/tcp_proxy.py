"""A small TCP proxy for fault injection: it can freeze its current connections.

A frozen connection stays open but carries nothing in either direction, like
a half-open link after a network fault: neither side gets an error, which is
exactly what a liveness check has to catch. New connections flow normally.
"""

from __future__ import annotations

import asyncio
import contextlib


class FreezableProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._frozen: list[asyncio.Event] = []
        self._live: list[asyncio.Event] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers += [writer, up_writer]
        frozen = asyncio.Event()
        self._live.append(frozen)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst, frozen))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pump(
        src: asyncio.StreamReader, dst: asyncio.StreamWriter, frozen: asyncio.Event
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await src.read(65536):
                if frozen.is_set():
                    await asyncio.Event().wait()  # swallow everything from now on
                dst.write(data)
                await dst.drain()
        dst.close()

    def freeze_existing(self) -> int:
        """Freeze every connection open now; return how many."""
        for flag in self._live:
            flag.set()
        count, self._live = len(self._live), []
        return count

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class _Link:
    """One proxied connection and the faults applied to it."""

    __slots__ = ("frozen", "muted", "opening", "tail")

    def __init__(self) -> None:
        self.frozen = False  # nothing passes, either way
        self.muted = False  # requests pass, replies are dropped
        self.opening = b""  # the first bytes the client sent (its handshake, CLIENT SETNAME)
        self.tail = b""  # the last bytes it sent (for patterns split across reads)

    def saw(self, pattern: bytes) -> bool:
        return pattern in self.opening or pattern in self.tail


class FaultProxy:
    """A TCP proxy in front of Redis that injects faults by what the client sends.

    * ``hold_replies`` / ``release_replies``: replies wait (requests still
      reach Redis and are applied), like a slow link.
    * ``mute_reply_after(pattern)``: the next connection that sends
      ``pattern`` gets no reply from then on: the request was applied, the
      answer is lost, the client times out ("outcome unknown").
    * ``freeze_senders_of(pattern)``: every connection that sent or sends
      ``pattern`` carries nothing any more (e.g. the node's pub/sub
      connection, by its ``CLIENT SETNAME``): a subscriber that lags.
    * ``wait_sent(pattern, since)``: wait until a client sent ``pattern``.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.sent = bytearray()
        self._sent_grew = asyncio.Event()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._mute_next: bytes | None = None
        self._freeze: list[bytes] = []
        self._links: list[_Link] = []
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def hold_replies(self) -> None:
        self._flowing.clear()

    def release_replies(self) -> None:
        self._flowing.set()

    def mute_reply_after(self, pattern: bytes) -> None:
        self._mute_next = pattern

    def freeze_senders_of(self, pattern: bytes) -> int:
        """Freeze connections that sent ``pattern`` (now and later); return how many now."""
        self._freeze.append(pattern)
        frozen = [link for link in self._links if link.saw(pattern)]
        for link in frozen:
            link.frozen = True
        return len(frozen)

    def thaw(self) -> None:
        """New connections flow again; those already frozen stay dead."""
        self._freeze.clear()

    def links_that_sent(self, pattern: bytes) -> int:
        return sum(link.saw(pattern) for link in self._links)

    def mark(self) -> int:
        return len(self.sent)

    async def wait_sent(self, pattern: bytes, since: int, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while pattern not in self.sent[since:]:
                self._sent_grew.clear()
                await self._sent_grew.wait()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers += [writer, up_writer]
        link = _Link()
        self._links.append(link)
        for pump in (
            self._requests(link, reader, up_writer),
            self._replies(link, up_reader, writer),
        ):
            task = asyncio.create_task(pump)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _requests(
        self, link: _Link, src: asyncio.StreamReader, dst: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await src.read(65536):
                window = link.tail + data
                link.tail = window[-256:]
                if len(link.opening) < 4096:
                    link.opening = (link.opening + data)[:4096]
                if any(p in window for p in self._freeze):
                    link.frozen = True
                if self._mute_next is not None and self._mute_next in window:
                    link.muted, self._mute_next = True, None
                self.sent += data
                self._sent_grew.set()
                if link.frozen:
                    continue
                dst.write(data)
                await dst.drain()
        dst.close()

    async def _replies(
        self, link: _Link, src: asyncio.StreamReader, dst: asyncio.StreamWriter
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await src.read(65536):
                await self._flowing.wait()
                if link.frozen or link.muted:
                    continue
                dst.write(data)
                await dst.drain()
        dst.close()

    async def close(self) -> None:
        self._flowing.set()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
