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
from collections.abc import Callable, Sequence

from protocol.codec import msgpack_array_header
from server.services.hub import Piece
from server.transport.sio_seam import Connection
from server.transport.ws_frame import ws_frame

#: Socket.IO frame (without the engine.io type digit) announcing one binary attachment.
BINARY_EV_HEADER = '51-["ev",{"_placeholder":true,"num":0}]'
_JSON_OPEN, _JSON_CLOSE = b'42["ev",[', b"]]"


_BINARY_HEADER_FRAME = ws_frame(0x1, ("4" + BINARY_EV_HEADER).encode())


def build_frame(binary: bool, pieces: list[Piece]) -> bytes:
    """The WebSocket frame(s) carrying ``pieces`` as one ``ev`` event."""
    if binary:
        return _BINARY_HEADER_FRAME + ws_frame(
            0x2, msgpack_array_header(len(pieces)) + b"".join(pieces)
        )
    return ws_frame(0x1, _JSON_OPEN + b",".join(pieces) + _JSON_CLOSE)


def _ack_text(frame: bytes) -> str:
    """The ACK text of an ack frame built by ``Outbox.ack`` (header, then ``4``)."""
    n = frame[1] & 0x7F
    start = 2 if n < 126 else 4 if n == 126 else 10
    return frame[start + 1 :].decode()


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


class Batch:
    """The events of one engine.io MESSAGE, assembled when engine.io's writer takes it."""

    __slots__ = ("_on_seal", "binary", "pieces")

    def __init__(self, binary: bool, on_seal: Callable[[Batch], None]) -> None:
        self.binary = binary
        self.pieces: list[Piece] = []
        self._on_seal = on_seal

    def render(self) -> str | bytes:
        """Seal the batch: later events go to a new one."""
        self._on_seal(self)
        pieces, self.pieces = self.pieces, []
        if self.binary:
            return msgpack_array_header(len(pieces)) + b"".join(pieces)
        return (_JSON_OPEN[1:] + b",".join(pieces) + _JSON_CLOSE).decode()


class Outbox:
    """One connection's outbound events."""

    def __init__(
        self,
        connection: Connection,
        encoding: str,
        max_pending_bytes: int,
        on_overflow: Callable[[], None],
        flusher: Flusher,
    ) -> None:
        self._conn = connection
        self._binary = encoding == "msgpack"
        self._max = max_pending_bytes
        self._on_overflow = on_overflow
        self._flusher = flusher
        self._pending: list[Piece] = []
        #: Bytes waiting for this turn's flush (direct path).
        self._pending_bytes = 0
        #: Bytes in the open batch engine.io's writer has not taken yet (queued path).
        self._queued_bytes = 0
        self._open: Batch | None = None
        #: Ack frames for this turn's flush, written after its events.
        self._acks: list[bytes] = []
        self.closed = False

    # ------------------------------------------------------------------ push

    def push(self, piece: Piece) -> bool:
        """Queue a live event; cut the connection off if it is too far behind.

        "Behind" is what the peer has not taken yet from earlier turns (the
        transport's buffer, or the batch engine.io's writer has not taken): a
        single burst larger than the limit does not cut off a peer that reads.
        """
        # _unread() and _append() in one, with one look at the transport:
        # this runs once per delivery, 400,000 times a second under fan-out.
        transport = self._conn.direct_transport() if self._open is None else None
        unread = self._queued_bytes if transport is None else transport.get_write_buffer_size()
        if unread > self._max:
            self._overflow()
            return False
        if self.closed or self._conn.closed:
            return False
        if transport is None:
            self._queue(piece)
            return True
        if not self._pending:
            self._flusher.mark(self)
        self._pending.append(piece)
        self._pending_bytes += len(piece)
        return True

    def push_many(self, pieces: Sequence[Piece]) -> int:
        """``push`` of each in order, stopping at the first refused: how many were queued.

        On the direct path what the peer has not taken (the transport's buffer)
        does not change within a turn, so one check stands for all of them.
        """
        transport = self._conn.direct_transport() if self._open is None else None
        if transport is None:  # queued: its byte count grows with each piece
            queued = 0
            for piece in pieces:
                if not self.push(piece):
                    break
                queued += 1
            return queued
        if transport.get_write_buffer_size() > self._max:
            self._overflow()
            return 0
        if self.closed or self._conn.closed:
            return 0
        if not self._pending:
            self._flusher.mark(self)
        self._pending.extend(pieces)
        self._pending_bytes += sum(map(len, pieces))
        return len(pieces)

    async def push_backlog(self, piece: Piece) -> bool:
        """Queue an event read from the log; wait for the peer rather than overflow."""
        # The transport's buffer has no drain notification of ours to await;
        # this poll runs only while a catch-up outpaces the peer.
        while self._backlog() > self._max // 2 and not self.closed:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        return self._append(piece)

    def _append(self, piece: Piece) -> bool:
        if self.closed or self._conn.closed:
            return False
        if self._open is None and self._conn.direct_transport() is not None:
            if not self._pending:
                self._flusher.mark(self)
            self._pending.append(piece)
            self._pending_bytes += len(piece)
        else:
            self._queue(piece)
        return True

    def ack(self, text: str) -> None:
        """Send a Socket.IO ACK (``3<id>[...]``) in order with this connection's acks.

        Straight to the transport in this turn's write, after the turn's events
        (one write for both), unless an earlier ack still waits in engine.io's
        queue or there is no direct transport (long-polling, upgrading): then
        behind it on that queue. Acks are sent after a cut-off too: a command
        received was stored and is acknowledged (SPEC, "Shutdown").
        """
        conn = self._conn
        if self.closed or conn.acks_queued or conn.direct_transport() is None:
            conn.queue_ack(text)
            return
        if not self._pending and not self._acks:
            self._flusher.mark(self)
        self._acks.append(ws_frame(0x1, ("4" + text).encode()))

    def _queue(self, piece: Piece) -> None:
        batch = self._open
        if batch is None:
            batch = self._open = Batch(self._binary, self._sealed)
            if self._binary:
                self._conn.queue_text(BINARY_EV_HEADER)
            self._conn.queue_lazy(self._binary, batch.render)
        batch.pieces.append(piece)
        self._queued_bytes += len(piece)

    def _sealed(self, batch: Batch) -> None:
        if self._open is batch:
            self._open = None
            self._queued_bytes = 0

    def _unread(self) -> int:
        """Bytes from earlier turns the peer has not taken yet."""
        transport = self._conn.direct_transport()
        if transport is not None and self._open is None:
            return int(transport.get_write_buffer_size())
        return self._queued_bytes

    def _backlog(self) -> int:
        """Bytes not yet handed to the kernel: ours plus the transport's buffer."""
        transport = self._conn.direct_transport()
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
        acks, self._acks = self._acks, []
        self._pending_bytes = 0
        if self.closed:
            pieces = []
        if not pieces and not acks:
            return
        transport = self._conn.direct_transport()
        if transport is None:  # the socket went away or is being upgraded again
            for piece in pieces:
                self._queue(piece)
            for ack in acks:
                self._conn.queue_ack(_ack_text(ack))
            return
        if not pieces:
            transport.write(acks[0] if len(acks) == 1 else b"".join(acks))
            return
        key = (self._binary, tuple(map(id, pieces)))
        frame = frames.get(key)
        if frame is None:
            frame = frames[key] = build_frame(self._binary, pieces)
        transport.write(b"".join((frame, *acks)) if acks else frame)

    def send_text(self, socketio_frame: str) -> None:
        """Queue a ready Socket.IO text frame (control notices), after pending events."""
        self._conn.queue_text(socketio_frame)
