"""The one write path: validate, decide against current state, append durably.

Socket.IO handlers and REST endpoints both call ``CommandService.execute``;
its result is what the client's ack carries.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from protocol import v1
from protocol.errors import ErrorCode, ProtocolError
from protocol.v1 import LIVE_MODE
from server.domain.decide import decide, decide_create
from server.domain.directory import DirectoryView
from server.domain.events import AppendResult, EventDraft
from server.domain.model import Principal
from server.domain.modes import mode_of
from server.domain.sharing import AgreementsView
from server.errors import (
    ClientIdReused,
    IncidentArchived,
    LogNotFound,
    StorageOutcomeUnknown,
    StorageUnavailable,
)
from server.services.archived import archived_for, refusal
from server.services.keyed_locks import KeyedLocks
from server.services.projections import Projections
from server.services.ref_claims import ReferenceClaims
from server.storage.base import EventLog, IncidentQuery
from server.storage.leases import MemoryLeases

#: Commands whose validity depends on state another command may change at the
#: same moment (task and incident transitions, message edits). They are decided
#: and appended one at a time per incident on this node; posts and positions,
#: the bulk of the traffic, go straight through. So does a duress alarm: it
#: never waits behind anything (receipts are deduplicated by their id).
_SERIAL = (
    v1.IncidentUpdate,
    v1.IncidentStatus,
    v1.TaskCreate,
    v1.TaskAssign,
    v1.TaskTransition,
    v1.MessageEdit,
    v1.MessageRetract,
    v1.MessageAck,
    v1.CheckinStart,
    v1.CheckinOk,
    v1.CheckinEnd,
    v1.CheckinResolve,
)


#: Commands a connection may pipeline: decided in arrival order against the
#: current state and acknowledged in that order, without waiting for the
#: previous one's commit. They do not depend on the outcome of an earlier
#: command of the same connection (a client cannot reply to or edit a post
#: before it knows the post's seq).
PIPELINED = (v1.MessagePost, v1.ResponderStatus, v1.ResponderPosition)

Ack = dict[str, Any]


def ack_payload(result: AppendResult) -> Ack:
    ev = result.event
    return {
        "incident": ev.incident,
        "seq": ev.seq,
        "epoch": ev.epoch,
        "ts": ev.ts_ms,
        "duplicate": result.duplicate,
    }


def _check_scope(who: Principal, cmd: v1.Command) -> None:
    """An API key's allowed command types; opening incidents needs every incident."""
    if not who.may_send(cmd.TYPE):
        raise ProtocolError(ErrorCode.FORBIDDEN, f"this API key may not send {cmd.TYPE}")
    scope = who.scope
    if isinstance(cmd, v1.IncidentCreate) and scope is not None and scope.incidents is not None:
        # Its new incident would be outside its own scope at once.
        raise ProtocolError(
            ErrorCode.FORBIDDEN, "an API key scoped to some incidents cannot open new ones"
        )


def _messages_named(cmd: v1.IncidentCommand) -> tuple[int, ...]:
    """The messages a command is decided on (replied to, edited, acknowledged...)."""
    if isinstance(cmd, v1.MessagePost):
        return () if cmd.reply_to is None else (cmd.reply_to,)
    if isinstance(cmd, v1.MessageEdit | v1.MessageRetract | v1.MessageAck):
        return (cmd.message,)
    if isinstance(cmd, v1.ReceiptMark) and cmd.message is not None:
        return (cmd.message,)
    return ()


def _ref_set_by(draft: EventDraft) -> str | None:
    """The external reference a creation or an update sets, if any."""
    if draft.type not in ("incident.created", "incident.updated"):
        return None
    ref = draft.body.get("external_ref")
    return ref if isinstance(ref, str) else None


class CommandService:
    def __init__(
        self,
        log: EventLog,
        projections: Projections,
        directory: DirectoryView,
        rules: AgreementsView,
        claims: ReferenceClaims | None = None,
    ) -> None:
        """``claims``: the nodes' shared leases on external references (default:
        this process only, as in the embedded mode)."""
        self._log = log
        self._projections = projections
        self._directory = directory
        self._rules = rules
        self._locks = KeyedLocks()  # held only while a command runs
        self._claims = claims or ReferenceClaims(MemoryLeases(), "embedded", self._locks)

    async def execute(self, who: Principal, cmd: v1.Command) -> Ack:
        """Run a write command; the ack payload on success, ProtocolError otherwise."""
        _check_scope(who, cmd)
        if isinstance(cmd, v1.IncidentCreate):
            now = int(time.time() * 1000)
            draft = decide_create(who, cmd, self._directory, now)
            try:
                result = await self._checked_append(who, draft)
            except ProtocolError as exc:
                if not isinstance(exc.__cause__, IncidentArchived):
                    raise
                # A retry of a creation whose incident was archived since (its id
                # comes from the client id): answered as a read of it (SPEC 25.4).
                raise await refusal(self._log, draft.incident, who.org_id) from None
            # Load the projection now so the creator can act on it at once.
            await self._projections.get(result.event.incident)
        elif isinstance(cmd, v1.IncidentCommand):
            if isinstance(cmd, _SERIAL):
                async with self._locks.hold(cmd.incident):
                    result = await self._decide_and_append(who, cmd)
            else:
                result = await self._decide_and_append(who, cmd)
        else:
            raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"{cmd.TYPE} is not a write command")
        return ack_payload(result)

    async def submit(self, who: Principal, cmd: v1.IncidentCommand) -> asyncio.Future[AppendResult]:
        """Decide a PIPELINED command now and queue its append; await ``outcome`` later.

        Refusals raise here; storage errors surface from ``outcome``.
        """
        _check_scope(who, cmd)
        draft = await self._decide(who, cmd)
        if isinstance(draft, AppendResult):
            done: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
            done.set_result(draft)
            return done
        return self._log.enqueue(draft)

    async def outcome(self, pending: asyncio.Future[AppendResult]) -> Ack:
        return ack_payload(await self._translated(pending))

    async def _decide(self, who: Principal, cmd: v1.IncidentCommand) -> EventDraft | AppendResult:
        # A participant of a cached incident goes straight on (the hot path).
        # Anyone else is checked against the index before any projection is
        # loaded, so "not shared with you" and "does not exist" are refused
        # through the same single lookup, and in the same time.
        # An incident outside an API key's scope takes the same lookup and
        # gets the same answer as one not shared with its organisation.
        in_scope = who.sees(cmd.incident)
        if not (in_scope and self._projections.known_participant(cmd.incident, who.org_id)):
            if not await self._log.participates(cmd.incident, who.org_id) or not in_scope:
                raise await refusal(self._log, cmd.incident, who.org_id, in_scope)
        state = await self._projections.get(cmd.incident)
        if state is not None and any(state.lacks_message(m) for m in _messages_named(cmd)):
            # A message older than what the projection keeps: the log answers.
            state = await self._projections.whole(cmd.incident, state.seq)
        if state is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such incident")
        try:
            return decide(state, who, cmd, self._directory, self._rules, int(time.time() * 1000))
        except ProtocolError as refused:
            if state.status == "closed":
                await self._unless_archived(who, cmd.incident, refused)
            # A retry of an action that was stored may now be refused by the
            # state it changed (a second "accept"): answer with the original.
            original = await self._log.find(cmd.incident, who.user_id, cmd.id)
            if (
                original is not None
                and original.incident == cmd.incident
                and original.type == v1.EVENT_OF_COMMAND.get(cmd.TYPE)
            ):
                return AppendResult(original, duplicate=True)
            raise

    async def _decide_and_append(self, who: Principal, cmd: v1.IncidentCommand) -> AppendResult:
        draft = await self._decide(who, cmd)
        if isinstance(draft, AppendResult):
            return draft
        try:
            return await self._checked_append(who, draft)
        except ProtocolError as refused:
            if isinstance(refused.__cause__, LogNotFound):
                await self._unless_archived(who, cmd.incident, refused)
            raise

    async def _unless_archived(self, who: Principal, incident: str, refused: ProtocolError) -> None:
        """Raise ``archived`` instead of ``refused`` if another node archived the incident.

        Only the archiving node forgets its projection (Retention); another one
        may still hold the closed incident's state and decide on it (``the
        incident is closed``, or a reopening whose append finds no log). Only a
        closed incident is archived, so only refusals of closed incidents pay
        this lookup.
        """
        if await archived_for(self._log, incident, who.org_id) is None:
            return
        self._projections.forget(incident)
        raise await refusal(self._log, incident, who.org_id) from refused

    async def _checked_append(self, who: Principal, draft: EventDraft) -> AppendResult:
        """Append ``draft`` once its external reference's mode is checked.

        A draft that sets a reference holds it from the check to the commit
        (server/services/ref_claims.py): two creations with one CAD number, one
        live and one an exercise, sent at once, both passed the check before
        either was stored.
        """
        ref = _ref_set_by(draft)
        if ref is None:
            return await self._append(draft)
        async with self._claims.hold(ref):
            await self._check_ref_mode(who, draft, ref)
            return await self._append(draft)

    async def _check_ref_mode(self, who: Principal, draft: EventDraft, ref: str) -> None:
        """An external reference stays within one mode (SPEC 28): a CAD number an
        exercise uses is never linked to a live incident, nor the reverse, or a
        CAD lookup (``?ref=``) would hand a drill to live work.

        Looked up among the incidents the author's organisation takes part in:
        the answer tells nothing about incidents it cannot see.
        """
        mode = mode_of(draft.body)
        page = await self._log.list_incidents(IncidentQuery(org=who.org_id, ref=ref, limit=20))
        for other in page.incidents:
            if other["id"] != draft.incident and other.get("mode", LIVE_MODE) != mode:
                raise ProtocolError(
                    ErrorCode.CONFLICT,
                    f"external_ref {ref!r} belongs to {other['mode']} incident {other['id']};"
                    f" this incident is {mode}",
                    {
                        "field": "external_ref",
                        "reason": "mode",
                        "mode": other["mode"],
                        "incident": other["id"],
                    },
                )

    async def _append(self, draft: EventDraft) -> AppendResult:
        return await self._translated(self._log.enqueue(draft))

    @staticmethod
    async def _translated(pending: asyncio.Future[AppendResult]) -> AppendResult:
        """Storage outcomes as protocol errors."""
        try:
            return await pending
        except StorageUnavailable as exc:
            raise ProtocolError(ErrorCode.UNAVAILABLE) from exc
        except StorageOutcomeUnknown as exc:
            raise ProtocolError(ErrorCode.OUTCOME_UNKNOWN) from exc
        except LogNotFound as exc:
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such incident") from exc
        except ClientIdReused as exc:
            raise ProtocolError(ErrorCode.CONFLICT, str(exc)) from exc
