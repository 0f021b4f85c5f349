"""Suggested assignees for a task (SPEC 27.4): candidates as the reader may see them.

Builds ``domain.suggest.Candidate`` values from the incident's projection
through the reader's ``Sight`` (the audience function of every read path):

* organisations: the participants the task could go to (its visibility, and
  the reader's own only for a partner's coordinator, as ``task.assign``);
* people: of the reader's own organisation, the incident's liaisons, and
  responders whose status or position the reader may see in the incident —
  never another organisation's staff list (the rule of presence,
  domain/presence_view.py);
* status and position: ``ResponderState.to_wire(sight)``, so a position the
  reader may not see (or only coarsened, by an agreement) is never used.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from protocol.errors import ErrorCode, ProtocolError
from server.domain.incident import IncidentState, Sight
from server.domain.model import Principal, Role
from server.domain.presence_view import visible_online
from server.domain.sharing import Label
from server.domain.suggest import Candidate, rank
from server.storage.directory import Directory

#: Roles that take tasks (bots and auditors do not; admins run the deployment).
ASSIGNABLE = frozenset({Role.RESPONDER, Role.DISPATCHER, Role.SUPERVISOR})


def _eligible_orgs(
    state: IncidentState, who: Principal, sight: Sight, task: int | None
) -> tuple[list[str], frozenset[str] | None]:
    """The organisations a task may go to, and (RED) the only people it may go to."""
    orgs = list(state.orgs)
    named: frozenset[str] | None = None
    if task is not None:
        t = state.tasks.get(task)
        if t is None or not sight.of(t.meta).visible:
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such task")
        if t.visibility is not None:
            orgs = [o for o in orgs if o in t.visibility]
        if t.meta.label is Label.RED:
            named = frozenset((*t.meta.recipients, t.created_by))
    lead = state.lead_org or (state.orgs[0] if state.orgs else None)
    if who.org_id != lead:
        orgs = [o for o in orgs if o == who.org_id]
    return orgs, named


def candidates(
    state: IncidentState,
    who: Principal,
    sight: Sight,
    directory: Directory,
    online: Iterable[str],
    task: int | None,
) -> list[Candidate]:
    orgs, named = _eligible_orgs(state, who, sight, task)
    shown_online = set(visible_online(state, who.org_id, online, directory))
    responders = {
        wire["user"]: wire for r in state.responders.values() if (wire := r.to_wire(sight))
    }
    liaisons = set(state.liaisons.values())
    out: list[Candidate] = []
    for org_id in orgs:
        org = directory.org(org_id)
        if org is None:
            continue
        if named is None:
            members_online = any(
                (p := directory.user(u)) is not None and p.org_id == org_id for u in shown_online
            )
            out.append(
                Candidate(
                    "org", org.id, org.id, org.name, frozenset(org.tags), None, members_online
                )
            )
        for user in directory.users.values():
            if (
                user.org_id != org_id
                or user.disabled
                or user.deleted
                or user.role not in ASSIGNABLE
            ):
                continue
            if named is not None and user.id not in named:
                continue
            seen: dict[str, Any] | None = responders.get(user.id)
            if org_id != who.org_id and user.id not in liaisons and seen is None:
                continue  # another organisation's staff: not the reader's to list
            position = (seen or {}).get("position")
            out.append(
                Candidate(
                    "user",
                    user.id,
                    org_id,
                    user.name,
                    frozenset((*user.tags, *org.tags)),
                    (seen or {}).get("status"),
                    user.id in shown_online,
                    (position["lat"], position["lon"]) if position else None,
                )
            )
    return out


def suggest(
    state: IncidentState,
    who: Principal,
    sight: Sight,
    directory: Directory,
    online: Iterable[str],
    task: int | None,
    needs: tuple[str, ...] | None,
    limit: int,
) -> dict[str, Any]:
    wanted = list(needs) if needs is not None else list(state.needs)
    loc = state.location
    at = (float(loc["lat"]), float(loc["lon"])) if loc else None
    ranked = rank(candidates(state, who, sight, directory, online, task), wanted, at, limit)
    return {
        "incident": state.id,
        "task": task,
        "needs": wanted,
        "suggestions": [s.to_wire() for s in ranked],
    }
