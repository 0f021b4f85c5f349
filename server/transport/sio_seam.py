"""The Socket.IO seam: the one module that touches python-socketio and python-engineio.

Liaison runs on python-socketio / python-engineio, but needs a few things they
do not offer as settings. Each is a small, named hook here, with the private
attribute it relies on and why; nothing else in ``server/`` imports
``socketio`` or ``engineio`` or reads their private attributes
(tests/unit/test_sio_seam_boundary.py enforces it), and each hook has a test
that fails if it stops working (tests/integration/test_sio_seam.py).

Hooks (private attribute relied on → what it is for):

====================================  ================================================
``eio_aiohttp.WebSocketResponse``     permessage-deflate off (:func:`_no_compression`)
``AsyncSocket._websocket_handler``    the TCP transport, for direct writes
                                      (:func:`_record_websocket_transport`); replaced
                                      by engineio's loop without a task, a timer and
                                      a ``receive`` per message (:func:`_serve_websocket`)
``AsyncSocket.schedule_ping``         a timer, not a sleeping task, until the next ping
                                      (:func:`_ping_from_a_timer`)
``AsyncServer.create_queue``,         a session queue that holds nothing while empty
``sio _engineio_server_class``        (:class:`_EngineServer`)
``AsyncSocket.upgraded/upgrading/``   when a direct write is safe
``closed``, ``AsyncSocket.queue``     (:meth:`Connection.direct_transport`), queued
                                      notices, the end of a WebSocket
``Packet.encode_cache``               a batch sealed when engine.io writes it
                                      (:class:`_LazyMessage`)
aiohttp's ``WebSocketWriter``         writes a frame's header and payload with no
                                      await between them, so a frame of ours written
                                      to the transport never splits one of its frames
``AsyncSocket.handle_post_request``   bad polling body → HTTP 400, no traceback
``Payload.max_decode_packets``        a polling POST may carry a client's whole
                                      outbox (:func:`_more_packets_per_post`)
``AsyncSocket.poll``, ``.queue``      a poll answers at most 16 packets, all any
                                      python-engineio client decodes
                                      (:func:`_answer_polls_a_client_can_decode`)
``eio_aiohttp.WebSocket.wait``        undecodable WebSocket message → close
``AsyncSocket.receive``               nothing handled after a client's CLOSE, and
                                      its pending poll answered
``AsyncServer.handle_request``        POST to a closed session → 400, not 500;
                                      a request for a closed or unknown session
                                      → 400, no ERROR with its sid; new sessions
                                      admitted first (:func:`_guard_requests`)
``sio _handle_eio_connect/disconnect``  a session's admission slot held until it
``AsyncServer.eio.sockets``           authenticates or goes; a late one closed
                                      (:meth:`SocketServer.expire_unauthenticated`)
``sio Packet.decode`` (partial state) :class:`CheckedPacket` (``serializer=``)
``AsyncServer._handle_eio_message``,  attachment refusal before buffering, malformed
``_binary_packet``                    packets answered, nothing before CONNECT
``AsyncServer._handle_event_internal``  only named events dispatched, with the ack id
``AsyncServer._send_packet``          acks and ``connect_error`` in order, no task
====================================  ================================================

The hooks were verified on the exact versions in :data:`VERIFIED`; on any other
the server refuses to start (see :func:`check_versions`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from importlib import metadata
from typing import Any

import socketio
from aiohttp import web
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from engineio import payload as eio_payload
from engineio.async_drivers import aiohttp as eio_aiohttp
from engineio.async_server import AsyncServer as EngineServer
from engineio.async_socket import AsyncSocket
from socketio import packet as sio_packet

from server.transport.admission import SLOT_KEY, Admission, Refusal
from server.transport.http_log import peer_left
from server.transport.lean_async import Flag, SocketQueue

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ versions

#: The versions every hook below was verified on (requirements.lock). A
#: patch release can rename a private attribute or reorder a write: the hooks
#: then fail silently (compression back on, attachments buffered without a
#: cap), which is worse than not starting.
VERIFIED: Mapping[str, str] = {
    "python-socketio": "5.18.1",
    "python-engineio": "4.15.1",
    "aiohttp": "3.14.5",
}
#: Set to ``1`` to start anyway on other versions (an urgent security release,
#: say), after running tests/integration/test_sio_seam.py against them. Logged
#: as an ERROR at every start.
ALLOW_UNVERIFIED_ENV = "LIAISON_ALLOW_UNVERIFIED_SOCKETIO"


class UnverifiedVersions(RuntimeError):
    """python-socketio, python-engineio or aiohttp is not a version the seam was verified on."""


def version_mismatches(installed: Mapping[str, str] | None = None) -> list[str]:
    """``"name: installed X, verified Y"`` for each package not at its verified version."""
    found = installed if installed is not None else {n: metadata.version(n) for n in VERIFIED}
    return [
        f"{name}: installed {found.get(name)}, verified {want}"
        for name, want in VERIFIED.items()
        if found.get(name) != want
    ]


def check_versions(installed: Mapping[str, str] | None = None) -> None:
    """Refuse to run on versions the hooks were not verified on, unless told to."""
    mismatches = version_mismatches(installed)
    if not mismatches:
        return
    text = "; ".join(mismatches)
    if os.environ.get(ALLOW_UNVERIFIED_ENV) == "1":
        log.error("Socket.IO seam: running on unverified versions (%s)", text)
        return
    raise UnverifiedVersions(
        f"the Socket.IO seam was not verified on these versions: {text}. Install"
        f" requirements.lock, or run tests/integration/test_sio_seam.py on them and"
        f" set {ALLOW_UNVERIFIED_ENV}=1"
    )


check_versions()

# ---------------------------------------------------------- engine.io hooks

#: Engine.IO packet types (OPEN..NOOP), as the first character of a text packet.
_PACKET_TYPES = frozenset("0123456")
_INSTALLED = "_liaison_seam_installed"


def install_engineio_hooks() -> None:
    """Apply every engine.io hook; idempotent. Before the server is attached to the app."""
    _no_compression()
    if getattr(AsyncSocket, _INSTALLED, False):
        return
    _record_websocket_transport()
    _refuse_undecodable_posts()
    _more_packets_per_post()
    _answer_polls_a_client_can_decode()
    _refuse_undecodable_messages()
    _ping_from_a_timer()
    _receive_nothing_once_closed()
    _guard_requests()
    setattr(AsyncSocket, _INSTALLED, True)


def _no_compression() -> None:
    """Hook: ``engineio.async_drivers.aiohttp.WebSocketResponse``. The driver
    creates it with aiohttp's default ``compress=True``: compressing
    attacker-chosen text next to secrets on one connection is the CRIME/BREACH
    class of risk, and it costs CPU on every frame of the fan-out."""
    eio_aiohttp.WebSocketResponse = functools.partial(web.WebSocketResponse, compress=False)


def _record_websocket_transport() -> None:
    """Hook: ``AsyncSocket._websocket_handler``, replaced by :func:`_serve_websocket`.
    Records the TCP transport of a WebSocket session on the socket
    (``liaison_transport``), so a frame built once for many recipients is
    written straight to it, instead of one queue item, one writer wake-up and
    one frame build per recipient."""

    AsyncSocket._websocket_handler = _serve_websocket


class _ReadDeadline:
    """A read that waits longer than ``patience`` is cancelled; one timer per connection.

    ``asyncio.timeout`` around each read cost a timer, a ``Timeout`` and a
    ``current_task`` per message (8% of a node's CPU under workload C). This
    notes when the current read began, and a single timer, re-armed only when
    it fires, cancels the reading task once a read has waited ``patience``.
    Time spent handling a message never counts, as with engineio's
    ``wait_for`` around the read alone.
    """

    __slots__ = ("_fired", "_loop", "_patience", "_since", "_task", "_timer")

    def __init__(self, patience: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._patience = patience
        self._since: float | None = None  # when the pending read began; None: handling
        self._fired = False
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(patience, self._check)

    def reading(self) -> None:
        self._since = self._loop.time()

    def handling(self) -> None:
        self._since = None

    def _check(self) -> None:
        now = self._loop.time()
        since = self._since
        if since is not None and now - since >= self._patience and self._task is not None:
            self._fired = True
            self._timer = None
            self._task.cancel()
            return
        start = now if since is None else since
        self._timer = self._loop.call_at(start + self._patience, self._check)

    def forget_own_cancel(self) -> None:
        """After the read ended: a cancel of ours is spent (the task is not being cancelled)."""
        if self._fired and self._task is not None:
            self._fired = False
            self._task.uncancel()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _OnDemandWriter:
    """engineio's WebSocket writer, as a task that exists only while packets are queued.

    engineio kept one writer task per session, waiting on the session's queue
    with a timer (its poll): with its frames, about 1 KB of every idle
    connection, although a WebSocket session queues little (pings, notices;
    events and acks are written straight to the transport). Here
    :class:`SocketQueue` calls :meth:`kick` on every put, and a task is
    started if none runs; it sends what is queued, in order, and ends when
    the queue is empty. The endings are engineio's: the close marker (None)
    closes the WebSocket, and so does a failed send, after which nothing more
    is sent.
    """

    __slots__ = ("_done", "_queue", "_task", "_ws")

    def __init__(self, sock: Any, ws: Any) -> None:
        self._queue: SocketQueue = sock.queue
        self._ws = ws
        self._task: asyncio.Task[None] | None = None
        self._done = False

    def start(self) -> None:
        self._queue.on_put = self.kick
        self.kick()  # what was queued during the upgrade

    def kick(self) -> None:
        if self._task is None and not self._done and not self._queue.empty():
            self._task = asyncio.ensure_future(self._write_queued())

    async def _write_queued(self) -> None:
        try:
            while not self._done:
                try:
                    packet = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                self._queue.task_done()
                if packet is None:  # the end of the session
                    await self._end()
                    return
                try:
                    await self._ws.send(packet.encode())
                except Exception:  # engineio: any failed send ends the writer
                    await self._end()
                    return
                packet = None  # not held while the next is sent
        finally:
            self._task = None

    async def _end(self) -> None:
        self._done = True
        self._queue.on_put = None
        try:
            await self._ws.close()
        except Exception as exc:  # nobody may await this task: said here, not lost
            log.info("closing a WebSocket failed (its peer is gone): %r", exc)

    async def finished(self) -> None:
        """Until the writer has sent what was queued up to the close marker."""
        while (task := self._task) is not None:
            await task


def _drop_http_parsing(protocol: Any) -> None:
    """What aiohttp's connection (``RequestHandler``) keeps for parsing HTTP
    requests, dropped once the WebSocket reader has taken it over: about
    1.5 KB of every connection, for nothing.

    * ``_parser``, the HTTP parser with its buffer: aiohttp 3.14 reads it
      only before an upgrade (data then goes to ``_payload_parser``) and
      checks it for None elsewhere, as after ``connection_lost``.
    * ``_messages``, the queue of parsed requests (an empty deque holds a
      760-byte block): after an upgrade aiohttp only asks whether it is empty
      and how long it is, which an empty tuple answers; an ``append`` would
      fail loudly, not lose a request.
    """
    protocol._parser = None
    protocol._messages = ()


async def _upgrade_from_polling(sock: Any, ws: Any) -> bool:
    """engineio's probe and UPGRADE exchange of a polling session moving to the
    WebSocket (its ``_websocket_handler``, line for line); False if it failed.
    A function of its own, so its packets are not held for the session's life."""
    server = sock.server

    async def websocket_wait() -> Any:
        data = await ws.wait()
        if data and len(data) > server.max_http_buffer_size:
            raise ValueError("packet is too large")
        return data

    sock.upgrading = True  # hold packet sends during the upgrade
    try:
        pkt = await websocket_wait()
    except OSError:
        return False
    decoded_pkt = eio_packet.Packet(encoded_packet=pkt)
    if decoded_pkt.packet_type != eio_packet.PING or decoded_pkt.data != "probe":
        server.logger.info("%s: Failed websocket upgrade, no PING packet", sock.sid)
        sock.upgrading = False
        return False
    await ws.send(eio_packet.Packet(eio_packet.PONG, data="probe").encode())
    await sock.queue.put(eio_packet.Packet(eio_packet.NOOP))  # end poll
    try:
        pkt = await websocket_wait()
    except OSError:
        sock.upgrading = False
        return False
    decoded_pkt = eio_packet.Packet(encoded_packet=pkt)
    if decoded_pkt.packet_type != eio_packet.UPGRADE:
        sock.upgraded = False
        server.logger.info(
            "%s: Failed websocket upgrade, expected UPGRADE packet, received %s instead.",
            sock.sid,
            pkt,
        )
        sock.upgrading = False
        return False
    sock.upgraded = True
    sock.upgrading = False
    return True


async def _serve_websocket(sock: Any, ws: Any) -> None:
    """engineio 4.15.1's ``AsyncSocket._websocket_handler``, reading without a task.

    engineio wraps each read in a new task and ``asyncio.wait_for``: a task,
    a future and a timer per inbound message, and one task kept per idle
    connection. Here each read runs in this task, under a :class:`_ReadDeadline`
    with the same deadline (ping interval + timeout) and the same endings: a
    read that fails, times out or is cancelled ends the loop, then the writer
    and the socket are closed as engineio does. A MESSAGE goes straight to
    engineio's message handler (what ``receive`` and ``_trigger_event`` do for
    it, without their per-message overhead). The rest is engineio's, line for
    line.
    """
    request = getattr(ws, "environ", {}).get("aiohttp.request")
    sock.liaison_transport = request.transport if request is not None else None
    if request is not None:
        _drop_http_parsing(request.protocol)
    try:
        server = sock.server

        if sock.connected:
            # the socket was already connected, so this is an upgrade
            if not await _upgrade_from_polling(sock, ws):
                return
        else:
            sock.connected = True
            sock.upgraded = True

        writer = _OnDemandWriter(sock, ws)
        writer.start()
        server.logger.info("%s: Upgrade to websocket successful", sock.sid)
        handle_message = server.handlers.get("message")
        receive = ws._sock.receive  # the driver's aiohttp WebSocketResponse, as its wait() reads
        deadline = _ReadDeadline(server.ping_interval + server.ping_timeout)
        try:
            while True:
                p = pkt = None  # the last message is not held while waiting (idle: the CONNECT)
                deadline.reading()
                try:  # websocket_wait() inline: three coroutine frames fewer per message
                    p = (await receive()).data
                    p = _checked_message(p)
                    if p and len(p) > server.max_http_buffer_size:
                        raise ValueError("packet is too large")
                except (Exception, asyncio.CancelledError):  # engineio: any read failure ends it
                    deadline.forget_own_cancel()
                    break
                deadline.handling()
                if p is None:
                    break  # connection closed by client
                pkt = eio_packet.Packet(encoded_packet=p)
                if pkt.packet_type == eio_packet.MESSAGE and handle_message is not None:
                    # AsyncSocket.receive and _trigger_event for a MESSAGE, without
                    # their log call and coroutine check per message: the same
                    # handler, the same end after a CLOSE, the same logged failure.
                    if sock.closed:
                        server.logger.info("Receive error -- socket is closed")
                        break
                    try:
                        await handle_message(sock.sid, pkt.data)
                    except asyncio.CancelledError:
                        pass  # as engineio's run_async_handler
                    except Exception:
                        server.logger.exception("message async handler error")
                    continue
                try:
                    await sock.receive(pkt)
                except eio_exceptions.UnknownPacketError:
                    pass
                except eio_exceptions.SocketIsClosedError:
                    server.logger.info("Receive error -- socket is closed")
                    break
                except Exception:  # engineio logs an unexpected error and reads on
                    server.logger.exception("Unknown receive error")
        finally:
            deadline.cancel()

        await sock.queue.put(None)  # the writer sends what is queued, then closes
        await writer.finished()
        await sock.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
    finally:
        sock.liaison_transport = None


def _refuse_undecodable_posts() -> None:
    """Hook: ``AsyncSocket.handle_post_request``. engineio decodes a polling body
    outside any handler of ours and logs each failure (invalid UTF-8, too many
    packets) with a traceback. A bad POST now gets HTTP 400 and ends the session."""
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


#: Packets one polling POST may carry. engine.io's default, 16, ends the
#: session of a long-polling client that sends a 17th packet before its POST
#: is answered: both socket.io clients put every queued packet in one POST
#: (the JS one splits by bytes only), so a phone on polling coming back with
#: its offline outbox was cut off, reconnected and cut off again. The POST's
#: bytes stay capped (``max_http_buffer_size``), which bounds the work too.
MAX_PACKETS_PER_POST = 1024


def _more_packets_per_post() -> None:
    """Hook: ``engineio.payload.Payload.max_decode_packets`` (a class attribute)."""
    eio_payload.Payload.max_decode_packets = MAX_PACKETS_PER_POST


#: Packets in one answer to a poll: python-engineio's clients decode no more
#: (their ``Payload.max_decode_packets``, 16) and drop the connection on a
#: 17th, so 17 acks queued for a python bot on long-polling cut it off, and
#: again after each reconnect. The rest wait for the next poll, which the
#: client sends at once.
POLL_ANSWER_PACKETS = 16


def _answer_polls_a_client_can_decode() -> None:
    """Hook: ``AsyncSocket.poll`` (its ``queue``), as in engineio 4.15 with a bound."""

    async def bounded_poll(self: Any) -> list[Any]:
        try:  # a timeout, not wait_for: no task and no future per poll
            async with asyncio.timeout(self.server.ping_interval + self.server.ping_timeout):
                first = await self.queue.get()
            self.queue.task_done()
        except (TimeoutError, asyncio.CancelledError) as exc:
            raise eio_exceptions.QueueEmpty() from exc
        if first is None:
            return []
        packets = [first]
        while len(packets) < POLL_ANSWER_PACKETS:
            try:
                pkt = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            self.queue.task_done()
            if pkt is None:  # the close marker stays for the next poll
                self.queue.put_nowait(None)
                break
            packets.append(pkt)
        return packets

    AsyncSocket.poll = bounded_poll


def decodable(message: Any) -> bool:
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
    """Hook: the aiohttp driver's ``WebSocket.wait``. An undecodable message
    (empty, a type that is not a digit 0-6) closes that connection, as a close
    from the client would, instead of a traceback per message."""
    original = eio_aiohttp.WebSocket.wait

    async def checked_wait(self: Any) -> Any:
        return _checked_message(await original(self))

    eio_aiohttp.WebSocket.wait = checked_wait


def _checked_message(message: Any) -> Any:
    """What the driver's ``wait`` and :func:`_refuse_undecodable_messages` make of
    a message's data: itself, or OSError (a close, an error, an undecodable packet)."""
    if not isinstance(message, bytes | str):
        raise OSError()  # the driver's own answer to a close or an error frame
    if not decodable(message):
        log.warning("closed a WebSocket that sent an undecodable Engine.IO packet")
        raise OSError("undecodable Engine.IO packet")  # what the driver raises on a close
    return message


#: Pings being sent, so the loop does not drop a running one (it keeps weak references).
_PINGS: set[asyncio.Task[Any]] = set()


def _ping_from_a_timer() -> None:
    """Hook: ``AsyncSocket.schedule_ping`` (its ``last_ping``, ``_send_ping``).
    engineio sleeps in a task of its own per connection until the next ping
    is due: a task, its coroutine and a timer kept per idle connection. A
    timer now starts engineio's send of the ping when it is due, as its
    ``_send_ping`` did after its sleep."""

    def schedule_ping(self: Any) -> None:
        # only schedule a new ping if the previous ping wait cycle completed
        if self.last_ping:
            self.last_ping = None
            asyncio.get_running_loop().call_later(self.server.ping_interval, _ping_due, self)

    AsyncSocket.schedule_ping = schedule_ping


def _ping_due(sock: Any) -> None:
    if sock.closing or sock.closed:
        return
    sock.last_ping = time.time()
    task = asyncio.ensure_future(sock.send(eio_packet.Packet(eio_packet.PING)))
    _PINGS.add(task)
    task.add_done_callback(_ping_sent)


def _ping_sent(task: asyncio.Task[Any]) -> None:
    _PINGS.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.warning("an Engine.IO ping could not be queued", exc_info=task.exception())


def _receive_nothing_once_closed() -> None:
    """Hook: ``AsyncSocket.receive``. After a client's Engine.IO CLOSE, engineio
    marks the socket closed but keeps reading its WebSocket and hands later
    packets to Socket.IO as if from a live session; nothing answers them, so
    the client waits (found by the fuzz test). Now the next packet ends the
    WebSocket loop (engineio's own ``SocketIsClosedError`` path), which closes
    the connection.

    On long-polling, engineio left the client's pending GET waiting for
    packets after that CLOSE, until the poll timed out (ping interval +
    timeout) and got a 400; a sentinel in ``AsyncSocket.queue`` now answers
    it at once, empty, as the shutdown path does."""
    original = AsyncSocket.receive

    async def receive_while_open(self: Any, pkt: Any) -> Any:
        if self.closed:
            raise eio_exceptions.SocketIsClosedError()
        result = await original(self, pkt)
        if pkt.packet_type == eio_packet.CLOSE and not self.upgraded:
            self.queue.put_nowait(None)  # releases the poll waiting for packets
        return result

    AsyncSocket.receive = receive_while_open


def _guard_requests() -> None:
    """Hook: ``AsyncServer.handle_request`` (its ``sockets`` and private
    ``_get_socket``), one wrapper for three rules, so a WebSocket's handler
    chain (alive as long as the connection) holds one frame for them, not three.
    Must run before the server is attached to the app (aiohttp binds
    ``handle_request`` then).

    * **New sessions are admitted first.** A GET without ``sid`` (a new polling
      or WebSocket session) asks the server's :class:`Admission`
      (``liaison_admission``, set by :meth:`SocketServer.admit_with`); a
      refusal is an HTTP 429/503 with ``Retry-After`` and nothing is created.
      An admitted request carries its :class:`Slot` (request[SLOT_KEY]) to
      :meth:`SocketServer._handle_eio_connect`; if engine.io created no
      session for it (a bad request) the slot is given back here.
    * **Stale sessions are answered quietly.** A GET or POST naming a session
      that is closed (the first poll after a server-side close, say) or
      unknown made engineio log an ERROR with the sid in it ("'Session is
      disconnected' <sid>", "Invalid session <sid>"): noise for the operator,
      and a sid in a log can be replayed. It gets HTTP 400 as engineio answers
      it, logged at DEBUG without the sid.
    * **A POST to a session closing meanwhile is a 400.** One that became
      closed while its request was under way (after the client's own CLOSE,
      say) raised ``KeyError('Session is disconnected')`` out of
      ``handle_request``: a 500 with a traceback.
    """
    original = EngineServer.handle_request

    async def handle_request(self: Any, request: web.BaseRequest, *args: Any) -> Any:
        sid = request.query.get("sid")
        slot = None
        admission: Admission | None = None
        if sid is not None:
            socket = self.sockets.get(sid)
            if socket is None or socket.closed:
                if socket is not None:
                    self.sockets.pop(sid, None)  # as engineio's _get_socket does
                log.debug("refused a request for a closed or unknown Engine.IO session")
                stale = "Session is disconnected" if socket is not None else "Invalid session"
                return web.Response(status=400, text=f'"{stale}"', content_type="text/plain")
        elif request.method == "GET":
            admission = getattr(self, "liaison_admission", None)
            if admission is not None:
                slot = admission.admit(admission.address_of(request))
                if isinstance(slot, Refusal):
                    return slot.response()
                request[SLOT_KEY] = slot
        try:
            return await original(self, request, *args)
        except KeyError as exc:
            if exc.args != ("Session is disconnected",):
                raise
            log.warning("refused a request for a closed Engine.IO session")
            return web.Response(status=400, text="Session is disconnected")
        except ConnectionResetError:  # a handshake or poll whose peer left
            return peer_left(request)
        finally:
            if admission is not None and slot is not None and slot.eio_sid is None:
                admission.release(slot)

    EngineServer.handle_request = handle_request


# --------------------------------------------------------------- connection


class _LazyMessage(eio_packet.Packet):  # type: ignore[misc]
    """An Engine.IO MESSAGE whose payload is rendered when engine.io's writer encodes it.

    Relies on ``Packet.encode`` checking ``encode_cache`` before encoding: the
    first ``encode`` renders (a poll or the WebSocket writer), later ones reuse it.
    """

    def __init__(self, binary: bool, render: Callable[[], str | bytes]) -> None:
        super().__init__(eio_packet.MESSAGE, b"" if binary else "")
        self._render = render

    def encode(self, b64: bool = False) -> Any:
        if self.encode_cache is None:
            self.data: Any = self._render()
        return super().encode(b64)


#: On an engine.io socket: its acks on the queue, not yet taken by the writer.
_ACKS_QUEUED = "liaison_acks_queued"


class _CountedAck(eio_packet.Packet):  # type: ignore[misc]
    """An ACK on engine.io's queue that tells its socket when the writer takes it:
    until then a later ack must queue behind it, not go straight to the transport."""

    def __init__(self, socket: Any, text: str) -> None:
        super().__init__(eio_packet.MESSAGE, text)
        self._socket: Any = socket

    def encode(self, b64: bool = False) -> Any:
        if self._socket is not None:
            setattr(self._socket, _ACKS_QUEUED, getattr(self._socket, _ACKS_QUEUED, 1) - 1)
            self._socket = None
        return super().encode(b64)


class Connection:
    """One Engine.IO session, as the outbox and the gateway use it."""

    __slots__ = ("_socket",)

    def __init__(self, eio_socket: AsyncSocket) -> None:
        self._socket = eio_socket

    @property
    def closed(self) -> bool:
        return bool(self._socket.closed)

    def direct_transport(self) -> asyncio.Transport | None:
        """The WebSocket's TCP transport once frames may be written to it directly, else None.

        Not while upgrading (engine.io holds sends then) nor on long-polling.
        Safe because aiohttp's writer never yields between a frame's header
        and its payload, so a frame of ours lands between two of its frames.
        """
        s = self._socket
        transport: asyncio.Transport | None = getattr(s, "liaison_transport", None)
        if transport is None or not s.upgraded or s.upgrading:
            return None
        if s.closed or transport.is_closing():
            return None
        return transport

    def queue_text(self, socketio_frame: str) -> None:
        """Queue a ready Socket.IO text packet behind what engine.io has queued."""
        if not self._socket.closed:
            self._socket.queue.put_nowait(eio_packet.Packet(eio_packet.MESSAGE, socketio_frame))

    @property
    def acks_queued(self) -> int:
        """Acks put on engine.io's queue that its writer has not taken yet."""
        queued: int = getattr(self._socket, _ACKS_QUEUED, 0)
        return queued

    def queue_ack(self, text: str) -> None:
        """Queue a Socket.IO ACK packet's text, counted until engine.io's writer takes it."""
        if not self._socket.closed:
            setattr(self._socket, _ACKS_QUEUED, self.acks_queued + 1)
            self._socket.queue.put_nowait(_CountedAck(self._socket, text))

    def queue_lazy(self, binary: bool, render: Callable[[], str | bytes]) -> None:
        """Queue a MESSAGE whose payload ``render()`` gives when engine.io takes it."""
        self._socket.queue.put_nowait(_LazyMessage(binary, render))


class _EngineServer(EngineServer):  # type: ignore[misc]
    """engineio's server, with a :class:`SocketQueue` per session.

    Hook: ``create_queue`` (public; engineio's sockets call it for their
    ``queue``). An ``asyncio.Queue`` costs about 3 KB per connection while
    empty, which a WebSocket session's queue nearly always is.
    """

    def create_queue(self, *args: Any, **kwargs: Any) -> SocketQueue:
        if args or kwargs:
            raise TypeError("engine.io's session queues are unbounded")
        return SocketQueue()


#: What a connected session's environ keeps (:meth:`SocketServer._keep_only_the_request`).
KEPT_ENVIRON = ("aiohttp.request", "REMOTE_ADDR")


class SocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server, narrowed to what protocol v1 allows on the wire.

    The gateway sets the three policy attributes; this class only supplies the
    hooks (``_handle_eio_message``, ``_handle_event_internal``, ``_binary_packet``,
    ``_send_packet``) and accessors, so the policy needs no private access.

    * Binary packets with more than one attachment, or from a session not in
      ``binary_allowed``, are refused before they are buffered: python-socketio
      buffers whatever count a packet announces (measured: +140 MiB from 160
      frames).
    * Undecodable packets (:class:`CheckedPacket`) go to ``malformed_handler``.
    * Every EVENT goes to ``event_handler`` with its ack id; python-socketio's
      own dispatch (where a client's ``42["connect"]`` reaches the connect
      handler) never runs.
    """

    binary_allowed: set[str]
    #: Every EVENT of a connected client: (sid, eio_sid, ack id, data list).
    event_handler: Callable[[str, str, int | None, list[Any]], Awaitable[None]]
    #: A packet that could not be decoded or may not be sent: (eio_sid, error).
    malformed_handler: Callable[[str, MalformedPacket], Awaitable[None]]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(serializer=CheckedPacket, **kwargs)
        self.binary_allowed = set()
        self.admission: Admission | None = None

    def _engineio_server_class(self) -> type[EngineServer]:
        return _EngineServer

    def admit_with(self, admission: Admission) -> None:
        """New sessions pass ``admission`` (see :func:`_guard_requests`)."""
        self.admission = admission
        self.eio.liaison_admission = admission
        admission.expire = self.expire_unauthenticated

    async def expire_unauthenticated(self, eio_sid: str) -> None:
        """Close a session that did not authenticate in time (an Engine.IO CLOSE)."""
        if self.manager.sid_from_eio_sid(eio_sid, "/") is None:
            await self.hang_up(eio_sid)
            self.eio.sockets.pop(eio_sid, None)  # not held until the sweep

    async def _handle_eio_connect(self, eio_sid: str, environ: Any) -> Any:
        result = await super()._handle_eio_connect(eio_sid, environ)
        request = environ.get("aiohttp.request")
        slot = request.get(SLOT_KEY) if request is not None else None
        if self.admission is not None and slot is not None:
            self.admission.opened(slot, eio_sid)
        return result

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any) -> None:
        try:
            await super()._handle_eio_disconnect(eio_sid, reason)
        finally:
            if self.admission is not None:
                self.admission.closed(eio_sid)

    # ------------------------------------------------------------- hooks

    async def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: Any, namespace: str, id: int | None
    ) -> None:
        # CheckedPacket guarantees a non-empty list starting with a str.
        await self.event_handler(sid, eio_sid, id, data)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if not isinstance(data, str | bytes):
            # engineio JSON-decodes a message that does not start with a digit
            # (``4{}``, ``4true``): no Socket.IO packet is a dict, bool or None.
            await self.malformed_handler(
                eio_sid, MalformedPacket(None, None, "not a Socket.IO packet")
            )
            return
        if isinstance(data, str) and data[:1] in ("5", "6"):
            count = data[1 : data.find("-")] if "-" in data[:12] else ""
            if count != "1" or eio_sid not in self.binary_allowed:
                log.warning("refused a binary packet with %r attachments from %s", count, eio_sid)
                await self.hang_up(eio_sid)
                return
        elif isinstance(data, bytes) and eio_sid not in self._binary_packet:
            await self.hang_up(eio_sid)
            return
        elif data[:1] != "0" and self.manager.sid_from_eio_sid(eio_sid, "/") is None:
            # Anything but CONNECT before connecting: python-socketio would
            # drop an event silently, and a client waiting for its ack hangs.
            log.warning("hung up on %s: a packet before connecting", eio_sid)
            await self.hang_up(eio_sid)
            return
        try:
            await super()._handle_eio_message(eio_sid, data)
        except MalformedPacket as exc:
            self._binary_packet.pop(eio_sid, None)
            await self.malformed_handler(eio_sid, exc)
        if data[:1] == "0" and self.manager.sid_from_eio_sid(eio_sid, "/") is not None:
            if self.admission is not None:
                self.admission.authenticated(eio_sid)  # it leaves the unauthenticated caps
            self._keep_only_the_request(eio_sid)

    def _keep_only_the_request(self, eio_sid: str) -> None:
        """Once a session has connected, its environ keeps only what is read later.

        python-socketio keeps the environ of a session's first request for as
        long as the session lives: every header as an ``HTTP_*`` copy (about
        1.2 KB from a small client, more from a browser). After the CONNECT
        only ``aiohttp.request`` is read (:meth:`_tcp_transport`, admission).
        Cleared in place: engine.io's WebSocket handler shares the dict.
        """
        environ = self.environ.get(eio_sid)
        if environ is None:
            return
        kept = {key: environ[key] for key in KEPT_ENVIRON if key in environ}
        environ.clear()  # back to an empty table; deleting keys would not shrink it
        environ.update(kept)

    # ------------------------------------------------------------ sending

    async def send_ack(self, eio_sid: str, ack_id: int, payload: Any) -> None:
        """An ACK now, on this connection, behind what is queued (``_send_packet``)."""
        await self._send_packet(
            eio_sid, self.packet_class(sio_packet.ACK, namespace="/", id=ack_id, data=[payload])
        )

    def ack_text(self, ack_id: int, payload: Any) -> str | None:
        """The Socket.IO ACK packet as text (``3<id>[payload]``); None if it is binary.

        What ``Packet(ACK, namespace="/", id=, data=[payload]).encode()`` gives,
        without the packet's walk of the payload for bytes (a fifth of the cost
        of an ack): the JSON encoder refuses bytes anyway, and such a payload
        is sent as a binary ack by ``send_ack``.
        """
        try:
            body: str = self.packet_class.json.dumps([payload], separators=(",", ":"))
        except TypeError:  # bytes in it: a BINARY_ACK
            return None
        return f"{sio_packet.ACK}{ack_id}{body}"

    async def send_connect_error(self, eio_sid: str, message: str, data: Any) -> None:
        """A CONNECT_ERROR for a CONNECT that never reached the connect handler."""
        refusal = socketio.exceptions.ConnectionRefusedError(message, data)
        await self._send_packet(
            eio_sid, self.packet_class(sio_packet.CONNECT_ERROR, data=refusal.error_args)
        )

    # ---------------------------------------------------------- accessors

    def connection(self, eio_sid: str) -> Connection | None:
        socket = self.eio.sockets.get(eio_sid)
        return Connection(socket) if socket is not None else None

    def eio_sid_of(self, sid: str) -> str:
        eio_sid: str = self.manager.eio_sid_from_sid(sid, "/")
        return eio_sid

    def sid_of(self, eio_sid: str) -> str | None:
        """The Socket.IO sid on "/" of this Engine.IO session, if it has one."""
        sid: str | None = self.manager.sid_from_eio_sid(eio_sid, "/")
        return sid

    def is_connected(self, sid: str) -> bool:
        return bool(self.manager.is_connected(sid, "/"))

    # ----------------------------------------------------------- closing

    def _tcp_transport(self, eio_sid: str, socket: Any) -> asyncio.Transport | None:
        # Held by the caller: aiohttp sets ``request.transport`` to None once
        # the connection is lost (it was an AttributeError after a sleep).
        request = self.environ.get(eio_sid, {}).get("aiohttp.request")
        if socket.upgraded and request is not None:
            transport: asyncio.Transport | None = request.transport
            return transport
        return None

    async def hang_up(self, eio_sid: str) -> None:
        """Drop a misbehaving connection at once (an Engine.IO CLOSE, then the TCP abort)."""
        socket = self.eio.sockets.get(eio_sid)
        if socket is None:
            return
        transport = self._tcp_transport(eio_sid, socket)
        await socket.close(wait=False, abort=False)
        if transport is not None and not transport.is_closing():
            transport.abort()

    async def end_transport(self, eio_sid: str, grace_s: float, gone: Flag) -> None:
        """End the transport so that the client reconnects by itself.

        Neither a Socket.IO DISCONNECT ("io server disconnect") nor an Engine.IO
        CLOSE is sent: socket.io-client does not retry the first,
        python-engineio's client does not retry the second. On a WebSocket a
        sentinel is queued behind what is queued (a notice), at which engine.io's
        writer closes the WebSocket; a long-polling session is closed once a
        poll has taken what is queued, so the next poll fails. A peer that does
        not read within ``grace_s`` (``gone`` not set) is aborted: engine.io's
        writer waits for the peer, so a phone that stopped reading would hold
        it forever.
        """
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closed:
            return
        transport = self._tcp_transport(eio_sid, socket)
        upgraded = socket.upgraded
        if upgraded:
            socket.queue.put_nowait(None)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_s):
                await socket.queue.join()  # taken by the writer, or by a poll
                if upgraded:
                    await gone.wait()
        if gone.is_set():
            return
        await socket.close(wait=False, abort=True)
        socket.queue.put_nowait(None)  # releases a poll waiting for packets
        if transport is not None and not transport.is_closing():
            transport.abort()


# ------------------------------------------------------------------ packets

#: Socket.IO packet types a client may send (CONNECT_ERROR is server → client).
_CLIENT_PACKETS = frozenset(
    {
        sio_packet.CONNECT,
        sio_packet.DISCONNECT,
        sio_packet.EVENT,
        sio_packet.ACK,
        sio_packet.BINARY_EVENT,
        sio_packet.BINARY_ACK,
    }
)
CONNECT = sio_packet.CONNECT
#: Raised by a connect handler to refuse a connection with ``connect_error``.
ConnectionRefused = socketio.exceptions.ConnectionRefusedError


class MalformedPacket(ValueError):
    """A Socket.IO packet from a client that cannot be decoded or may not be sent.

    Carries what was parsed before the failure, so the refusal can be an ack
    (``ack_id`` known), a ``connect_error`` (a CONNECT packet) or a notice.
    """

    def __init__(self, packet_type: int | None, ack_id: int | None, reason: str) -> None:
        super().__init__(reason)
        self.packet_type, self.ack_id, self.reason = packet_type, ack_id, reason


class CheckedPacket(sio_packet.Packet):  # type: ignore[misc]
    """python-socketio's packet, with every decoding failure a :class:`MalformedPacket`.

    Passed as ``serializer=``, the documented way to replace the packet class;
    relies on ``decode`` setting ``packet_type`` and ``id`` before it parses the
    payload, so a refusal can name the ack id. python-socketio decodes before
    any handler of ours runs, and its decoder lets orjson's errors (lone
    surrogates, 1e309, NaN, nesting past 1,024), ``int("²")`` and shape errors
    (``42``, ``42{}``, ``42[]``) escape as tracebacks with no answer to the client.
    """

    def decode(self, encoded_packet: Any) -> int:
        self.packet_type, self.id = None, None
        try:
            count: int = super().decode(encoded_packet)
        except (ValueError, TypeError, RecursionError) as exc:
            # orjson.JSONDecodeError is a ValueError.
            raise MalformedPacket(self.packet_type, self.id, f"undecodable packet: {exc}") from exc
        if self.packet_type not in _CLIENT_PACKETS:
            raise MalformedPacket(None, None, f"clients do not send packet type {self.packet_type}")
        if self.namespace not in (None, "/") and self.packet_type != sio_packet.CONNECT:
            raise MalformedPacket(None, None, "namespace / only")
        if self.packet_type in (sio_packet.EVENT, sio_packet.BINARY_EVENT):
            data = self.data
            if not isinstance(data, list) or not data or not isinstance(data[0], str):
                raise MalformedPacket(
                    self.packet_type, self.id, "an event is an array that starts with its name"
                )
        return count

    def add_attachment(self, attachment: Any) -> bool:
        try:
            done: bool = super().add_attachment(attachment)
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            # A placeholder naming an attachment that does not exist.
            raise MalformedPacket(None, self.id, f"bad binary attachment: {exc}") from exc
        return done
