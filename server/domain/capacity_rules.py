"""The rules of capacity requests from an incident (SPEC 27.3).

A coordinator of a participating organisation asks another participant for
some of its capacity (``capacity.request`` -> ``capacity.requested``); that
organisation's coordinators, or its liaison in the incident, accept or
decline it once (``capacity.accepted`` / ``capacity.declined``, follow-ups
with the request's visibility and label).
"""

from __future__ import annotations

from typing import Any

from protocol import v1
from protocol.errors import ErrorCode, ProtocolError
from server.domain.events import EventDraft
from server.domain.incident import CapacityRequestState, IncidentState, Sight
from server.domain.model import Principal
from server.domain.sharing import Label


def _draft(
    who: Principal,
    cmd: v1.IncidentCommand,
    state: IncidentState,
    kind: str,
    body: dict[str, Any],
    vis: tuple[str, ...] | None,
) -> EventDraft:
    return EventDraft(
        incident=state.id,
        type=kind,
        actor_user=who.user_id,
        actor_org=who.org_id,
        actor_name=who.name,
        client_id=cmd.id,
        visibility=vis,
        body=body,
    )


def decide_request(
    state: IncidentState, who: Principal, cmd: v1.CapacityRequest, vis: tuple[str, ...] | None
) -> EventDraft:
    if not who.coordinates:
        raise ProtocolError(ErrorCode.FORBIDDEN, f"role {who.role} may not request capacity")
    if not state.participates(cmd.org):
        raise ProtocolError(
            ErrorCode.INVALID,
            "org: capacity is requested from a participating organisation (add it first)",
            {"field": "org"},
        )
    if vis is not None and cmd.org not in vis:
        raise ProtocolError(
            ErrorCode.INVALID,
            "visibility: the requested organisation could not see the request",
            {"field": "visibility"},
        )
    if cmd.tlp == Label.RED.value:
        raise ProtocolError(
            ErrorCode.INVALID, "tlp: a capacity request is for an organisation, not RED"
        )
    body = {"org": cmd.org, "items": cmd.items, "note": cmd.note}
    return _draft(who, cmd, state, "capacity.requested", body, vis)


def decide_answer(
    state: IncidentState,
    who: Principal,
    cmd: v1.CapacityAnswer,
    vis: tuple[str, ...] | None,
    sight: Sight,
) -> EventDraft:
    request: CapacityRequestState | None = state.capacity_requests.get(cmd.request)
    if request is None or not sight.of(request.meta).visible:
        raise ProtocolError(ErrorCode.NOT_FOUND, "no such capacity request")
    liaison = state.liaisons.get(request.org) == who.user_id
    if who.org_id != request.org or not (who.coordinates or liaison):
        raise ProtocolError(
            ErrorCode.FORBIDDEN, "the requested organisation's coordinators or liaison answer it"
        )
    if request.status != "requested":
        raise ProtocolError(ErrorCode.CONFLICT, f"the request was {request.status} already")
    if vis is not None and vis != request.meta.visibility:
        raise ProtocolError(ErrorCode.INVALID, "a follow-up has the visibility of what it follows")
    kind = v1.EVENT_OF_COMMAND[cmd.TYPE]
    body = {"request": request.seq, "note": cmd.note}
    return _draft(who, cmd, state, kind, body, request.meta.visibility)
