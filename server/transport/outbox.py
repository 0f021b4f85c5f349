"""Per-connection outbound batching, with one frame built for many recipients.

Two paths, chosen per connection:

* **Direct (WebSocket).** ``push`` appends the shared, already-encoded envelope
  to the connection's pending list and marks it dirty. Once per event-loop
  turn the ``Flusher`` turns each pending list into a Socket.IO ``ev`` frame —
  built once for every connection with the same list of envelopes (same
  audience, same encoding) — and writes it to the transport. No task, no
  queue item and no frame build per recipient; under load a turn carries many
  events, so one frame carries many events.
* **Queued (long-polling, or while upgrading).** Events are appended to one
  open ``BatchPacket`` in engine.io's queue, sealed into a single frame when
  engine.io's writer takes it.

A connection whose unsent bytes pass ``max_pending_bytes`` is not reading (or
cannot keep up): it is cut off with a ``slow_consumer`` notice and resumes
from its last seq when it reconnects, so one slow phone never stalls others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from engineio import packet as eio_packet

from protocol.codec import msgpack_array_header
from server.services.hub import Piece
from server.transport.engineio_tuning import websocket_transport

#: Socket.IO frame (without the engine.io type digit) announcing one binary attachment.
BINARY_EV_HEADER = '51-["ev",{"_placeholder":true,"num":0}]'
_JSON_OPEN, _JSON_CLOSE = b'42["ev",[', b"]]"


def ws_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked (server-to-client) WebSocket frame."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, n))
    elif n < 0x10000:
        header = bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big")
    return header + payload


_BINARY_HEADER_FRAME = ws_frame(0x1, ("4" + BINARY_EV_HEADER).encode())


def build_frame(binary: bool, pieces: list[Piece]) -> bytes:
    """The WebSocket frame(s) carrying ``pieces`` as one ``ev`` event."""
    if binary:
        return _BINARY_HEADER_FRAME + ws_frame(
            0x2, msgpack_array_header(len(pieces)) + b"".join(pieces)
        )
    return ws_frame(0x1, _JSON_OPEN + b",".join(pieces) + _JSON_CLOSE)


class Flusher:
    """Writes every dirty outbox once per event-loop turn, sharing frames."""

    def __init__(self) -> None:
        self._dirty: list[Outbox] = []
        self._scheduled = False

    def mark(self, outbox: Outbox) -> None:
        self._dirty.append(outbox)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        frames: dict[tuple[bool, tuple[int, ...]], bytes] = {}
        for outbox in dirty:
            outbox.flush(frames)


class BatchPacket(eio_packet.Packet):  # type: ignore[misc]
    """An engine.io MESSAGE whose payload is assembled when it is written."""

    def __init__(self, binary: bool, on_seal: Callable[[BatchPacket], None]) -> None:
        super().__init__(eio_packet.MESSAGE, b"" if binary else "")
        self.pieces: list[Piece] = []
        self._on_seal = on_seal

    def encode(self, b64: bool = False) -> Any:
        if self.encode_cache is None:
            self._on_seal(self)
            self.data: Any
            if self.binary:
                self.data = msgpack_array_header(len(self.pieces)) + b"".join(self.pieces)
            else:
                self.data = (_JSON_OPEN[1:] + b",".join(self.pieces) + _JSON_CLOSE).decode()
            self.pieces = []
        return super().encode(b64)


class Outbox:
    """One connection's outbound events."""

    def __init__(
        self,
        eio_socket: Any,
        encoding: str,
        max_pending_bytes: int,
        on_overflow: Callable[[], None],
        flusher: Flusher,
    ) -> None:
        self._socket = eio_socket
        self._binary = encoding == "msgpack"
        self._max = max_pending_bytes
        self._on_overflow = on_overflow
        self._flusher = flusher
        self._pending: list[Piece] = []
        #: Bytes waiting for this turn's flush (direct path).
        self._pending_bytes = 0
        #: Bytes in the open batch engine.io's writer has not taken yet (queued path).
        self._queued_bytes = 0
        self._open: BatchPacket | None = None
        self.closed = False

    # ------------------------------------------------------------------ push

    def push(self, piece: Piece) -> bool:
        """Queue a live event; cut the connection off if it is too far behind.

        "Behind" is what the peer has not taken yet from earlier turns (the
        transport's buffer, or the batch engine.io's writer has not taken): a
        single burst larger than the limit does not cut off a peer that reads.
        """
        if self._unread() > self._max:
            self._overflow()
            return False
        return self._append(piece)

    async def push_backlog(self, piece: Piece) -> bool:
        """Queue an event read from the log; wait for the peer rather than overflow."""
        # The transport's buffer has no drain notification of ours to await;
        # this poll runs only while a catch-up outpaces the peer.
        while self._backlog() > self._max // 2 and not self.closed:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        return self._append(piece)

    def _append(self, piece: Piece) -> bool:
        if self.closed or self._socket.closed:
            return False
        if self._open is None and websocket_transport(self._socket) is not None:
            if not self._pending:
                self._flusher.mark(self)
            self._pending.append(piece)
            self._pending_bytes += len(piece)
        else:
            self._queue(piece)
        return True

    def _queue(self, piece: Piece) -> None:
        batch = self._open
        if batch is None:
            batch = self._open = BatchPacket(self._binary, self._sealed)
            if self._binary:
                header = eio_packet.Packet(eio_packet.MESSAGE, BINARY_EV_HEADER)
                self._socket.queue.put_nowait(header)
            self._socket.queue.put_nowait(batch)
        batch.pieces.append(piece)
        self._queued_bytes += len(piece)

    def _sealed(self, batch: BatchPacket) -> None:
        if self._open is batch:
            self._open = None
            self._queued_bytes = 0

    def _unread(self) -> int:
        """Bytes from earlier turns the peer has not taken yet."""
        transport = websocket_transport(self._socket)
        if transport is not None and self._open is None:
            return int(transport.get_write_buffer_size())
        return self._queued_bytes

    def _backlog(self) -> int:
        """Bytes not yet handed to the kernel: ours plus the transport's buffer."""
        transport = websocket_transport(self._socket)
        buffered = transport.get_write_buffer_size() if transport is not None else 0
        return self._pending_bytes + self._queued_bytes + buffered

    def cut_off(self) -> None:
        """End delivery and cut the connection off (the client resumes by seq)."""
        self._overflow()

    def _overflow(self) -> None:
        if not self.closed:
            self.closed = True
            self._pending = []
            self._on_overflow()

    # ----------------------------------------------------------------- flush

    def flush(self, frames: dict[tuple[bool, tuple[int, ...]], bytes]) -> None:
        pieces, self._pending = self._pending, []
        self._pending_bytes = 0
        if not pieces or self.closed:
            return
        transport = websocket_transport(self._socket)
        if transport is None:  # the socket went away or is being upgraded again
            for piece in pieces:
                self._queue(piece)
            return
        key = (self._binary, tuple(map(id, pieces)))
        frame = frames.get(key)
        if frame is None:
            frame = frames[key] = build_frame(self._binary, pieces)
        transport.write(frame)

    def send_text(self, socketio_frame: str) -> None:
        """Queue a ready Socket.IO text frame (control notices), after pending events."""
        if not self._socket.closed:
            self._socket.queue.put_nowait(eio_packet.Packet(eio_packet.MESSAGE, socketio_frame))
