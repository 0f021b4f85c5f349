"""The deadline rules: which deadlines an incident's state holds, and what firing one appends.

Pure: a state (the projection of the log) and a configuration in, deadlines
and event drafts out. Nothing here keeps time; the runner
(server/services/deadlines.py) keeps a due-time index built from these and
fires what is due (DESIGN.md, "Time, escalations and background work").

Rules (SPEC "Deadlines and escalations")::

    urgent message, an addressed org has not acknowledged by ts + ack_s
        -> escalation.unacknowledged {message, due, orgs, notify}
    task assigned, not accepted by assigned + task_ack_s
        -> escalation.unacknowledged {task, due, orgs, notify}
    task with a due time, not completed or cancelled by then
        -> escalation.overdue {task, due, orgs, notify}
    check-in timer running, no checkin.ok by its due time
        -> checkin.missed {checkin, user, due, position, notify}

A deadline is named by (rule, subject, due): the fired event's client id is
made of them, so a double fire (two nodes, a restart between the append and
the index update) is stored once: the log answers the second as a duplicate.
Once an escalation is in the log the state shows it, and the deadline is
gone from what ``pending`` returns.

Sharing: a fired event is a follow-up of its subject: it has the subject's
visibility, label and (for RED) readers, and it names the subject by seq
only, never quoting it. Whoever may not see the subject gets a placeholder
for its escalation (server/domain/audience.py), whatever ``notify`` says.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from server.domain.audience import EventMeta
from server.domain.directory import DirectoryView
from server.domain.events import EventDraft
from server.domain.incident import TASK_TERMINAL, CheckinState, IncidentState, MessageState
from server.domain.modes import stamped
from server.domain.sharing import Label

#: Who fired events name as their actor: the same on every node, so the
#: log's idempotency (actor, client id) catches a double fire.
SYSTEM_ACTOR = "system:deadlines"
SYSTEM_NAME = "Deadline"

UNACKNOWLEDGED = "escalation.unacknowledged"
OVERDUE = "escalation.overdue"
MISSED = "checkin.missed"


@dataclass(frozen=True, slots=True)
class DeadlineConfig:
    """How long people have. Seconds; tests use short ones."""

    #: An urgent message's addressees have this long to acknowledge it.
    urgent_ack_s: float = 300.0
    #: An assigned task's assignee has this long to accept it.
    task_ack_s: float = 600.0


@dataclass(frozen=True, slots=True, order=True)
class Deadline:
    """One due time of one subject of one incident (sortable by due time)."""

    due_ms: int
    incident: str
    #: "ack" (urgent message), "task_ack", "task_due" or "checkin".
    rule: str
    #: The message seq, task id or check-in id.
    subject: int

    @property
    def client_id(self) -> str:
        """Deterministic: the same on every node and after every restart."""
        return f"dl-{self.rule}-{self.incident}-{self.subject}-{self.due_ms}"


def pending(
    state: IncidentState, config: DeadlineConfig, directory: DirectoryView
) -> list[Deadline]:
    """Every deadline the state still holds (fired or met ones are gone)."""
    if state.status == "closed":
        return []
    out: list[Deadline] = []
    for msg in state.messages.values():
        if not msg.urgent:  # most are not: no call for them (this runs on every new head)
            continue
        due = ack_due(state, msg, config, directory)
        if due is not None:
            out.append(Deadline(due, state.id, "ack", msg.seq))
    for task in state.tasks.values():
        if task.status in TASK_TERMINAL:
            continue
        if task.status == "assigned" and task.assigned_ms is not None:
            due = task.assigned_ms + int(config.task_ack_s * 1000)
            if not _fired(task.escalations, UNACKNOWLEDGED, due):
                out.append(Deadline(due, state.id, "task_ack", task.id))
        if task.due_ms is not None and not _fired(task.escalations, OVERDUE, task.due_ms):
            out.append(Deadline(task.due_ms, state.id, "task_due", task.id))
    for c in state.checkins.values():
        if c.status == "active" and c.due_ms is not None:
            out.append(Deadline(c.due_ms, state.id, "checkin", c.id))
    return out


def ack_due(
    state: IncidentState, msg: MessageState, config: DeadlineConfig, directory: DirectoryView
) -> int | None:
    """When an urgent message's acknowledgement is due, if it still awaits one.

    Whatever the incident's status: a closed incident holds no deadlines, but
    a reopened one has them again, so a projection keeps these messages in
    memory while it trims the rest (IncidentState.trim_messages).
    """
    if not msg.urgent or msg.retracted or not _unacknowledged(state, msg, directory):
        return None
    due = msg.ts_ms + int(config.urgent_ack_s * 1000)
    return None if _fired(msg.escalations, UNACKNOWLEDGED, due) else due


def _unacknowledged(state: IncidentState, msg: MessageState, directory: DirectoryView) -> list[str]:
    return [o for o in addressed_orgs(state, msg, directory) if o not in msg.acked_orgs]


def _fired(escalations: Sequence[dict[str, Any]], kind: str, due: int) -> bool:
    return any(e["type"] == kind and e["due"] == due for e in escalations)


def fire(
    state: IncidentState, deadline: Deadline, directory: DirectoryView, config: DeadlineConfig
) -> EventDraft | None:
    """The event a due deadline appends, or None if it no longer holds (met meanwhile)."""
    if deadline not in pending(state, config, directory):
        return None
    match deadline.rule:
        case "ack":
            msg = state.messages[deadline.subject]
            orgs = _unacknowledged(state, msg, directory)
            body = {"message": msg.seq, "due": deadline.due_ms, "orgs": orgs}
            return _escalation(state, deadline, UNACKNOWLEDGED, msg.meta, body, orgs)
        case "task_ack" | "task_due":
            task = state.tasks[deadline.subject]
            orgs = [task.assignee_org] if task.assignee_org else [task.meta.actor_org]
            kind = UNACKNOWLEDGED if deadline.rule == "task_ack" else OVERDUE
            body = {"task": task.id, "due": deadline.due_ms, "orgs": orgs, "status": task.status}
            return _escalation(state, deadline, kind, task.meta, body, orgs)
        case "checkin":
            return _missed(state, deadline, state.checkins[deadline.subject])
    return None


def addressed_orgs(state: IncidentState, msg: MessageState, directory: DirectoryView) -> list[str]:
    """Whom an urgent message asks: its mentions, else every other org that sees it.

    A RED message asks its recipients' organisations (its author's too, if a
    recipient is a colleague). An organisation has acknowledged once one of
    its people other than the author did.
    """
    named: dict[str, None] = dict.fromkeys(msg.mention_orgs)
    users = list(msg.mention_users)
    if msg.meta.label is Label.RED:
        users += list(msg.meta.recipients)
    for user_id in users:
        user = directory.user(user_id)
        if user is not None:
            named[user.org_id] = None
    if not named:
        seeing = msg.visibility if msg.visibility is not None else state.orgs
        named = dict.fromkeys(org for org in seeing if org != msg.author_org)
    return [org for org in named if state.participates(org)]


def concerned(state: IncidentState, orgs: list[str]) -> dict[str, list[str]]:
    """Who an escalation is for: each org's liaison for the incident (else its
    duty officers: its supervisors, told by ``orgs``) and the dispatcher (the
    incident's creator, and the lead organisation's liaison)."""
    users = [state.liaisons[org] for org in orgs if org in state.liaisons]
    if state.lead_org and state.lead_org in state.liaisons:
        users.append(state.liaisons[state.lead_org])
    if state.created_by:
        users.append(state.created_by)
    notify_orgs = [*orgs, *([state.lead_org] if state.lead_org else [])]
    return {"users": list(dict.fromkeys(users)), "orgs": list(dict.fromkeys(notify_orgs))}


def follow_up_recipients(meta: EventMeta) -> list[str]:
    """A RED subject's readers: its recipients and its author (a fired event
    names the system as its actor, so the author must be among its recipients)."""
    return list(dict.fromkeys((*meta.recipients, meta.actor_user)))


def _sharing_of(meta: EventMeta) -> dict[str, Any]:
    body: dict[str, Any] = {"tlp": meta.label.value}
    if meta.label is Label.RED:
        body["recipients"] = follow_up_recipients(meta)
    return body


def _system_draft(
    state: IncidentState,
    deadline: Deadline,
    kind: str,
    meta: EventMeta,
    body: dict[str, Any],
) -> EventDraft:
    draft = EventDraft(
        incident=state.id,
        type=kind,
        actor_user=SYSTEM_ACTOR,
        # The subject's organisation: the rules then treat the escalation as
        # they treat its subject (rule 5 of audience.py).
        actor_org=meta.actor_org,
        actor_name=SYSTEM_NAME,
        client_id=deadline.client_id,
        visibility=meta.visibility,
        body={**body, **_sharing_of(meta)},
    )
    return stamped(draft, state.mode, None)  # an exercise's escalations are practice too


def _escalation(
    state: IncidentState,
    deadline: Deadline,
    kind: str,
    meta: EventMeta,
    body: dict[str, Any],
    orgs: list[str],
) -> EventDraft:
    body = {**body, "notify": concerned(state, orgs)}
    return _system_draft(state, deadline, kind, meta, body)


def _missed(state: IncidentState, deadline: Deadline, c: CheckinState) -> EventDraft:
    """A missed check-in, with the worker's last known position (from the
    check-in's own events: they share its audience)."""
    position = c.position.value if c.position is not None else None
    body: dict[str, Any] = {
        "checkin": c.id,
        "user": c.user,
        "due": deadline.due_ms,
        "position": position,
        "position_ts": c.position.ms if c.position is not None else None,
        "notify": concerned(state, [c.org]),
    }
    return _system_draft(state, deadline, MISSED, c.meta, body)


def awaits_ack(
    config: DeadlineConfig, directory: DirectoryView
) -> Callable[[IncidentState, MessageState], bool]:
    """What a bounded projection keeps beyond its newest messages: the urgent
    ones whose acknowledgement is still due (``pending`` reads them without I/O)."""
    return lambda state, msg: ack_due(state, msg, config, directory) is not None
