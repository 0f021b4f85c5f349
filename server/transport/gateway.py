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
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson

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
from server.logs import event
from server.metrics import Metrics, unregistered
from server.services.accounts import Accounts
from server.services.commands import PIPELINED, CommandService
from server.services.hub import Hub, Piece
from server.transport.admission import Admission
from server.transport.feed_socket import FeedSockets
from server.transport.http_log import sid_tag
from server.transport.lean_async import Flag
from server.transport.outbox import Flusher, Outbox
from server.transport.pipeline import AckPipeline
from server.transport.sio_seam import CONNECT, ConnectionRefused, MalformedPacket, SocketServer

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
    gone: Flag = field(default_factory=Flag)

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

    def sees(self, incident: str) -> bool:
        return self.principal.sees(incident)

    def push(self, piece: Piece) -> bool:
        return self.outbox.push(piece)

    def push_many(self, pieces: Sequence[Piece]) -> int:
        return self.outbox.push_many(pieces)

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
        admission: Admission | None = None,
    ) -> None:
        self.commands, self.hub, self.accounts = commands, hub, accounts
        #: Caps on new and unauthenticated sessions and per user (admission.py).
        self.admission = admission or Admission.unlimited()
        self.limits = limits
        self.max_pending_bytes = max_pending_bytes
        self.sessions: dict[str, Session] = {}
        #: Live sessions by user id, so a revocation closes them at once.
        self.by_user: dict[str, set[str]] = {}
        accounts.guard.on_revoked(self.close_revoked)
        self.flusher = Flusher()
        self.sio = SocketServer(
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
        )
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)
        self.sio.event_handler = self.on_event
        self.sio.malformed_handler = self.on_malformed
        self.sio.admit_with(self.admission)
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Set once the server stops: commands are refused, connections sent away.
        self.closing = False
        #: ``cmd`` handlers running now; ``_quiet`` is set whenever there are none.
        self._running = 0
        self._quiet = asyncio.Event()
        self._quiet.set()
        #: Slow-consumer cut-offs (set by the app).
        self.metrics: Metrics = unregistered()
        #: The cross-incident feed's readers (set by the app; SPEC section 24).
        self.feeds: FeedSockets | None = None

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
            if isinstance(auth, dict):  # a key created elsewhere a moment ago is read first
                await self.accounts.prepare(auth.get("token"))
            principal, claims, codec, version = self._negotiate(auth)
            self.admission.check_user(len(self.by_user.get(principal.user_id, ())))
        except ProtocolError as err:
            answer = await self.admission.refused(environ, auth, err)
            raise ConnectionRefused(answer.message, answer.to_wire()) from None
        except Exception:
            # Never let it escape: python-socketio would retry this handler
            # without ``auth`` on a TypeError, and answer nothing on others
            # (the client waits for its connect timeout).
            log.exception("negotiating a connection failed")
            failure = ProtocolError(ErrorCode.INTERNAL)
            raise ConnectionRefused(failure.message, failure.to_wire()) from None
        eio_sid = self.sio.eio_sid_of(sid)
        connection = self.sio.connection(eio_sid)
        assert connection is not None  # the connect handler runs on an open session
        outbox = Outbox(
            connection,
            codec.name,
            self.max_pending_bytes,
            partial(self._overflowed, sid),
            self.flusher,
        )
        acks = self._pipeline(codec, eio_sid, outbox)
        self.sessions[sid] = Session(sid, principal, codec, outbox, acks, claims)
        self.by_user.setdefault(principal.user_id, set()).add(sid)
        event(
            log,
            logging.INFO,
            "connection.open",
            "connection of %s opened",
            principal.user_id,
            conn=sid_tag(sid),
            user=principal.user_id,
            org=principal.org_id,
            encoding=codec.name,
        )
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
            event(
                log,
                logging.INFO,
                "connection.close",
                "connection of %s closed",
                session.user,
                conn=sid_tag(sid),
                user=session.user,
                reason=str(reason)[:64],
            )
            self.hub.drop(session)
            if self.feeds is not None:
                self.feeds.drop(sid)
            await session.acks.close()
        self.sio.binary_allowed.discard(self.sio.eio_sid_of(sid))

    def _overflowed(self, sid: str) -> None:
        """Called inside a push that overflowed, before the hub forgets the follows."""
        session = self.sessions.get(sid)
        if session is not None:
            self.metrics.slow_consumer_cutoffs.inc()
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
        event(
            log,
            logging.WARNING,
            "connection.cut_off",
            "cut off slow consumer %s (%s)",
            sid,
            session.user,
            conn=sid_tag(sid),
            user=session.user,
            reason="slow_consumer",
        )
        # The transport ends without an Engine.IO CLOSE, as at shutdown: the
        # client reconnects by itself and resumes (SPEC §15).
        await self.sio.end_transport(self.sio.eio_sid_of(sid), CUT_OFF_GRACE_S, session.gone)
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
        eio_sid = self.sio.eio_sid_of(session.sid)
        if eio_sid is not None:
            # As a cut-off does: no Engine.IO CLOSE, so the client reconnects,
            # and that connect is refused (unauthenticated).
            await self.sio.end_transport(eio_sid, REVOKED_GRACE_S, session.gone)

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

    def _pipeline(self, codec: Codec, eio_sid: str, outbox: Outbox) -> AckPipeline:
        acks = _SessionAcks(self, codec, eio_sid, outbox)
        return AckPipeline(acks.send_ack, acks.finish)

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
            case v1.FeedSubscribe() if self.feeds is not None:
                return await self.feeds.subscribe(session, cmd)
            case v1.FeedUnsubscribe() if self.feeds is not None:
                self.feeds.unsubscribe(session)
                return {}
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

    async def on_event(self, sid: str, eio_sid: str, ack_id: int | None, data: list[Any]) -> None:
        """Every EVENT: ``cmd`` is run; every other name, reserved ones included, is refused."""
        name = data[0]
        if name == "cmd":
            await self._admit_cmd(sid, eio_sid, "/", ack_id, data[1] if len(data) > 1 else None)
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
        if ack_id is not None or err.code is ErrorCode.MALFORMED:
            await self.on_refused(sid, ack_id, err)

    async def on_malformed(self, eio_sid: str, exc: MalformedPacket) -> None:
        """Answer a packet that cannot be decoded, as SPEC §3 says.

        A CONNECT gets ``connect_error``; a connected client gets an error
        ack when the ack id is known, else a ``notice``; a client that is not
        connected is hung up on. Logged without a traceback: it is the
        client's error, not ours.
        """
        sid = self.sio.sid_of(eio_sid)
        log.warning("refused a Socket.IO packet from %s: %s", sid or eio_sid, exc.reason)
        err = ProtocolError(ErrorCode.MALFORMED, exc.reason[:200])
        if sid is None and exc.packet_type == CONNECT:
            await self.sio.send_connect_error(eio_sid, err.message, err.to_wire())
        elif sid is None or not self.sio.is_connected(sid):
            await self.sio.hang_up(eio_sid)
        else:
            await self.on_refused(sid, exc.ack_id, err)

    # --------------------------------------------------------------- shutdown

    async def shut_down(self) -> None:
        """Stop taking commands, finish those in flight, send every client elsewhere.

        Runs in aiohttp's ``on_shutdown``: after the listening socket closed and
        before aiohttp waits for open requests, which for a WebSocket means
        until its client leaves. Clients are sent away so that they reconnect
        by themselves (see ``_send_away``), which also ends those requests.
        """
        self.closing = True
        event(
            log,
            logging.INFO,
            "shutdown.begin",
            "shutdown: no longer listening; refusing new commands (%d clients connected)",
            len(self.sessions),
            clients=len(self.sessions),
        )
        try:
            async with asyncio.timeout(DRAIN_TIMEOUT_S):
                await self._quiet.wait()
                await asyncio.gather(*(s.acks.idle() for s in list(self.sessions.values())))
            event(
                log,
                logging.INFO,
                "shutdown.drained",
                "shutdown: every command in flight was stored and acknowledged",
            )
        except TimeoutError:
            event(
                log,
                logging.WARNING,
                "shutdown.drain_timeout",
                "shutdown: commands still in flight after %.1f s are not acknowledged;"
                " their clients retry them with the same id",
                DRAIN_TIMEOUT_S,
            )
        sessions = list(self.sessions.values())
        await asyncio.gather(*(self._send_away(s) for s in sessions))
        event(
            log,
            logging.INFO,
            "shutdown.sent_away",
            "shutdown: told %d clients to reconnect and closed their connections",
            len(sessions),
            clients=len(sessions),
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
        eio_sid = self.sio.eio_sid_of(session.sid)
        connection = self.sio.connection(eio_sid)
        if connection is None or connection.closed:
            return
        notice = {"code": ErrorCode.SHUTDOWN.code, "message": ErrorCode.SHUTDOWN.default_message}
        session.outbox.send_text('2["notice",' + orjson.dumps(notice).decode() + "]")
        await self.sio.end_transport(eio_sid, SEND_AWAY_GRACE_S, session.gone)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class _SessionAcks:
    """How one session's acks are sent and its pipelined commands answered.

    An object with two methods rather than two closures: it is kept for the
    session's life, and closures with their cells cost about twice as much
    per connection."""

    __slots__ = ("_codec", "_eio_sid", "_gateway", "_outbox")

    def __init__(self, gateway: Gateway, codec: Codec, eio_sid: str, outbox: Outbox) -> None:
        self._gateway, self._codec, self._eio_sid, self._outbox = gateway, codec, eio_sid, outbox

    async def send_ack(self, ack_id: int, payload: Any) -> None:
        # JSON acks ride the outbox's write with the turn's events (no
        # engine.io queue and writer task per ack); msgpack acks are
        # binary packets with an attachment: engine.io's queue, always.
        sio = self._gateway.sio
        text = sio.ack_text(ack_id, payload) if self._codec.name == "json" else None
        if text is None:
            await sio.send_ack(self._eio_sid, ack_id, payload)
        else:
            self._outbox.ack(text)

    async def finish(self, pending: asyncio.Future[AppendResult]) -> Any:
        codec = self._codec
        try:
            return _ack(codec, {"ok": True, **await self._gateway.commands.outcome(pending)})
        except ProtocolError as err:
            return _error_ack(codec, err)
        except Exception:
            log.exception("a pipelined command failed")
            return _error_ack(codec, ProtocolError(ErrorCode.INTERNAL))
