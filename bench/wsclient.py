"""A minimal Socket.IO v4 client over a hand-rolled WebSocket, for load generation.

Why not python-socketio's AsyncClient or aiohttp's ws client: the machine has
two cores, one for the server under test and one for *all* the clients. A
full client costs tens of microseconds per received frame, so 100 of them
saturate their core long before the Node reference saturates its own, and the
benchmark would measure the clients. This one is an ``asyncio.BufferedProtocol``:
one ``buffer_updated`` call parses every complete WebSocket frame received
with a few integer operations and hands ``ev`` packets, undecoded and
uncopied, to a sink.

Only what the benchmark needs is implemented: the upgrade handshake
(``GET /socket.io/?EIO=4&transport=websocket``), engine.io open/ping/pong,
Socket.IO connect with an auth object (``40{...}``), events with ack ids out
(``42<id>["cmd",{...}]``) and acks in (``43<id>[...]``). Server frames are
never masked (RFC 6455); client frames are, as servers require.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson

#: Socket.IO event frames the sinks receive start with this (engine.io MESSAGE + EVENT).
EV_PREFIX = b'42["ev",'

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10
#: Receive buffer per connection, and the free space below which it is compacted.
READ_BUFFER = 256 * 1024
MIN_FREE = 64 * 1024


class EventSink(Protocol):
    """Receives every ``ev`` packet, in place, with the monotonic time its bytes arrived.

    The packet is ``buf[start:end]`` (``42["ev",[...]]``); ``buf`` is the
    connection's receive buffer and is reused once ``on_ev`` returns, so a
    sink reads what it needs right away and keeps no reference to it.
    """

    def on_ev(self, buf: bytearray, start: int, end: int, arrived_ns: int) -> None: ...

    def on_other(self, packet: bytes) -> None:
        """Any other server event (``welcome``, ``notice``...)."""
        ...

    def on_lost(self) -> None:
        """The connection closed before the benchmark closed it."""
        ...


class ConnectRefused(Exception):
    """The server answered the Socket.IO connect with an error packet."""


AckCallback = Callable[[bytes], None]


def mask_payload(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the repeated 4-byte ``key`` (RFC 6455 §5.3), via big ints."""
    n = len(payload)
    if n == 0:
        return payload
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(stream, "little")).to_bytes(
        n, "little"
    )


def client_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One final, masked client frame."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, 0x80 | n))
    elif n < 0x10000:
        header = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    key = os.urandom(4)
    return header + key + mask_payload(payload, key)


def ack_id(frame: bytes) -> int | None:
    """The ack id of a ``43<id>[...]`` frame, None if it has none."""
    end = frame.find(b"[", 2)
    digits = frame[2:end]
    return int(digits) if end > 2 and digits.isdigit() else None


class SioConnection(asyncio.BufferedProtocol):
    """One Socket.IO client connection on the default namespace.

    A ``BufferedProtocol``: the event loop ``recv_into``s a buffer we own, so
    no bytes object is allocated per read and ``ev`` packets are handed to the
    sink in place, without a copy.
    """

    def __init__(self, host: str, port: int, auth: dict[str, Any], sink: EventSink) -> None:
        self._request = (
            f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self._auth = b"40" + orjson.dumps(auth)
        self.sink = sink
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._transport: asyncio.Transport | None = None
        self._buf = bytearray(READ_BUFFER)
        self._view = memoryview(self._buf)
        self._start = 0  # first unparsed byte
        self._end = 0  # one past the last received byte
        self._upgraded = False
        self._fragments: list[bytes] = []
        self._fragment_op = OP_TEXT
        self._acks: dict[int, AckCallback] = {}
        self._next_ack = 0
        self.closing = False

    # ------------------------------------------------------------- asyncio

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed during connect: {exc}"))
        if not self.closing:
            self.sink.on_lost()
        self._acks.clear()

    def get_buffer(self, sizehint: int) -> memoryview:
        if len(self._buf) - self._end < MIN_FREE:
            self._make_room()
        return self._view[self._end :]

    def _make_room(self) -> None:
        """Move the unparsed tail to the front; grow if one frame needs more room."""
        live = self._end - self._start
        if len(self._buf) - live < MIN_FREE:
            self._view.release()
            self._buf = self._buf[self._start : self._end] + bytearray(len(self._buf) + live)
            self._view = memoryview(self._buf)
        else:
            self._buf[:live] = self._buf[self._start : self._end]
        self._start, self._end = 0, live

    def buffer_updated(self, nbytes: int) -> None:
        arrived = time.monotonic_ns()
        self._end += nbytes
        if not self._upgraded and not self._upgrade():
            return
        buf, pos, size = self._buf, self._start, self._end
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            end = pos + head + length
            if end > size:
                break
            self._frame(b0, pos + head, end, arrived)
            pos = end
        self._start = pos
        if pos == size:
            self._start = self._end = 0

    # ----------------------------------------------------------- websocket

    def _upgrade(self) -> bool:
        """Consume the HTTP 101 answer; False while it is incomplete."""
        buf = self._buf[self._start : self._end]
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        status = bytes(buf[: buf.find(b"\r\n")])
        if b" 101 " not in status:
            self._fail(ConnectionError(f"websocket upgrade refused: {status.decode()!r}"))
            return False
        self._start += end + 4
        self._upgraded = True
        return True

    def _frame(self, b0: int, start: int, end: int, arrived: int) -> None:
        opcode, fin = b0 & 0x0F, b0 & 0x80
        buf = self._buf
        if opcode == OP_CONT or not fin:
            if opcode != OP_CONT:
                self._fragment_op = opcode
            self._fragments.append(bytes(buf[start:end]))
            if not fin:
                return
            opcode, buf = self._fragment_op, bytearray(b"".join(self._fragments))
            start, end = 0, len(buf)
            self._fragments = []
        if opcode in (OP_TEXT, OP_BINARY):
            if buf.startswith(EV_PREFIX, start, end):
                self.sink.on_ev(buf, start, end, arrived)  # the hot path, in place
            else:
                self._packet(bytes(buf[start:end]))
        elif opcode == OP_PING:
            self._write(client_frame(bytes(buf[start:end]), OP_PONG))
        elif opcode == OP_CLOSE:
            self.close()

    # ------------------------------------------------- engine.io/socket.io

    def _packet(self, packet: bytes) -> None:
        """Dispatch one engine.io packet other than ``ev``."""
        if packet.startswith(b"43"):
            ident = ack_id(packet)
            callback = self._acks.pop(ident, None) if ident is not None else None
            if callback is not None:
                callback(packet)
        elif packet.startswith(b"42"):
            self.sink.on_other(packet)
        elif packet == b"2":
            self._write(client_frame(b"3"))  # engine.io ping -> pong
        elif packet.startswith(b"0"):
            self._write(client_frame(self._auth))  # engine.io open -> socket.io connect
        elif packet.startswith(b"40"):
            if not self.ready.done():
                self.ready.set_result(None)
        elif packet.startswith(b"44"):
            self._fail(ConnectRefused(packet[2:].decode(errors="replace")))
        elif packet.startswith((b"1", b"41")):
            self.close()

    def _write(self, data: bytes) -> None:
        if self._transport is not None:
            self._transport.write(data)

    def _fail(self, exc: Exception) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc)
        self.close()

    # ----------------------------------------------------------------- API

    @property
    def connected(self) -> bool:
        return self._transport is not None and self.ready.done() and not self.closing

    def send_cmd(self, command: dict[str, Any], on_ack: AckCallback) -> None:
        """Emit ``cmd`` with an ack id; ``on_ack`` gets the raw ``43<id>[...]`` frame."""
        ident = self._next_ack
        self._next_ack += 1
        self._acks[ident] = on_ack
        body = b"42" + str(ident).encode() + orjson.dumps(["cmd", command])
        self._write(client_frame(body))

    async def call(self, command: dict[str, Any], timeout: float = 10.0) -> Any:
        """Emit ``cmd`` and wait for its ack; the decoded first ack argument."""
        done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        def acked(frame: bytes) -> None:
            if not done.done():
                done.set_result(frame)

        self.send_cmd(command, acked)
        frame = await asyncio.wait_for(done, timeout)
        args = orjson.loads(frame[frame.find(b"[") :])
        return args[0] if args else None

    def close(self) -> None:
        self.closing = True
        if self._transport is not None:
            self._transport.close()


async def connect(
    host: str,
    port: int,
    auth: dict[str, Any],
    sink: EventSink,
    timeout: float = 10.0,
    local_addr: str | None = None,
) -> SioConnection:
    """Open a connection and wait for the Socket.IO connect to be accepted.

    ``local_addr``: the source address (a worker group deals clients out by it).
    """
    loop = asyncio.get_running_loop()
    _, conn = await loop.create_connection(
        lambda: SioConnection(host, port, auth, sink),
        host,
        port,
        local_addr=None if local_addr is None else (local_addr, 0),
    )
    try:
        await asyncio.wait_for(conn.ready, timeout)
    except BaseException:
        conn.close()
        raise
    return conn
