"""Per-connection outbound batching over engine.io's own writer.

engine.io gives every socket a queue and a writer task. Instead of one queue
item per event we queue one *open batch* per connection: events are appended
to it (already encoded, shared by every recipient) until the writer takes it
and calls ``encode()``, which seals it into a single Socket.IO ``ev`` frame.
Under load the writer lags, batches grow, and one frame carries many events:
no task, no queue hop and no serialisation per recipient.

A connection whose open batch grows past ``max_pending_bytes`` is not reading
(or cannot keep up): it is cut off with a ``slow_consumer`` notice and resumes
from its last seq when it reconnects, so one slow phone never stalls others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from engineio import packet as eio_packet

from server.services.hub import Piece

#: Socket.IO frame (without the engine.io type digit) announcing one binary attachment.
BINARY_EV_HEADER = '51-["ev",{"_placeholder":true,"num":0}]'


def msgpack_array_header(n: int) -> bytes:
    if n < 16:
        return bytes((0x90 | n,))
    if n < 0x10000:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


class BatchPacket(eio_packet.Packet):  # type: ignore[misc]
    """An engine.io MESSAGE whose payload is assembled when it is written."""

    def __init__(self, binary: bool, on_seal: Callable[[BatchPacket], None]) -> None:
        super().__init__(eio_packet.MESSAGE, b"" if binary else "")
        self.pieces: list[Any] = []
        self._on_seal = on_seal

    def encode(self, b64: bool = False) -> Any:
        if self.encode_cache is None:
            self._on_seal(self)
            self.data: Any
            if self.binary:
                self.data = msgpack_array_header(len(self.pieces)) + b"".join(self.pieces)
            else:
                self.data = '2["ev",[' + ",".join(self.pieces) + "]]"
            self.pieces = []
        return super().encode(b64)


class Outbox:
    """Batches pre-encoded envelopes into an engine.io socket's queue."""

    def __init__(
        self,
        eio_socket: Any,
        encoding: str,
        max_pending_bytes: int,
        on_overflow: Callable[[], None],
    ) -> None:
        self._socket = eio_socket
        self._binary = encoding == "msgpack"
        self._max = max_pending_bytes
        self._on_overflow = on_overflow
        self._open: BatchPacket | None = None
        self._pending = 0
        self._drained = asyncio.Event()
        self._drained.set()
        self.closed = False

    def push(self, piece: Piece) -> bool:
        """Queue a live event; cut the connection off if its buffer overflows."""
        if not self._append(piece):
            return False
        if self._pending > self._max:
            self.closed = True
            self._on_overflow()
            return False
        return True

    async def push_backlog(self, piece: Piece) -> bool:
        """Queue an event read from the log; wait for the writer rather than overflow."""
        while self._pending > self._max // 2 and not self.closed:
            await self._drained.wait()
        return self._append(piece)

    def _append(self, piece: Piece) -> bool:
        if self.closed or self._socket.closed:
            return False
        batch = self._open
        if batch is None:
            batch = self._open = BatchPacket(self._binary, self._sealed)
            if self._binary:
                self._socket.queue.put_nowait(
                    eio_packet.Packet(eio_packet.MESSAGE, BINARY_EV_HEADER)
                )
            self._socket.queue.put_nowait(batch)
            self._drained.clear()
        batch.pieces.append(piece)
        self._pending += len(piece)
        return True

    def _sealed(self, batch: BatchPacket) -> None:
        if self._open is batch:
            self._open = None
            self._pending = 0
            self._drained.set()

    def send_text(self, socketio_frame: str) -> None:
        """Queue a ready Socket.IO text frame (control notices), after pending events."""
        if not self._socket.closed:
            self._socket.queue.put_nowait(eio_packet.Packet(eio_packet.MESSAGE, socketio_frame))
