"""Delivery: who follows which incident, and getting every event to them once.

Hot path (one committed batch of one incident)::

    log commit ─▶ Hub._on_events(incident, events)        (sync, no task per recipient)
                    the projection applies the batch first (who had joined by then)
                    for each event: encode once per (audience, encoding) on first use
                    for each follower: in-order check, then subscriber.push(bytes)

An audience (server/domain/audience.py) is computed once per event and
reader organisation (per user for RED events only), and each distinct
audience is encoded once: a placeholder, the whole event, or the event with
an agreement's redactions. When the projection cannot vouch for a batch
(stale, or not cached), the followers take the catch-up path, which reads
the state through ``Projections.at_least`` before deciding.

A follower's ``FollowState.last`` is the last seq handed to it. Live events
must arrive as ``last + 1``; anything else means events went missing on the
live path, so the follower goes into catch-up: live events are buffered while
the gap is read from the log, then the buffer is drained. Following from a
position uses the same catch-up, which is why resume never loses nor doubles.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

import msgpack
import orjson

from protocol.errors import ErrorCode
from protocol.v1 import FollowTarget
from server.domain.audience import (
    Audience,
    EventMeta,
    Reader,
    SharingContext,
    audience,
    event_meta,
)
from server.domain.events import StoredEvent
from server.domain.incident import IncidentState
from server.domain.sharing import AgreementsView, Label
from server.errors import StorageUnavailable
from server.fanout.base import Broker, Listener, Presence
from server.metrics import Metrics, unregistered
from server.services.archived import refusal
from server.services.envelope import shaped
from server.services.projections import Projections
from server.services.read_audit import RestrictedReadAudit, is_restricted
from server.storage.base import EventLog

log = logging.getLogger(__name__)

#: Events read from the log per page when catching a follower up.
CATCH_UP_PAGE = 500

#: Waits between attempts to fill a gap on the live path while storage is
#: down (about 30 s in all). Before, one failed read silently unfollowed the
#: incident: the connection stayed up and looked healthy, and the client never
#: heard from that incident again. Past the last attempt the client is told
#: to resume (``Subscriber.resume_required``), which it does from its own
#: position on reconnect.
LIVE_CATCH_UP_RETRY_S = (0.1, 0.2, 0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 8.0)

#: Live events buffered for one follower while its gap is being filled; past
#: this the follower is told to resume instead (memory stays bounded).
MAX_CATCH_UP_BUFFER = 10_000

#: One envelope, encoded once and shared by every recipient of its audience.
Piece = bytes


class Subscriber(Protocol):
    """A live connection as the hub sees it (implemented by the transport)."""

    @property
    def org(self) -> str: ...

    @property
    def user(self) -> str: ...

    @property
    def connection(self) -> str:
        """Unique per live connection (for presence)."""
        ...

    @property
    def encoding(self) -> str:
        """The codec name: "json" or "msgpack"."""
        ...

    def sees(self, incident: str) -> bool:
        """False for an incident outside its API key's scope (refused as not shared)."""
        ...

    def push(self, piece: Piece) -> bool:
        """Queue one live envelope; False if the connection is gone or was cut off
        because its buffer overflowed."""
        ...

    def push_many(self, pieces: Sequence[Piece]) -> int:
        """``push`` of each in order, stopping at the first refused: how many were queued."""
        ...

    async def push_backlog(self, piece: Piece) -> bool:
        """Queue one envelope read from the log, waiting for room instead of
        overflowing; False if the connection is gone."""
        ...

    def resume_required(self, incident: str) -> None:
        """The hub can no longer keep ``incident``'s stream whole for this
        connection (storage down for long): end the connection so that the
        client reconnects and resumes from its own positions (SPEC §15)."""
        ...


@dataclass(frozen=True, slots=True)
class _Moment:
    """What the audience rules read besides the event and the reader."""

    ctx: SharingContext
    rules: AgreementsView
    now_ms: int


ENCODERS: dict[str, Callable[[dict[str, Any]], Piece]] = {
    "json": orjson.dumps,
    "msgpack": lambda env: msgpack.packb(env, use_bin_type=True),
}


class _Encoded:
    """Per-event cache: each audience is decided once per reader organisation
    (per user for RED), and each (audience, encoding) serialised at most once."""

    __slots__ = ("audiences", "cache", "event", "meta", "moment", "restricted")

    def __init__(self, event: StoredEvent, moment: _Moment) -> None:
        self.event = event
        self.moment = moment
        #: Content only some may read: a delivery of it is audited.
        self.restricted = is_restricted(event.visibility, event.body)
        self.meta: EventMeta = event_meta(event)
        self.audiences: dict[tuple[str, str], Audience] = {}
        self.cache: dict[tuple[Audience, str], Piece] = {}

    def piece_for(self, sub: Subscriber) -> tuple[Piece, bool]:
        """The bytes for ``sub``, and whether they hold restricted content."""
        org = sub.org
        key = (org, sub.user if self.meta.label is Label.RED else "")
        aud = self.audiences.get(key)
        if aud is None:
            moment = self.moment
            aud = self.audiences[key] = audience(
                self.meta, Reader(org, sub.user), moment.ctx, moment.rules, moment.now_ms
            )
        encoding = sub.encoding
        piece = self.cache.get((aud, encoding))
        if piece is None:
            piece = self.cache[(aud, encoding)] = ENCODERS[encoding](shaped(self.event, aud))
        return piece, self.restricted and aud.visible


@dataclass(slots=True, eq=False)
class FollowState:
    last: int
    catching_up: bool = True
    buffer: list[StoredEvent] = field(default_factory=list)


class Hub:
    def __init__(
        self,
        log: EventLog,
        broker: Broker,
        projections: Projections,
        presence: Presence,
        rules: AgreementsView,
        reads: RestrictedReadAudit | None = None,
    ) -> None:
        self._log = log
        self._rules = rules
        #: Counts restricted deliveries for the audit log (None: not audited).
        self._reads = reads
        self._broker = broker
        self._projections = projections
        self._presence = presence
        self._followers: dict[str, dict[Subscriber, FollowState]] = {}
        self._listeners: dict[str, Listener] = {}
        self._ready: dict[str, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        #: Follow outcomes and fan-out time (set by the app; once per batch).
        self.metrics: Metrics = unregistered()

    # ------------------------------------------------------------ follow/drop

    async def follow(self, sub: Subscriber, target: FollowTarget) -> dict[str, Any]:
        """Start (or restart) delivery of one incident from ``target.after_seq``.

        Storage failing answers this target ``unavailable`` (SPEC §11.2), with
        nothing left registered; the other targets of the command go on.
        """
        result: dict[str, Any] = {"incident": target.incident}
        try:
            result |= await self._follow(sub, target)
        except StorageUnavailable as exc:
            log.warning("follow of %s by %s failed: %s", target.incident, sub.user, exc)
            code = ErrorCode.UNAVAILABLE
            result |= {"status": code.code, "retryable": code.retryable}
        self.metrics.follow_outcome(result["status"])
        return result

    async def _follow(self, sub: Subscriber, target: FollowTarget) -> dict[str, Any]:
        incident = target.incident
        # Membership from the index before any projection load: an incident
        # not shared with the reader is refused with the same work, and so in
        # the same time, as one that does not exist (RestApi._visible_state).
        if not await self._log.participates(incident, sub.org) or not sub.sees(incident):
            refused = await refusal(self._log, incident, sub.org, sub.sees(incident))
            return {
                "status": refused.code.code,
                **({"detail": refused.detail} if refused.detail else {}),
            }
        state = await self._projections.get(incident)
        if state is None or not state.participates(sub.org):
            return {"status": ErrorCode.NOT_FOUND.code}
        # Positions are checked against the log's head, not against this
        # node's projection: that one lags while its pub/sub link is slow or
        # down, and a correct position would look like one beyond the end.
        head = await self._log.head(incident)
        if head is None:
            return {"status": ErrorCode.NOT_FOUND.code}
        result: dict[str, Any] = {"epoch": head.epoch, "head_seq": head.seq}
        if target.epoch is not None and target.epoch != head.epoch:
            return result | {"status": ErrorCode.RESYNC_REQUIRED.code}
        if target.after_seq > head.seq:
            return result | {"status": ErrorCode.OUT_OF_RANGE.code}
        fs = await self._register(sub, incident, target.after_seq)
        return result | {"status": "ok", "head_seq": max(head.seq, fs.last)}

    async def _register(self, sub: Subscriber, incident: str, after_seq: int) -> FollowState:
        """Register a follower and catch it up: all or nothing.

        A follower left behind by a failed join would stay in catch-up mode
        and buffer every live event of the incident, without bound.
        """
        followers = await self._subscribed(incident)
        rejoining = sub in followers  # a re-follow: present already
        fs = followers[sub] = FollowState(last=after_seq)
        joined = rejoining
        try:
            if not rejoining:
                await self._presence.join(incident, sub.user, sub.connection)
                joined = True
            await self._catch_up(sub, incident, fs)
        except BaseException:
            if followers.get(sub) is fs:
                self._forget(sub, incident, leave=joined)
            raise
        return fs

    async def _subscribed(self, incident: str) -> dict[Subscriber, FollowState]:
        """The incident's followers, once the log delivers its events live."""
        followers = self._followers.get(incident)
        if followers is None:
            followers = self._followers[incident] = {}
            listener = self._listeners[incident] = partial(self._on_events, incident)
            ready = self._ready[incident] = asyncio.get_running_loop().create_future()
            self._projections.pin(incident)  # followed here: keep its projection cached
            try:
                await self._broker.subscribe(incident, listener)
                ready.set_result(None)
            except BaseException as exc:
                self._projections.unpin(incident)
                self._followers.pop(incident, None)
                self._listeners.pop(incident, None)
                self._ready.pop(incident, None)
                ready.set_exception(exc)
                ready.exception()  # retrieved here; concurrent followers get it too
                raise
        else:
            await asyncio.shield(self._ready[incident])
            if self._followers.get(incident) is not followers:
                return await self._subscribed(incident)  # emptied meanwhile: start over
        return followers

    def unfollow(self, sub: Subscriber, incident: str) -> None:
        self._forget(sub, incident, leave=True)

    def _forget(self, sub: Subscriber, incident: str, *, leave: bool) -> None:
        followers = self._followers.get(incident)
        if followers is None or followers.pop(sub, None) is None:
            return
        if leave:
            self._spawn(self._presence.leave(incident, sub.user, sub.connection))
        if not followers:
            del self._followers[incident]
            self._ready.pop(incident, None)
            self._broker.unsubscribe(incident, self._listeners.pop(incident))
            self._projections.unpin(incident)

    def drop(self, sub: Subscriber) -> None:
        """Forget a connection that went away."""
        for incident in [i for i, f in self._followers.items() if sub in f]:
            self.unfollow(sub, incident)

    def counts(self) -> tuple[int, int]:
        """(followed incidents, follows) on this node, for the metrics."""
        return len(self._followers), sum(len(f) for f in self._followers.values())

    def following(self, sub: Subscriber) -> dict[str, int]:
        """incident -> last seq delivered, for resume hints."""
        return {i: f[sub].last for i, f in self._followers.items() if sub in f}

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._reads is not None:
            await self._reads.close()

    # -------------------------------------------------------------- delivery

    def _on_events(self, incident: str, events: Sequence[StoredEvent]) -> None:
        followers = self._followers.get(incident)
        if not followers:
            return
        started = time.perf_counter()  # the log hands over a committed batch now
        state = self._projections.current(incident, events)
        if state is None or state.seq < events[-1].seq:
            # The projection cannot vouch for who had joined: every follower
            # takes the catch-up path, which reads the state first.
            for sub, fs in list(followers.items()):
                self._defer(sub, incident, fs, events)
            return
        moment = self._moment(state)
        encoded = [_Encoded(ev, moment) for ev in events]
        first, last = events[0].seq, events[-1].seq
        contiguous = last - first == len(events) - 1
        # Followers exactly at the batch's start, grouped by what decides their
        # bytes (organisation and encoding): each group's piece is looked up
        # once per event, and the inner loop only pushes. Anyone else (catching
        # up, behind, or a batch with a hole) takes the per-event checks.
        in_step: dict[tuple[str, str], list[tuple[Subscriber, FollowState]]] = {}
        for sub, fs in list(followers.items()):
            if contiguous and not fs.catching_up and fs.last + 1 == first:
                in_step.setdefault((sub.org, sub.encoding), []).append((sub, fs))
            else:
                for enc in encoded:
                    self._deliver_live(sub, incident, fs, enc)
        if in_step:
            self._deliver_in_step(incident, encoded, in_step)
        self.metrics.fanout_latency.observe(time.perf_counter() - started)

    def _deliver_in_step(
        self,
        incident: str,
        encoded: list[_Encoded],
        groups: dict[tuple[str, str], list[tuple[Subscriber, FollowState]]],
    ) -> None:
        """Deliver a contiguous batch to followers that are all at its start.

        Follower by follower, the whole batch at once (``push_many``): one look
        at a connection's transport per batch, not per event. A group's pieces
        are looked up once; only RED events are shaped per person.
        """
        seqs = [enc.event.seq for enc in encoded]
        red = [enc.meta.label is Label.RED for enc in encoded]
        any_red = any(red)
        for members in groups.values():
            lead = members[0][0]
            shared: list[tuple[Piece, bool] | None] = [
                None if r else enc.piece_for(lead) for enc, r in zip(encoded, red, strict=True)
            ]
            group = [got for got in shared if got is not None]
            group_pieces = [p for p, _ in group]
            for sub, fs in members:
                mine = group
                if any_red:
                    mine = [
                        got if got is not None else enc.piece_for(sub)
                        for got, enc in zip(shared, encoded, strict=True)
                    ]
                pieces = [p for p, _ in mine] if any_red else group_pieces
                queued = sub.push_many(pieces)
                if queued:
                    fs.last = seqs[queued - 1]
                for i in range(queued):
                    if mine[i][1]:
                        self._note_read(sub, incident, seqs[i])
                if queued < len(pieces):
                    self.unfollow(sub, incident)

    def _note_read(self, sub: Subscriber, incident: str, seq: int) -> None:
        if self._reads is not None:
            self._reads.note(sub.user, incident, seq)

    def _moment(self, state: IncidentState) -> _Moment:
        return _Moment(state.sharing(), self._rules, int(time.time() * 1000))

    def _defer(
        self, sub: Subscriber, incident: str, fs: FollowState, events: Sequence[StoredEvent]
    ) -> None:
        fresh = [ev for ev in events if ev.seq > fs.last]
        if not fresh:
            return
        fs.buffer.extend(fresh)
        if not fs.catching_up:
            fs.catching_up = True
            self._spawn(self._catch_up_live(sub, incident, fs))

    def _deliver_live(self, sub: Subscriber, incident: str, fs: FollowState, enc: _Encoded) -> None:
        ev = enc.event
        if fs.catching_up:
            fs.buffer.append(ev)
            if len(fs.buffer) > MAX_CATCH_UP_BUFFER:
                log.warning("%s: %s fell too far behind while catching up", incident, sub.user)
                self.unfollow(sub, incident)
                sub.resume_required(incident)
        elif ev.seq <= fs.last:
            return  # seen already (a duplicate publish)
        elif ev.seq == fs.last + 1:
            piece, restricted = enc.piece_for(sub)
            if sub.push(piece):
                fs.last = ev.seq
                if restricted:
                    self._note_read(sub, incident, ev.seq)
            else:
                self.unfollow(sub, incident)
        else:
            # A gap on the live path: fetch it from the log, buffer meanwhile.
            fs.catching_up = True
            fs.buffer.append(ev)
            self._spawn(self._catch_up_live(sub, incident, fs))

    async def _catch_up_live(self, sub: Subscriber, incident: str, fs: FollowState) -> None:
        """Fill a gap on the live path, retrying while storage is down."""
        for wait in (*LIVE_CATCH_UP_RETRY_S, None):
            if self._followers.get(incident, {}).get(sub) is not fs:
                return  # unfollowed or gone meanwhile
            try:
                await self._catch_up(sub, incident, fs)
                return
            except StorageUnavailable as exc:
                if wait is None:
                    break
                log.warning("catch-up of %s failed (%s); retrying in %.1f s", incident, exc, wait)
                await asyncio.sleep(wait)
            except Exception:
                log.exception("catch-up of %s failed", incident)
                break
        log.error("catch-up of %s for %s gave up; the client must resume", incident, sub.user)
        if self._followers.get(incident, {}).get(sub) is fs:
            self.unfollow(sub, incident)
            sub.resume_required(incident)

    async def _catch_up(self, sub: Subscriber, incident: str, fs: FollowState) -> None:
        """Deliver from the log after ``fs.last``, then the buffered live events.

        Raises StorageUnavailable: a follow answers it, the live path retries.
        """
        while True:
            events = await self._log.read(incident, fs.last, CATCH_UP_PAGE)
            if not await self._push_in_order(sub, incident, fs, events):
                self.unfollow(sub, incident)
                return
            if len(events) == CATCH_UP_PAGE:
                continue
            buffered, fs.buffer = fs.buffer, []
            if buffered and buffered[-1].seq > fs.last and buffered[0].seq > fs.last + 1:
                fs.buffer = buffered  # the log had not caught up with the buffer yet
                continue
            if not await self._push_in_order(sub, incident, fs, buffered):
                self.unfollow(sub, incident)
                return
            if not fs.buffer:
                fs.catching_up = False
                return

    async def _push_in_order(
        self, sub: Subscriber, incident: str, fs: FollowState, events: Sequence[StoredEvent]
    ) -> bool:
        if not events:
            return True
        state = await self._projections.at_least(incident, events[-1].seq)
        if state is None:
            raise StorageUnavailable(f"{incident}: no state to decide audiences on")
        moment = self._moment(state)
        for ev in events:
            if ev.seq != fs.last + 1:
                if ev.seq <= fs.last:
                    continue
                return True  # a hole: the next read fills it
            piece, restricted = _Encoded(ev, moment).piece_for(sub)
            if not await sub.push_backlog(piece):
                return False
            fs.last = ev.seq
            if restricted:
                self._note_read(sub, incident, ev.seq)
        return True
