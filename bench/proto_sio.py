"""Bench-only prototype: the Engine.IO v4 / Socket.IO v5 subset Liaison uses, on aiohttp.

Issue 8 item 1 asked whether implementing that subset directly on aiohttp's
``WebSocketResponse`` is simpler and faster than python-socketio behind the
seam (server/transport/sio_seam.py). This is the measured prototype, NOT part
of the product: ``bench/proto_server.py`` runs ``liaison serve`` with
:class:`ProtoSocketServer` in place of the seam's ``SocketServer`` (same
gateway, outbox, pipeline, storage), so ``--servers proto`` compares transport
against transport. The figures and the decision (keep python-socketio behind
the seam) are in bench/README.md, "Decision record".

What it implements: WebSocket only (``EIO=4&transport=websocket``), OPEN,
PING/PONG with a timeout, CONNECT with auth on "/", EVENT with ack id, ACK
(text, and binary with one attachment), one-attachment BINARY_EVENT (msgpack
sessions), DISCONNECT, CLOSE. What it leaves out, which a product would need:
the long-polling fallback (handshake, GET/POST, upgrade probe), Origin rules
beyond an exact list, ``maxPayload`` per packet, per-connection write
backpressure on acks, and every edge case python-engineio has met over years.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from server.transport.sio_seam import CONNECT, ConnectionRefused, MalformedPacket
from server.transport.ws_frame import ws_frame

log = logging.getLogger(__name__)

_PLACEHOLDER = '{"_placeholder":true,"num":0}'


def _text_frame(text: str) -> bytes:
    return ws_frame(0x1, text.encode())


class ProtoConnection:
    """One WebSocket session: what the outbox and the gateway see (``sio_seam.Connection``)."""

    def __init__(self, eio_sid: str, ws: web.WebSocketResponse, transport: Any) -> None:
        self.eio_sid = eio_sid
        self.sid: str | None = None
        self.ws = ws
        self.transport: asyncio.Transport = transport
        self.closed = False
        self.pong = asyncio.Event()
        #: A BINARY_EVENT waiting for its attachment: (ack id, data with a placeholder).
        self.pending_binary: tuple[int | None, list[Any]] | None = None

    def direct_transport(self) -> asyncio.Transport | None:
        if self.closed or self.transport.is_closing():
            return None
        return self.transport

    def write(self, frame: bytes) -> None:
        if not self.closed and not self.transport.is_closing():
            self.transport.write(frame)

    def queue_text(self, socketio_frame: str) -> None:
        self.write(_text_frame("4" + socketio_frame))

    #: Every write goes straight to the transport: no ack ever waits in a queue.
    acks_queued = 0

    def queue_ack(self, text: str) -> None:
        self.queue_text(text)

    def queue_lazy(self, binary: bool, render: Callable[[], str | bytes]) -> None:
        data = render()
        if isinstance(data, bytes):
            self.write(ws_frame(0x2, data))
        else:
            self.write(_text_frame("4" + data))


class ProtoSocketServer:
    """The API of ``sio_seam.SocketServer`` the gateway uses, over aiohttp directly."""

    binary_allowed: set[str]
    event_handler: Callable[[str, str, int | None, list[Any]], Awaitable[None]]
    malformed_handler: Callable[[str, MalformedPacket], Awaitable[None]]

    def __init__(self, **kwargs: Any) -> None:
        self.ping_interval = float(kwargs.get("ping_interval", 25))
        self.ping_timeout = float(kwargs.get("ping_timeout", 20))
        self.max_size = int(kwargs.get("max_http_buffer_size", 1_000_000))
        origins = kwargs.get("cors_allowed_origins")
        self.origins = origins if isinstance(origins, list) else None
        self.binary_allowed = set()
        self.handlers: dict[str, Callable[..., Awaitable[Any]]] = {}
        self.conns: dict[str, ProtoConnection] = {}
        self.by_sid: dict[str, ProtoConnection] = {}

    # ------------------------------------------------------ wiring

    def on(self, event: str, handler: Callable[..., Awaitable[Any]]) -> None:
        self.handlers[event] = handler

    def attach(self, app: web.Application) -> None:
        app.router.add_get("/socket.io/", self._handle)

    # ------------------------------------------------------ accessors

    def connection(self, eio_sid: str) -> ProtoConnection | None:
        return self.conns.get(eio_sid)

    def eio_sid_of(self, sid: str) -> str:
        conn = self.by_sid.get(sid)
        return conn.eio_sid if conn is not None else ""

    def sid_of(self, eio_sid: str) -> str | None:
        conn = self.conns.get(eio_sid)
        return conn.sid if conn is not None else None

    def is_connected(self, sid: str) -> bool:
        return sid in self.by_sid

    # ------------------------------------------------------ sending

    async def emit(self, event: str, data: Any, to: str) -> None:
        conn = self.by_sid.get(to)
        if conn is not None:
            conn.queue_text("2" + orjson.dumps([event, data]).decode())

    async def send_ack(self, eio_sid: str, ack_id: int, payload: Any) -> None:
        conn = self.conns.get(eio_sid)
        if conn is None:
            return
        if isinstance(payload, bytes):
            conn.queue_text(f"61-{ack_id}[{_PLACEHOLDER}]")
            conn.write(ws_frame(0x2, payload))
        else:
            conn.queue_text(f"3{ack_id}" + orjson.dumps([payload]).decode())

    def ack_text(self, ack_id: int, payload: Any) -> str | None:
        """``3<id>[payload]`` (what send_ack writes for JSON); None if it is binary."""
        if isinstance(payload, bytes):
            return None
        return f"3{ack_id}" + orjson.dumps([payload]).decode()

    def admit_with(self, admission: Any) -> None:
        """Admission is not modelled here: every session is let in (a throughput yardstick)."""
        self.admission = admission

    async def send_connect_error(self, eio_sid: str, message: str, data: Any) -> None:
        conn = self.conns.get(eio_sid)
        if conn is not None:
            conn.queue_text("4" + orjson.dumps({"message": message, "data": data}).decode())

    # ------------------------------------------------------ closing

    async def hang_up(self, eio_sid: str) -> None:
        conn = self.conns.get(eio_sid)
        if conn is not None:
            conn.write(_text_frame("1"))
            conn.transport.abort()

    async def end_transport(self, eio_sid: str, grace_s: float, gone: Any) -> None:
        conn = self.conns.get(eio_sid)
        if conn is None:
            return
        try:
            async with asyncio.timeout(grace_s):
                await conn.ws.close()
                await gone.wait()
        except TimeoutError:
            conn.transport.abort()

    # ------------------------------------------------------ the session

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        if q.get("EIO") != "4" or q.get("transport") != "websocket":
            return web.Response(status=400, text="this prototype speaks EIO=4 over websocket only")
        origin = request.headers.get("Origin")
        if origin is not None and self.origins is not None and origin not in self.origins:
            return web.Response(status=403, text="origin not allowed")
        ws = web.WebSocketResponse(compress=False, max_msg_size=self.max_size)
        await ws.prepare(request)
        eio_sid = secrets.token_urlsafe(15)
        conn = ProtoConnection(eio_sid, ws, request.transport)
        self.conns[eio_sid] = conn
        handshake = {
            "sid": eio_sid,
            "upgrades": [],
            "pingInterval": int(self.ping_interval * 1000),
            "pingTimeout": int(self.ping_timeout * 1000),
            "maxPayload": self.max_size,
        }
        conn.write(_text_frame("0" + orjson.dumps(handshake).decode()))
        pinger = asyncio.create_task(self._ping(conn))
        try:
            await self._read(conn, request)
        finally:
            pinger.cancel()
            await self._gone(conn)
        return ws

    async def _ping(self, conn: ProtoConnection) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            conn.pong.clear()
            conn.write(_text_frame("2"))
            try:
                async with asyncio.timeout(self.ping_timeout):
                    await conn.pong.wait()
            except TimeoutError:
                conn.transport.abort()
                return

    async def _read(self, conn: ProtoConnection, request: web.Request) -> None:
        async for msg in conn.ws:
            if msg.type == WSMsgType.TEXT:
                text: str = msg.data
                kind = text[:1]
                if kind == "4":
                    await self._socketio(conn, text[1:], request)
                elif kind == "3":
                    conn.pong.set()
                elif kind == "1":
                    return
                elif kind != "6":  # NOOP; anything else is not Engine.IO
                    return
            elif msg.type == WSMsgType.BINARY:
                if conn.pending_binary is None or conn.eio_sid not in self.binary_allowed:
                    return
                ack_id, data = conn.pending_binary
                conn.pending_binary = None
                data[1] = msg.data
                await self._event(conn, ack_id, data)
            else:
                return

    async def _socketio(self, conn: ProtoConnection, packet: str, request: web.Request) -> None:
        kind = packet[:1]
        if kind == "0":
            await self._connect(conn, packet[1:], request)
            return
        if conn.sid is None:
            conn.transport.abort()  # nothing but CONNECT before connecting
            return
        if kind == "1":
            conn.transport.abort()
            return
        try:
            if kind == "5":
                count, _, rest = packet[1:].partition("-")
                if count != "1" or conn.eio_sid not in self.binary_allowed:
                    conn.transport.abort()
                    return
                ack_id, data = self._parse_event(conn, rest, binary=True)
                if data is not None:
                    conn.pending_binary = (ack_id, data)
                return
            if kind == "2":
                ack_id, data = self._parse_event(conn, packet[1:], binary=False)
                if data is not None:
                    await self._event(conn, ack_id, data)
                return
        except MalformedPacket as exc:
            await self.malformed_handler(conn.eio_sid, exc)
            return
        await self.malformed_handler(
            conn.eio_sid, MalformedPacket(None, None, f"clients do not send packet type {kind}")
        )

    def _parse_event(
        self, conn: ProtoConnection, body: str, binary: bool
    ) -> tuple[int | None, list[Any] | None]:
        digits = 0
        while digits < len(body) and body[digits].isascii() and body[digits].isdigit():
            digits += 1
        ack_id = int(body[:digits]) if digits else None
        try:
            data = orjson.loads(body[digits:])
        except orjson.JSONDecodeError as exc:
            raise MalformedPacket(2, ack_id, f"undecodable packet: {exc}") from exc
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            raise MalformedPacket(2, ack_id, "an event is an array that starts with its name")
        if binary and (len(data) < 2 or data[1] != {"_placeholder": True, "num": 0}):
            conn.transport.abort()
            return ack_id, None
        return ack_id, data

    async def _event(self, conn: ProtoConnection, ack_id: int | None, data: list[Any]) -> None:
        assert conn.sid is not None
        await self.event_handler(conn.sid, conn.eio_sid, ack_id, data)

    async def _connect(self, conn: ProtoConnection, body: str, request: web.Request) -> None:
        if conn.sid is not None:
            return
        try:
            auth = orjson.loads(body) if body else None
        except orjson.JSONDecodeError as exc:
            await self.malformed_handler(
                conn.eio_sid, MalformedPacket(CONNECT, None, f"undecodable packet: {exc}")
            )
            return
        sid = secrets.token_urlsafe(15)
        conn.sid = sid
        self.by_sid[sid] = conn
        try:
            await self.handlers["connect"](sid, {"aiohttp.request": request}, auth)
        except ConnectionRefused as refusal:
            conn.sid = None
            del self.by_sid[sid]
            conn.queue_text("4" + orjson.dumps(refusal.error_args).decode())
            return
        conn.write(_text_frame("40" + orjson.dumps({"sid": sid}).decode()))

    async def _gone(self, conn: ProtoConnection) -> None:
        conn.closed = True
        self.conns.pop(conn.eio_sid, None)
        if conn.sid is not None:
            self.by_sid.pop(conn.sid, None)
            await self.handlers["disconnect"](conn.sid, "transport close")
