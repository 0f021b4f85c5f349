"""IncidentState: the projection of one incident's log.

The log is the truth; this is derived by ``apply``-ing events in seq order.
``apply`` is deterministic and tolerant: an event that a concurrent writer got
past validation (say a second ``task.accepted``) still projects the same way on
every node. ``view`` renders the state for one organisation, without anything
that organisation may not see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from server.domain.events import StoredEvent

TASK_TERMINAL = frozenset({"completed", "cancelled"})


def _visible(visibility: tuple[str, ...] | None, org: str | None) -> bool:
    return org is None or visibility is None or org in visibility


@dataclass(slots=True)
class MessageState:
    seq: int
    author_user: str
    author_org: str
    author_name: str
    text: str
    ts_ms: int
    visibility: tuple[str, ...] | None
    urgent: bool
    reply_to: int | None
    mentions: dict[str, list[str]]
    edited_seq: int | None = None
    retracted: bool = False
    acks: dict[str, int] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "author": {"user": self.author_user, "org": self.author_org, "name": self.author_name},
            "text": None if self.retracted else self.text,
            "ts": self.ts_ms,
            "visibility": list(self.visibility) if self.visibility is not None else None,
            "urgent": self.urgent,
            "reply_to": self.reply_to,
            "mentions": self.mentions,
            "edited_seq": self.edited_seq,
            "retracted": self.retracted,
            "acks": self.acks,
        }


@dataclass(slots=True)
class TaskState:
    id: int
    title: str
    details: str | None
    created_by: str
    visibility: tuple[str, ...] | None
    status: str = "open"
    assignee_org: str | None = None
    assignee_user: str | None = None
    note: str | None = None
    updated_seq: int = 0
    updated_ms: int = 0

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "details": self.details,
            "created_by": self.created_by,
            "visibility": list(self.visibility) if self.visibility is not None else None,
            "status": self.status,
            "assignee": {"org": self.assignee_org, "user": self.assignee_user},
            "note": self.note,
            "updated_seq": self.updated_seq,
            "updated": self.updated_ms,
        }


@dataclass(frozen=True, slots=True)
class Stamped:
    """A value set by an event, with that event's seq, time and visibility."""

    value: Any
    seq: int
    ms: int
    visibility: tuple[str, ...] | None


def _latest_for(values: dict[Any, Stamped], org: str | None) -> Stamped | None:
    """The latest value ``org`` may see: never one set by an event it may not see.

    Latest by seq, not by time: events stored in one batch share a millisecond.
    """
    visible = [v for v in values.values() if _visible(v.visibility, org)]
    return max(visible, key=lambda v: v.seq) if visible else None


@dataclass(slots=True)
class ResponderState:
    """A responder's status and position, kept per visibility of the events that
    set them: a police-only position must not show through a later public
    status update."""

    user: str
    org: str
    name: str
    statuses: dict[Any, Stamped] = field(default_factory=dict)
    positions: dict[Any, Stamped] = field(default_factory=dict)

    def to_wire(self, now_ms: int, org: str | None) -> dict[str, Any] | None:
        status = _latest_for(self.statuses, org)
        position = _latest_for(self.positions, org)
        if status is None and position is None:
            return None
        age = None if position is None else max(0, now_ms - position.ms) // 1000
        return {
            "user": self.user,
            "org": self.org,
            "name": self.name,
            "status": status.value if status else None,
            "status_ts": status.ms if status else None,
            "position": position.value if position else None,
            "position_ts": position.ms if position else None,
            "position_age_s": age,
        }


@dataclass(slots=True)
class IncidentState:
    id: str
    epoch: str
    seq: int = 0
    title: str = ""
    category: str = ""
    priority: str = "normal"
    description: str | None = None
    location: dict[str, Any] | None = None
    status: str = "reported"
    status_history: list[dict[str, Any]] = field(default_factory=list)
    orgs: list[str] = field(default_factory=list)
    lead_org: str | None = None
    liaisons: dict[str, str] = field(default_factory=dict)
    created_by: str = ""
    created_ms: int = 0
    #: ts of the last event of any visibility: only for unrestricted readers.
    updated_ms: int = 0
    #: ts of the last event every participant sees.
    public_ms: int = 0
    #: Per organisation, ts of the last restricted event it sees. What a reader
    #: is told as ``updated`` is the later of this and ``public_ms``: a
    #: police-only event must not move the time an NGO sees (SPEC section 18).
    restricted_ms: dict[str, int] = field(default_factory=dict)
    messages: dict[int, MessageState] = field(default_factory=dict)
    tasks: dict[int, TaskState] = field(default_factory=dict)
    responders: dict[str, ResponderState] = field(default_factory=dict)

    def participates(self, org: str) -> bool:
        return org in self.orgs

    # ------------------------------------------------------------------ apply

    def apply(self, ev: StoredEvent) -> None:
        """Project one event; events must arrive in seq order."""
        handler = _APPLY.get(ev.type)
        if handler is not None:
            handler(self, ev)
        self.seq = ev.seq
        self.updated_ms = ev.ts_ms
        if ev.visibility is None:
            self.public_ms = ev.ts_ms
        else:
            for org in ev.visibility:
                self.restricted_ms[org] = ev.ts_ms

    # ------------------------------------------------------------------- view

    def updated_for(self, org: str | None) -> int:
        """The ts of the last event ``org`` may see (None: of any event, for exports)."""
        if org is None:
            return self.updated_ms
        return max(self.public_ms, self.restricted_ms.get(org, 0))

    def summary(self, org: str | None = None) -> dict[str, Any]:
        """The incident summary (SPEC section 18) as ``org`` may see it."""
        return {
            "id": self.id,
            "epoch": self.epoch,
            "seq": self.seq,
            "title": self.title,
            "category": self.category,
            "priority": self.priority,
            "status": self.status,
            "location": self.location,
            "orgs": self.orgs,
            "lead_org": self.lead_org,
            "liaisons": self.liaisons,
            "created_by": self.created_by,
            "created": self.created_ms,
            "updated": self.updated_for(org),
        }

    def view(self, org: str | None, now_ms: int) -> dict[str, Any]:
        """The whole state as ``org`` may see it (None: unrestricted, for exports)."""
        out = self.summary(org)
        out["description"] = self.description
        out["status_history"] = self.status_history
        out["messages"] = [
            m.to_wire() for m in self.messages.values() if _visible(m.visibility, org)
        ]
        out["tasks"] = [t.to_wire() for t in self.tasks.values() if _visible(t.visibility, org)]
        out["responders"] = [
            wire for r in self.responders.values() if (wire := r.to_wire(now_ms, org)) is not None
        ]
        return out


# ---------------------------------------------------------------- projections


def _created(s: IncidentState, ev: StoredEvent) -> None:
    b = ev.body
    s.title, s.category, s.priority = b["title"], b["category"], b["priority"]
    s.description, s.location = b.get("description"), b.get("location")
    s.orgs = list(b["orgs"])
    s.lead_org, s.liaisons = b.get("lead_org"), dict(b.get("liaisons") or {})
    s.created_by, s.created_ms = ev.actor_user, ev.ts_ms
    s.status = b.get("status", "reported")
    s.status_history = [{"status": s.status, "by": ev.actor_user, "ts": ev.ts_ms, "seq": ev.seq}]


def _updated(s: IncidentState, ev: StoredEvent) -> None:
    b = ev.body
    for key in ("title", "category", "priority", "description", "location", "lead_org"):
        if b.get(key) is not None:
            setattr(s, key, b[key])
    for org in b.get("add_orgs") or ():
        if org not in s.orgs:
            s.orgs.append(org)
    s.liaisons.update(b.get("liaisons") or {})


def _status(s: IncidentState, ev: StoredEvent) -> None:
    s.status = ev.body["status"]
    s.status_history.append(
        {
            "status": s.status,
            "by": ev.actor_user,
            "ts": ev.ts_ms,
            "seq": ev.seq,
            "note": ev.body.get("note"),
        }
    )


def _posted(s: IncidentState, ev: StoredEvent) -> None:
    b = ev.body
    s.messages[ev.seq] = MessageState(
        seq=ev.seq,
        author_user=ev.actor_user,
        author_org=ev.actor_org,
        author_name=ev.actor_name,
        text=b["text"],
        ts_ms=ev.ts_ms,
        visibility=ev.visibility,
        urgent=bool(b.get("urgent")),
        reply_to=b.get("reply_to"),
        mentions=b.get("mentions") or {"users": [], "orgs": []},
    )


def _edited(s: IncidentState, ev: StoredEvent) -> None:
    msg = s.messages.get(ev.body["message"])
    if msg is not None and not msg.retracted:
        msg.text, msg.edited_seq = ev.body["text"], ev.seq


def _retracted(s: IncidentState, ev: StoredEvent) -> None:
    msg = s.messages.get(ev.body["message"])
    if msg is not None:
        msg.retracted = True


def _acknowledged(s: IncidentState, ev: StoredEvent) -> None:
    msg = s.messages.get(ev.body["message"])
    if msg is not None:
        msg.acks.setdefault(ev.actor_user, ev.ts_ms)


def _task_created(s: IncidentState, ev: StoredEvent) -> None:
    b = ev.body
    task = TaskState(
        id=ev.seq,
        title=b["title"],
        details=b.get("details"),
        created_by=ev.actor_user,
        visibility=ev.visibility,
        updated_seq=ev.seq,
        updated_ms=ev.ts_ms,
    )
    assignee = b.get("assignee")
    if assignee:
        task.assignee_org, task.assignee_user = assignee.get("org"), assignee.get("user")
        task.status = "assigned"
    s.tasks[ev.seq] = task


#: The task status each transition event leads to.
TASK_STATUS_AFTER = {
    "task.assigned": "assigned",
    "task.accepted": "accepted",
    "task.declined": "declined",
    "task.started": "in_progress",
    "task.completed": "completed",
    "task.cancelled": "cancelled",
}


def _task_transition(s: IncidentState, ev: StoredEvent) -> None:
    task = s.tasks.get(ev.body["task"])
    if task is None or task.status in TASK_TERMINAL:
        return
    task.status = TASK_STATUS_AFTER[ev.type]
    if ev.type == "task.assigned":
        task.assignee_org = ev.body["assignee"].get("org")
        task.assignee_user = ev.body["assignee"].get("user")
    if ev.body.get("note") is not None:
        task.note = ev.body["note"]
    task.updated_seq, task.updated_ms = ev.seq, ev.ts_ms


def _responder(s: IncidentState, ev: StoredEvent) -> ResponderState:
    r = s.responders.get(ev.actor_user)
    if r is None:
        r = s.responders[ev.actor_user] = ResponderState(
            user=ev.actor_user, org=ev.actor_org, name=ev.actor_name
        )
    return r


def _responder_status(s: IncidentState, ev: StoredEvent) -> None:
    r = _responder(s, ev)
    r.statuses[ev.visibility] = Stamped(ev.body["status"], ev.seq, ev.ts_ms, ev.visibility)
    if ev.body.get("position"):
        r.positions[ev.visibility] = Stamped(ev.body["position"], ev.seq, ev.ts_ms, ev.visibility)


def _responder_position(s: IncidentState, ev: StoredEvent) -> None:
    r = _responder(s, ev)
    r.positions[ev.visibility] = Stamped(ev.body["position"], ev.seq, ev.ts_ms, ev.visibility)


_APPLY = {
    "incident.created": _created,
    "incident.updated": _updated,
    "incident.status_changed": _status,
    "message.posted": _posted,
    "message.edited": _edited,
    "message.retracted": _retracted,
    "message.acknowledged": _acknowledged,
    "task.created": _task_created,
    **{kind: _task_transition for kind in TASK_STATUS_AFTER},
    "responder.status": _responder_status,
    "responder.position": _responder_position,
}
