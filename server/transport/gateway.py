"""Socket.IO gateway: connect and negotiate, ``cmd`` with ack, ``ev`` delivery.

Handlers run inline (``async_handlers=False``), so one connection's commands
are handled one at a time, in the order sent; other connections are not
held up (each has its own reader). Work in flight is bounded by one command
per connection.

Frames (see protocol/SPEC.md):
    client → server   connect auth {token, versions, encoding}; ``cmd`` + ack
    server → client   ``welcome`` once; ``ev`` [envelope, ...]; ``notice`` {code, ...}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import socketio
from socketio import packet as sio_packet

from protocol import CHAIN_RULE, PROTOCOL_VERSION, SUPPORTED_VERSIONS, v1
from protocol.codec import Codec, check_decoded, codec_for
from protocol.errors import ErrorCode, ProtocolError
from protocol.fields import Fields
from protocol.limits import Limits
from server import __version__
from server.auth import AccessClaims
from server.domain.events import AppendResult
from server.domain.model import Principal
from server.errors import StorageUnavailable
from server.services.accounts import Accounts
from server.services.commands import PIPELINED, CommandService
from server.services.hub import Hub, Piece
from server.transport.outbox import Flusher, Outbox
from server.transport.pipeline import AckPipeline

log = logging.getLogger(__name__)

#: How long a slow consumer that is cut off gets to read the notice before its
#: TCP connection is aborted.
CUT_OFF_GRACE_S = 2.0
#: How long a stopping server waits for the commands in flight to be stored and
#: acknowledged. A command still running after that is not acknowledged; its
#: client retries it (same id) on the server it reconnects to.
DRAIN_TIMEOUT_S = 1.5
#: How long a client told to reconnect gets to read the ``shutdown`` notice
#: before its connection is aborted. Clients that read close at once.
SEND_AWAY_GRACE_S = 1.0
#: How long a client whose session was revoked gets to read the notice before
#: its connection is aborted: short, the revocation must bite within 1 s.
REVOKED_GRACE_S = 0.2


class _OrjsonModule:
    """python-socketio's ``json=`` hook: orjson instead of the stdlib."""

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(text: str | bytes, **_: Any) -> Any:
        return orjson.loads(text)


@dataclass(eq=False, slots=True)
class Session:
    """One connected client; what the hub calls a Subscriber."""

    sid: str
    principal: Principal
    codec: Codec
    outbox: Outbox
    acks: AckPipeline
    #: The access token it connected with: re-checked on every command.
    claims: AccessClaims
    #: Set when the connection is gone (``on_disconnect``).
    gone: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def org(self) -> str:
        return self.principal.org_id

    @property
    def user(self) -> str:
        return self.principal.user_id

    @property
    def connection(self) -> str:
        return self.sid

    @property
    def encoding(self) -> str:
        return self.codec.name

    def push(self, piece: Piece) -> bool:
        return self.outbox.push(piece)

    async def push_backlog(self, piece: Piece) -> bool:
        return await self.outbox.push_backlog(piece)

    def resume_required(self, incident: str) -> None:
        # The same way out as a slow consumer: notice, cut-off, resume by seq.
        self.outbox.cut_off()


#: Socket.IO's reserved event names. python-socketio dispatches a client's
#: ``42["connect",...]`` to the connect handler of an open socket (measured: it
#: switched the socket to another user), and ``42["disconnect"]`` to the
#: disconnect handler (the socket stayed open but mute).
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)

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

    Passed as ``serializer=``, the documented way to replace the packet class.
    python-socketio decodes before any handler of ours runs, and its decoder
    lets orjson's errors (lone surrogates, 1e309, NaN, nesting past 1,024),
    ``int("²")`` and shape errors (``42``, ``42{}``, ``42[]``) escape as
    tracebacks with no answer to the client.
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


class LiaisonSocketServer(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server, narrowed to what protocol v1 allows on the wire.

    Hooks into python-socketio's private ``AsyncServer._handle_eio_message``
    and ``_handle_event_internal`` (5.18); keep all such hooks in this class.

    * Binary packets with more than one attachment are refused before they are
      buffered: python-socketio buffers whatever count a packet announces
      (measured: +140 MiB from 160 frames). A msgpack command is exactly one
      attachment; JSON sessions may send none.
    * Packets that cannot be decoded (:class:`CheckedPacket`) are refused with
      a typed error instead of a traceback (see :meth:`_refuse`).
    * Only ``cmd`` is dispatched; every other event name, reserved ones
      included, goes to ``refusal_handler`` and reaches no handler.
    """

    binary_allowed: set[str]
    #: Receives every ``cmd`` with its ack id: (sid, eio_sid, namespace, ack id, data).
    command_handler: Callable[[str, str, str, int | None, Any], Awaitable[None]]
    #: Answers a refused packet of a connected client: (sid, ack id, error).
    refusal_handler: Callable[[str, int | None, ProtocolError], Awaitable[None]]

    async def _handle_event_internal(
        self, server: Any, sid: str, eio_sid: str, data: Any, namespace: str, id: int | None
    ) -> None:
        # CheckedPacket guarantees a non-empty list starting with a str.
        name = data[0]
        if name == "cmd":
            await self.command_handler(
                sid, eio_sid, namespace or "/", id, data[1] if len(data) > 1 else None
            )
            return
        if name in RESERVED_EVENTS:
            log.warning("refused the reserved event %r from %s", name, sid)
            err = ProtocolError(
                ErrorCode.MALFORMED, f"{name!r} is reserved; send commands as 'cmd'"
            )
        else:
            err = ProtocolError(
                ErrorCode.UNKNOWN_TYPE, f"unknown event {name!r}; send commands as 'cmd'"
            )
        if id is not None or err.code is ErrorCode.MALFORMED:
            await self.refusal_handler(sid, id, err)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        if not isinstance(data, str | bytes):
            # engineio JSON-decodes a message that does not start with a digit
            # (``4{}``, ``4true``): no Socket.IO packet is a dict, bool or None.
            await self._refuse(eio_sid, MalformedPacket(None, None, "not a Socket.IO packet"))
            return
        if isinstance(data, str) and data[:1] in ("5", "6"):
            count = data[1 : data.find("-")] if "-" in data[:12] else ""
            if count != "1" or eio_sid not in self.binary_allowed:
                log.warning("refused a binary packet with %r attachments from %s", count, eio_sid)
                await self._cut(eio_sid)
                return
        elif isinstance(data, bytes) and eio_sid not in self._binary_packet:
            await self._cut(eio_sid)
            return
        elif data[:1] != "0" and self.manager.sid_from_eio_sid(eio_sid, "/") is None:
            # Anything but CONNECT before connecting: python-socketio would
            # drop an event silently, and a client waiting for its ack hangs.
            log.warning("hung up on %s: a packet before connecting", eio_sid)
            await self._cut(eio_sid)
            return
        try:
            await super()._handle_eio_message(eio_sid, data)
        except MalformedPacket as exc:
            self._binary_packet.pop(eio_sid, None)
            await self._refuse(eio_sid, exc)

    async def _refuse(self, eio_sid: str, exc: MalformedPacket) -> None:
        """Answer a packet that cannot be decoded, as SPEC §3 says.

        A CONNECT gets ``connect_error``; a connected client gets an error
        ack when the ack id is known, else a ``notice``; a client that is not
        connected is hung up on. Logged without a traceback: it is the
        client's error, not ours.
        """
        sid = self.manager.sid_from_eio_sid(eio_sid, "/")
        log.warning("refused a Socket.IO packet from %s: %s", sid or eio_sid, exc.reason)
        err = ProtocolError(ErrorCode.MALFORMED, exc.reason[:200])
        if sid is None and exc.packet_type == sio_packet.CONNECT:
            refusal = socketio.exceptions.ConnectionRefusedError(err.message, err.to_wire())
            await self._send_packet(
                eio_sid,
                self.packet_class(sio_packet.CONNECT_ERROR, data=refusal.error_args),
            )
        elif sid is None or not self.manager.is_connected(sid, "/"):
            await self._cut(eio_sid)
        else:
            await self.refusal_handler(sid, exc.ack_id, err)

    async def _cut(self, eio_sid: str) -> None:
        """Drop a misbehaving connection at once."""
        await self.close_connection(eio_sid, grace_s=0.0)

    async def close_connection(self, eio_sid: str, grace_s: float) -> None:
        """Close an engine.io connection even if its peer has stopped reading.

        engine.io's own disconnect waits until its writer has sent everything
        queued, and that writer waits for the peer: a phone that stopped
        reading would hold it forever. We queue the engine.io CLOSE (which
        clients treat as a transport loss and so reconnect), give a slow but
        live peer ``grace_s`` to read it, then abort the TCP connection.
        """
        socket = self.eio.sockets.get(eio_sid)
        request = self.environ.get(eio_sid, {}).get("aiohttp.request")
        upgraded = socket is not None and socket.upgraded
        # Held here: aiohttp sets ``request.transport`` to None once the
        # connection is lost, which a peer that reads the CLOSE does within
        # the grace period (it was an AttributeError after the sleep).
        transport = request.transport if upgraded and request is not None else None
        if socket is not None:
            await socket.close(wait=False, abort=False)
        if transport is not None:
            if grace_s:
                await asyncio.sleep(grace_s)
            if not transport.is_closing():
                transport.abort()


def _error_ack(codec: Codec, err: ProtocolError) -> Any:
    return _ack(codec, {"ok": False, "error": err.to_wire()})


def _ack(codec: Codec, payload: dict[str, Any]) -> Any:
    return codec.encode(payload) if codec.name == "msgpack" else payload


class Gateway:
    def __init__(
        self,
        *,
        commands: CommandService,
        hub: Hub,
        accounts: Accounts,
        limits: Limits,
        allowed_origins: list[str] | str,
        max_pending_bytes: int,
        ping_interval: float,
        ping_timeout: float,
    ) -> None:
        self.commands, self.hub, self.accounts = commands, hub, accounts
        self.limits = limits
        self.max_pending_bytes = max_pending_bytes
        self.sessions: dict[str, Session] = {}
        #: Live sessions by user id, so a revocation closes them at once.
        self.by_user: dict[str, set[str]] = {}
        accounts.guard.on_revoked(self.close_revoked)
        self.flusher = Flusher()
        self.sio = LiaisonSocketServer(
            async_mode="aiohttp",
            async_handlers=False,
            cors_allowed_origins=allowed_origins,
            json=_OrjsonModule,
            # The documented frame limit is enforced per command with a typed
            # error; this is only the hard cap beyond which engine.io drops
            # the connection.
            max_http_buffer_size=limits.max_frame_bytes * 4,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            http_compression=False,
            logger=False,
            engineio_logger=False,
            serializer=CheckedPacket,
        )
        self.sio.binary_allowed = set()
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)
        self.sio.command_handler = self._admit_cmd
        self.sio.refusal_handler = self.on_refused
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Set once the server stops: commands are refused, connections sent away.
        self.closing = False
        #: ``cmd`` handlers running now; ``_quiet`` is set whenever there are none.
        self._running = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------- connect

    def _negotiate(self, auth: Any) -> tuple[Principal, AccessClaims, Codec, int]:
        f = Fields(auth if isinstance(auth, dict) else {}, "auth", self.limits)
        principal, claims = self.accounts.authenticate(
            auth.get("token") if isinstance(auth, dict) else None
        )
        offered = auth.get("versions", [PROTOCOL_VERSION]) if isinstance(auth, dict) else []
        if not isinstance(offered, list):
            raise ProtocolError(ErrorCode.INVALID, "auth.versions must be a list")
        common = [v for v in SUPPORTED_VERSIONS if v in offered]
        if not common:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED_VERSION, detail={"supported": list(SUPPORTED_VERSIONS)}
            )
        encoding = f.opt_str("encoding", max_chars=16) or "json"
        return principal, claims, codec_for(encoding, self.limits), max(common)

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            principal, claims, codec, version = self._negotiate(auth)
        except ProtocolError as err:
            raise socketio.exceptions.ConnectionRefusedError(err.message, err.to_wire()) from None
        except Exception:
            # Never let it escape: python-socketio would retry this handler
            # without ``auth`` on a TypeError, and answer nothing on others
            # (the client waits for its connect timeout).
            log.exception("negotiating a connection failed")
            failure = ProtocolError(ErrorCode.INTERNAL)
            raise socketio.exceptions.ConnectionRefusedError(
                failure.message, failure.to_wire()
            ) from None
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        eio_socket = self.sio.eio.sockets[eio_sid]
        outbox = Outbox(
            eio_socket,
            codec.name,
            self.max_pending_bytes,
            lambda: self._overflowed(sid),
            self.flusher,
        )
        acks = self._pipeline(codec, eio_sid, "/")
        self.sessions[sid] = Session(sid, principal, codec, outbox, acks, claims)
        self.by_user.setdefault(principal.user_id, set()).add(sid)
        if codec.name == "msgpack":
            self.sio.binary_allowed.add(eio_sid)
        welcome = {
            "v": version,
            "encoding": codec.name,
            "server": {"name": "liaison", "version": __version__},
            "limits": self.limits.to_wire(),
            "user": {
                "id": principal.user_id,
                "org": principal.org_id,
                "role": principal.role.value,
                "name": principal.name,
            },
            "chain": CHAIN_RULE,
        }
        # Queued after the CONNECT packet, which python-socketio sends when
        # this handler returns (no await yields in between).
        self._spawn(self.sio.emit("welcome", welcome, to=sid))
        if self.closing:  # a connection that slipped in while the server stops
            self._spawn(self._send_away(self.sessions[sid]))

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        session = self.sessions.pop(sid, None)
        if session is not None:
            of_user = self.by_user.get(session.user, set())
            of_user.discard(sid)
            if not of_user:
                self.by_user.pop(session.user, None)
            session.gone.set()
            session.outbox.closed = True
            self.hub.drop(session)
            await session.acks.close()
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        self.sio.binary_allowed.discard(eio_sid)

    def _overflowed(self, sid: str) -> None:
        """Called inside a push that overflowed, before the hub forgets the follows."""
        session = self.sessions.get(sid)
        if session is not None:
            # seq positions queued so far: the client resumes from what it
            # actually received, which is never more than this.
            resume = self.hub.following(session)
            self.hub.drop(session)
            self._spawn(self._cut_off(session, resume))

    async def _cut_off(self, session: Session, resume: dict[str, int]) -> None:
        sid = session.sid
        notice = {
            "code": ErrorCode.SLOW_CONSUMER.code,
            "message": ErrorCode.SLOW_CONSUMER.default_message,
            "resume": resume,
        }
        session.outbox.send_text('2["notice",' + orjson.dumps(notice).decode() + "]")
        log.warning("cut off slow consumer %s (%s)", sid, session.principal.user_id)
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        await self.sio.close_connection(eio_sid, grace_s=CUT_OFF_GRACE_S)
        log.info("closed the connection of slow consumer %s", sid)

    # ------------------------------------------------------------ revocation

    async def close_revoked(self, user: str | None) -> None:
        """Close the live sessions of ``user`` (all users' if None) that are no longer valid."""
        sids = self.by_user.get(user, set()) if user is not None else set(self.sessions)
        revoked = [
            s
            for s in (self.sessions.get(sid) for sid in list(sids))
            if s is not None and not self.accounts.still_valid(s.claims)
        ]
        for session in revoked:
            self._spawn(self._close_revoked_session(session))

    async def _close_revoked_session(self, session: Session) -> None:
        """An ``unauthenticated`` notice, then the clean close of a cut-off.

        The client reconnects as after any lost transport, and that connect
        is refused (``unauthenticated``), so it stops and signs in again.
        """
        if session.outbox.closed:
            return
        session.outbox.closed = True  # not one more event reaches it
        self.hub.drop(session)
        notice = {"code": ErrorCode.UNAUTHENTICATED.code, "message": "the session has ended"}
        session.outbox.send_text('2["notice",' + orjson.dumps(notice).decode() + "]")
        log.info("closing the revoked session %s of %s", session.sid, session.user)
        eio_sid = self.sio.manager.eio_sid_from_sid(session.sid, "/")
        if eio_sid is not None:
            await self.sio.close_connection(eio_sid, grace_s=REVOKED_GRACE_S)

    # --------------------------------------------------------------- commands

    async def _admit_cmd(
        self, sid: str, eio_sid: str, namespace: str, ack_id: int | None, data: Any
    ) -> None:
        """Refuse commands once the server stops; count the ones running until then."""
        if self.closing:
            session = self.sessions.get(sid)
            if session is not None:
                err = ProtocolError(ErrorCode.SHUTDOWN)
                await session.acks.add(ack_id, _error_ack(session.codec, err))
            return
        self._running += 1
        self._quiet.clear()
        try:
            await self.on_cmd(sid, eio_sid, namespace, ack_id, data)
        finally:
            self._running -= 1
            if not self._running:
                self._quiet.set()

    async def on_cmd(
        self, sid: str, eio_sid: str, namespace: str, ack_id: int | None, data: Any
    ) -> None:
        """One ``cmd``: decided now, acknowledged in arrival order (see pipeline.py)."""
        session = self.sessions.get(sid)
        if session is None:
            return
        codec = session.codec
        if not self.accounts.still_valid(session.claims):
            # Revoked, and the feed's close has not happened yet (or failed):
            # the command is not run (DESIGN: re-check on every command).
            err = ProtocolError(ErrorCode.UNAUTHENTICATED, "the session has ended")
            await session.acks.add(ack_id, _error_ack(codec, err))
            self._spawn(self._close_revoked_session(session))
            return
        try:
            cmd = v1.parse_command(self._decode(codec, data), self.limits)
            if isinstance(cmd, PIPELINED):
                pending = await self.commands.submit(session.principal, cmd)
                await session.acks.add(ack_id, pending)
                return
            await session.acks.idle()  # earlier commands are acknowledged first
            payload = _ack(codec, {"ok": True, **await self._run(session, cmd)})
        except ProtocolError as err:
            payload = _error_ack(codec, err)
        except StorageUnavailable as exc:  # a read on the way failed; nothing was written
            log.warning("command from %s: storage unavailable: %s", session.principal.user_id, exc)
            payload = _error_ack(codec, ProtocolError(ErrorCode.UNAVAILABLE))
        except Exception:
            log.exception("command from %s failed", session.principal.user_id)
            payload = _error_ack(codec, ProtocolError(ErrorCode.INTERNAL))
        await session.acks.add(ack_id, payload)

    def _pipeline(self, codec: Codec, eio_sid: str, namespace: str) -> AckPipeline:
        async def send_ack(ack_id: int, payload: Any) -> None:
            await self.sio._send_packet(
                eio_sid,
                self.sio.packet_class(
                    sio_packet.ACK, namespace=namespace, id=ack_id, data=[payload]
                ),
            )

        async def finish(pending: asyncio.Future[AppendResult]) -> Any:
            try:
                return _ack(codec, {"ok": True, **await self.commands.outcome(pending)})
            except ProtocolError as err:
                return _error_ack(codec, err)
            except Exception:
                log.exception("a pipelined command failed")
                return _error_ack(codec, ProtocolError(ErrorCode.INTERNAL))

        return AckPipeline(send_ack, finish)

    def _decode(self, codec: Codec, data: Any) -> Any:
        if codec.name == "msgpack":
            if not isinstance(data, bytes):
                raise ProtocolError(ErrorCode.MALFORMED, "msgpack sessions send binary frames")
            return codec.decode(data)
        if not isinstance(data, dict):
            raise ProtocolError(ErrorCode.MALFORMED, "json sessions send an object")
        # socket.io already parsed the JSON; size is checked on the canonical
        # re-encoding (a few microseconds for a typical post).
        return check_decoded(data, self.limits)

    async def _run(self, session: Session, cmd: v1.Command) -> dict[str, Any]:
        match cmd:
            case v1.Follow():
                results = [await self.hub.follow(session, t) for t in cmd.targets]
                return {"incidents": results}
            case v1.Unfollow():
                for incident in cmd.incidents:
                    self.hub.unfollow(session, incident)
                return {"incidents": list(cmd.incidents)}
        return await self.commands.execute(session.principal, cmd)

    async def on_refused(self, sid: str, ack_id: int | None, err: ProtocolError) -> None:
        """A packet we will not run: an error ack in order, else a ``notice``."""
        session = self.sessions.get(sid)
        if session is None:
            return
        if ack_id is not None:
            await session.acks.add(ack_id, _error_ack(session.codec, err))
            return
        notice = {"code": err.code.code, "message": err.message}
        await self.sio.emit("notice", notice, to=sid)

    # --------------------------------------------------------------- shutdown

    async def shut_down(self) -> None:
        """Stop taking commands, finish those in flight, send every client elsewhere.

        Runs in aiohttp's ``on_shutdown``: after the listening socket closed and
        before aiohttp waits for open requests, which for a WebSocket means
        until its client leaves. Clients are sent away so that they reconnect
        by themselves (see ``_send_away``), which also ends those requests.
        """
        self.closing = True
        log.info(
            "shutdown: no longer listening; refusing new commands (%d clients connected)",
            len(self.sessions),
        )
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                await self._quiet.wait()
                await asyncio.gather(*(s.acks.idle() for s in list(self.sessions.values())))
            log.info("shutdown: every command in flight was stored and acknowledged")
        except TimeoutError:
            log.warning(
                "shutdown: commands still in flight after %.1f s are not acknowledged;"
                " their clients retry them with the same id",
                DRAIN_TIMEOUT_S,
            )
        sessions = list(self.sessions.values())
        await asyncio.gather(*(self._send_away(s) for s in sessions))
        log.info(
            "shutdown: told %d clients to reconnect and closed their connections", len(sessions)
        )

    async def _send_away(self, session: Session) -> None:
        """A ``shutdown`` notice, then the end of the transport, not a disconnect.

        The notice goes through engine.io's queue, after what was queued before
        it. On a WebSocket a sentinel follows, at which engine.io's writer
        closes the WebSocket; a long-polling session is closed once a poll has
        taken the notice, so the next poll fails. Either way clients see a lost
        transport and reconnect on their own. Neither a Socket.IO DISCONNECT
        ("io server disconnect") nor an engine.io CLOSE packet is sent:
        socket.io-client does not retry the first, python-engineio's client
        does not retry the second.
        """
        eio_sid = self.sio.manager.eio_sid_from_sid(session.sid, "/")
        socket = self.sio.eio.sockets.get(eio_sid)
        if socket is None or socket.closed:
            return
        notice = {"code": ErrorCode.SHUTDOWN.code, "message": ErrorCode.SHUTDOWN.default_message}
        session.outbox.send_text('2["notice",' + orjson.dumps(notice).decode() + "]")
        upgraded = socket.upgraded
        if upgraded:
            socket.queue.put_nowait(None)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SEND_AWAY_GRACE_S):
                await socket.queue.join()  # taken by the writer, or by a poll
                if upgraded:
                    await session.gone.wait()
        if not session.gone.is_set():  # long-polling, or a peer that does not read
            await socket.close(wait=False, abort=True)
            socket.queue.put_nowait(None)  # releases a poll waiting for packets
            await self.sio.close_connection(eio_sid, grace_s=0.0)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
