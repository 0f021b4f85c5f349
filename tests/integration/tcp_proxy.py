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
