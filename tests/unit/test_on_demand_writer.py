"""sio_seam's ``_OnDemandWriter``: engineio's WebSocket writer without a task while idle.

The session queue is the real :class:`SocketQueue`; the WebSocket is a
stand-in with engine.io's driver interface (``send``, ``close``) that can
stall a send or fail it, which a real socket cannot be made to do on cue.
tests/integration/test_sio_seam.py checks the writer on real connections.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from server.transport.lean_async import SocketQueue
from server.transport.sio_seam import _OnDemandWriter


class Packet:
    def __init__(self, text: str) -> None:
        self.text = text

    def encode(self) -> str:
        return self.text


class StandInSocket:
    """Records what was sent; a send can wait on ``gate`` or raise ``fail``."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed = 0
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None

    async def send(self, text: str) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.sent.append(text)

    async def close(self) -> None:
        self.closed += 1


def writer_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if "_write_queued" in repr(t.get_coro())]


def session() -> tuple[SocketQueue, StandInSocket, _OnDemandWriter]:
    queue, ws = SocketQueue(), StandInSocket()
    writer = _OnDemandWriter(SimpleNamespace(queue=queue), ws)
    return queue, ws, writer


async def test_no_task_while_nothing_is_queued_and_one_while_something_is() -> None:
    queue, ws, writer = session()
    writer.start()
    assert writer_tasks() == []
    queue.put_nowait(Packet("2"))
    assert len(writer_tasks()) == 1
    await writer.finished()
    assert ws.sent == ["2"]
    assert writer_tasks() == []
    assert queue._unfinished == 0


async def test_what_was_queued_before_start_is_sent_at_start() -> None:
    queue, ws, writer = session()
    queue.put_nowait(Packet("a"))  # during the upgrade: no writer yet
    queue.put_nowait(Packet("b"))
    assert writer_tasks() == []
    writer.start()
    await writer.finished()
    assert ws.sent == ["a", "b"]


async def test_packets_queued_during_a_send_follow_in_order_in_the_same_task() -> None:
    queue, ws, writer = session()
    writer.start()
    ws.gate = asyncio.Event()
    queue.put_nowait(Packet("1"))
    await asyncio.sleep(0)  # the writer is in its first send now
    for text in ("2", "3", "4"):
        queue.put_nowait(Packet(text))
    assert len(writer_tasks()) == 1, "one writer at a time"
    ws.gate.set()
    await writer.finished()
    assert ws.sent == ["1", "2", "3", "4"]


async def test_the_close_marker_closes_after_what_came_before_and_ends_the_writer() -> None:
    queue, ws, writer = session()
    writer.start()
    queue.put_nowait(Packet("6"))
    queue.put_nowait(None)
    await writer.finished()
    assert (ws.sent, ws.closed) == (["6"], 1)
    queue.put_nowait(Packet("late"))  # after the end: nothing starts, nothing is sent
    assert writer_tasks() == []
    await writer.finished()
    assert ws.sent == ["6"]


async def test_a_failed_send_closes_the_socket_and_nothing_more_is_sent() -> None:
    queue, ws, writer = session()
    writer.start()
    ws.fail = ConnectionResetError("peer gone")
    queue.put_nowait(Packet("x"))
    queue.put_nowait(Packet("y"))
    await writer.finished()
    assert (ws.sent, ws.closed) == ([], 1)
    ws.fail = None
    queue.put_nowait(Packet("z"))
    assert writer_tasks() == []
    assert ws.sent == []
