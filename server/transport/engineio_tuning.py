"""Engine.IO behaviour that python-engineio does not expose as settings.

Every hook into python-engineio's private internals lives here (and the
Socket.IO ones in gateway.py ``LiaisonSocketServer``):

* permessage-deflate: engineio's aiohttp driver creates ``WebSocketResponse``
  with aiohttp's default ``compress=True``. Compressing attacker-chosen text
  next to secrets on one connection is the CRIME/BREACH class of risk, and it
  costs CPU on every frame of the fan-out; we turn it off.
* The WebSocket transport of each engine.io socket is recorded on the socket
  (``liaison_transport``), so the outbox can write a frame built once for many
  recipients straight to it, instead of one queue item, one writer wake-up and
  one frame build per recipient (see outbox.py). Hook: ``AsyncSocket._websocket_handler``.
* Undecodable input from a client is refused without a traceback. engineio
  decodes a polling POST body (hook: ``AsyncSocket.handle_post_request``) and each
  WebSocket message (hook: the aiohttp driver's ``WebSocket.wait``) outside any
  handler of ours, and logs every failure (invalid UTF-8, an empty message, a
  packet type that is not an ASCII digit 0-6) as an exception. A bad POST now gets
  HTTP 400 and ends the session (engineio's answer to an ``EngineIOError``);
  a bad WebSocket message closes that connection, as a close from the client
  would.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from aiohttp import web
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from engineio.async_drivers import aiohttp as eio_aiohttp
from engineio.async_server import AsyncServer
from engineio.async_socket import AsyncSocket

log = logging.getLogger(__name__)

_PATCHED = "_liaison_patched"

#: Engine.IO packet types (OPEN..NOOP), as the first character of a text packet.
_PACKET_TYPES = frozenset("0123456")


def tune_engineio() -> None:
    """Idempotent: applied once per process by create_app."""
    eio_aiohttp.WebSocketResponse = functools.partial(web.WebSocketResponse, compress=False)
    if getattr(AsyncSocket, _PATCHED, False):
        return
    _record_websocket_transport()
    _refuse_undecodable_posts()
    _refuse_undecodable_messages()
    _receive_nothing_once_closed()
    _answer_posts_to_closed_sessions()
    setattr(AsyncSocket, _PATCHED, True)


def _record_websocket_transport() -> None:
    original = AsyncSocket._websocket_handler

    async def recording_handler(self: Any, ws: Any) -> Any:
        request = getattr(ws, "environ", {}).get("aiohttp.request")
        self.liaison_transport = request.transport if request is not None else None
        try:
            return await original(self, ws)
        finally:
            self.liaison_transport = None

    AsyncSocket._websocket_handler = recording_handler


def _refuse_undecodable_posts() -> None:
    original = AsyncSocket.handle_post_request

    async def checked_post(self: Any, environ: Any) -> Any:
        try:
            return await original(self, environ)
        except ValueError as exc:
            # UnicodeDecodeError, an undecodable packet, too many packets. Our
            # own handlers never raise here: engineio runs them under its
            # catch-all, so this is the body's fault.
            log.warning("refused a polling POST from %s: %s", self.sid, exc)
            # Closed here without waiting: engineio's own disconnect would
            # wait for a GET to collect the CLOSE packet, and the client
            # sends none while its POST is unanswered. A GET already
            # waiting gets the CLOSE; the POST gets 400.
            await self.close(wait=False, reason=self.server.reason.TRANSPORT_ERROR)
            raise eio_exceptions.EngineIOError(str(exc)) from exc

    AsyncSocket.handle_post_request = checked_post


def _decodable(message: Any) -> bool:
    """Whether engineio can decode this WebSocket message (cheap for the normal case)."""
    if not isinstance(message, str):
        return True  # a binary frame is an Engine.IO binary message
    if message[:1] in _PACKET_TYPES:
        return True
    if message[:1] != "b":  # "7".."9" decode, then fail in receive() (IndexError)
        return False
    try:  # base64 binary, which engineio also accepts
        eio_packet.Packet(encoded_packet=message)
    except (ValueError, TypeError):
        return False
    return True


def _refuse_undecodable_messages() -> None:
    original = eio_aiohttp.WebSocket.wait

    async def checked_wait(self: Any) -> Any:
        message = await original(self)
        if not _decodable(message):
            log.warning("closed a WebSocket that sent an undecodable Engine.IO packet")
            raise OSError("undecodable Engine.IO packet")  # what the driver raises on a close
        return message

    eio_aiohttp.WebSocket.wait = checked_wait


def _receive_nothing_once_closed() -> None:
    """Hook: ``AsyncSocket.receive``. After a client's Engine.IO CLOSE, engineio
    marks the socket closed but keeps reading its WebSocket and hands later
    packets to Socket.IO as if from a live session; nothing answers them, so
    the client waits (found by the fuzz test). Now the next packet ends the
    WebSocket loop (engineio's own ``SocketIsClosedError`` path), which closes
    the connection."""
    original = AsyncSocket.receive

    async def receive_while_open(self: Any, pkt: Any) -> Any:
        if self.closed:
            raise eio_exceptions.SocketIsClosedError()
        return await original(self, pkt)

    AsyncSocket.receive = receive_while_open


def _answer_posts_to_closed_sessions() -> None:
    """Hook: ``AsyncServer.handle_request`` (its private ``_get_socket``). A polling
    POST to a session that is closed but not yet forgotten (after the client's
    own CLOSE, say) raised ``KeyError('Session is disconnected')`` out of
    ``handle_request``: a 500 with a traceback. It is a stale session like any
    other: HTTP 400, as engineio answers an unknown one. Must run before the
    server is attached to the app (aiohttp binds ``handle_request`` then)."""
    original = AsyncServer.handle_request

    async def handle_request(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await original(self, *args, **kwargs)
        except KeyError as exc:
            if exc.args != ("Session is disconnected",):
                raise
            log.warning("refused a request for a closed Engine.IO session")
            return web.Response(status=400, text="Session is disconnected")

    AsyncServer.handle_request = handle_request


def websocket_transport(eio_socket: Any) -> Any:
    """The socket's WebSocket transport once it may be written directly, else None."""
    transport = getattr(eio_socket, "liaison_transport", None)
    if transport is None or not eio_socket.upgraded or eio_socket.upgrading:
        return None
    if eio_socket.closed or transport.is_closing():
        return None
    return transport
