"""IncidentState: the projection of one incident's log.

The log is the truth; this is derived by ``apply``-ing events in seq order.
``apply`` is deterministic and tolerant: an event that a concurrent writer got
past validation (say a second ``task.accepted``) still projects the same way on
every node. ``view`` renders the state for one organisation, without anything
that organisation may not see.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from server.domain.audience import (
    WHOLE,
    Audience,
    EventMeta,
    Reader,
    SharingContext,
    audience,
    event_meta,
    redact_position,
    redact_subject,
    updated_orgs,
)
from server.domain.events import StoredEvent
from server.domain.modes import mode_of
from server.domain.review import Reviews, ReviewState, apply_action_done, apply_review
from server.domain.sharing import UNLABELLED, AgreementsView, Label

TASK_TERMINAL = frozenset({"completed", "cancelled"})


@dataclass(frozen=True, slots=True)
class Sight:
    """One reader's view of a state: the audience rules with what they need.

    Every item of a view is shown through ``of`` (server/domain/audience.py),
    the same function live fan-out and the timeline use.
    """

    reader: Reader | None
    ctx: SharingContext
    rules: AgreementsView
    now_ms: int

    def of(self, meta: EventMeta) -> Audience:
        return audience(meta, self.reader, self.ctx, self.rules, self.now_ms)


class MessageState(msgspec.Struct, gc=False):
    """One message of a projection, with what later events did to it.

    A cached projection keeps up to ``LIAISON_PROJECTION_MESSAGES`` of these
    per incident, so a node holds hundreds of thousands. As dataclasses they
    (with their meta, mentions and lists) were six objects each for the cyclic
    garbage collector to walk, and its passes over them held the GIL for up to
    140 ms under workload C. A msgspec Struct with ``gc=False`` is walked by no
    pass: what it holds (strings, numbers, tuples, its EventMeta, dicts of
    those) cannot refer back to it, so it cannot be part of a cycle, and
    reference counting frees it as before. Mentions are tuples and escalations
    a tuple, replaced when one is added, for the same reason: an empty tuple
    or a tuple of strings is not tracked, an empty list is.
    """

    seq: int
    author_user: str
    author_org: str
    author_name: str
    text: str
    ts_ms: int
    visibility: tuple[str, ...] | None
    urgent: bool
    reply_to: int | None
    mention_users: tuple[str, ...]
    mention_orgs: tuple[str, ...]
    meta: EventMeta
    edited_seq: int | None = None
    retracted: bool = False
    acks: dict[str, int] = {}
    #: org -> ts of its first acknowledgement (what the deadline rule asks).
    acked_orgs: dict[str, int] = {}
    #: state ("delivered", "seen") -> user -> ts of their receipt.
    receipts: dict[str, dict[str, int]] = {}
    #: The escalations stored about it, oldest first (SPEC "Deadlines").
    escalations: tuple[dict[str, Any], ...] = ()
    #: When its author wrote it (client clock, ms), if the post said (SPEC 8.0).
    written_at: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "written_at": self.written_at,
            "tlp": self.meta.label.value,
            "recipients": list(self.meta.recipients),
            "author": {"user": self.author_user, "org": self.author_org, "name": self.author_name},
            "text": None if self.retracted else self.text,
            "ts": self.ts_ms,
            "visibility": list(self.visibility) if self.visibility is not None else None,
            "urgent": self.urgent,
            "reply_to": self.reply_to,
            "mentions": {"users": list(self.mention_users), "orgs": list(self.mention_orgs)},
            "edited_seq": self.edited_seq,
            "retracted": self.retracted,
            "acks": self.acks,
            "receipts": self.receipts,
            "escalations": list(self.escalations),
        }


@dataclass(slots=True)
class TaskState:
    id: int
    title: str
    details: str | None
    created_by: str
    visibility: tuple[str, ...] | None
    meta: EventMeta
    subject: dict[str, Any] | None = None
    status: str = "open"
    assignee_org: str | None = None
    assignee_user: str | None = None
    note: str | None = None
    updated_seq: int = 0
    updated_ms: int = 0
    #: When it is due to be completed (ms), if it was given a due time.
    due_ms: int | None = None
    #: When it was last assigned (ms): its acknowledgement deadline runs from then.
    assigned_ms: int | None = None
    receipts: dict[str, dict[str, int]] = field(default_factory=dict)
    escalations: tuple[dict[str, Any], ...] = ()

    def to_wire(self, aud: Audience = WHOLE) -> dict[str, Any]:
        subject = self.subject
        return {
            "id": self.id,
            "title": self.title,
            "details": self.details,
            "tlp": self.meta.label.value,
            "recipients": list(self.meta.recipients),
            "subject": redact_subject(subject, aud.hidden) if subject else None,
            "created_by": self.created_by,
            "visibility": list(self.visibility) if self.visibility is not None else None,
            "status": self.status,
            "assignee": {"org": self.assignee_org, "user": self.assignee_user},
            "note": self.note,
            "updated_seq": self.updated_seq,
            "updated": self.updated_ms,
            "due": self.due_ms,
            "receipts": self.receipts,
            "escalations": list(self.escalations),
        }


@dataclass(frozen=True, slots=True)
class Stamped:
    """A value set by an event, with that event's seq, time and sharing facts."""

    value: Any
    seq: int
    ms: int
    meta: EventMeta


def _latest_for(values: dict[Any, Stamped], sight: Sight) -> tuple[Stamped, Audience] | None:
    """The latest value the reader may see: never one set by an event it may not see.

    Latest by seq, not by time: events stored in one batch share a millisecond.
    """
    best: tuple[Stamped, Audience] | None = None
    for v in values.values():
        aud = sight.of(v.meta)
        if aud.visible and (best is None or v.seq > best[0].seq):
            best = (v, aud)
    return best


def _sharing_key(meta: EventMeta) -> tuple[Any, ...]:
    """Values set by events with the same sharing facts replace each other."""
    return (meta.visibility, meta.label, meta.recipients)


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

    def to_wire(self, sight: Sight) -> dict[str, Any] | None:
        status = _latest_for(self.statuses, sight)
        latest = _latest_for(self.positions, sight)
        if status is None and latest is None:
            return None
        position = latest[0] if latest else None
        age = None if position is None else max(0, sight.now_ms - position.ms) // 1000
        return {
            "user": self.user,
            "org": self.org,
            "name": self.name,
            "status": status[0].value if status else None,
            "status_ts": status[0].ms if status else None,
            "position": redact_position(latest[0].value, latest[1]) if latest else None,
            "position_ts": position.ms if position else None,
            "position_age_s": age,
        }


#: Check-in states: ``alarm`` ones (missed, duress) show until resolved.
CHECKIN_ALARMS = frozenset({"missed", "duress"})


@dataclass(slots=True)
class CheckinState:
    """One lone worker's check-in, from its ``checkin.started`` (or a duress
    raised without a timer) until it ends or is resolved.

    Every event about it has the sharing of the one that began it (a
    follow-up), so ``meta`` decides who sees it; positions are shown through
    the audience of the event that carried them (an agreement may coarsen).
    """

    id: int
    user: str
    org: str
    name: str
    meta: EventMeta
    interval_s: int | None
    #: When the next check-in is due (ms); None without a running timer.
    due_ms: int | None
    status: str = "active"
    started_ms: int = 0
    last_ok_ms: int | None = None
    position: Stamped | None = None
    #: The alarm (a ``checkin.missed`` or ``checkin.duress``): seq, type, ts.
    alarm: dict[str, Any] | None = None
    resolved: dict[str, Any] | None = None
    updated_seq: int = 0

    @property
    def open(self) -> bool:
        """Running or alarming: a worker has at most one open check-in."""
        return self.status == "active" or self.status in CHECKIN_ALARMS

    def to_wire(self, sight: Sight) -> dict[str, Any]:
        position = None
        if self.position is not None:
            aud = sight.of(self.position.meta)
            position = redact_position(self.position.value, aud) if aud.visible else None
        return {
            "id": self.id,
            "user": self.user,
            "org": self.org,
            "name": self.name,
            "tlp": self.meta.label.value,
            "visibility": list(self.meta.visibility) if self.meta.visibility else None,
            "status": self.status,
            "interval_s": self.interval_s,
            "due": self.due_ms,
            "started": self.started_ms,
            "last_ok": self.last_ok_ms,
            "position": position,
            "position_ts": self.position.ms if self.position is not None else None,
            "alarm": self.alarm,
            "resolved": self.resolved,
            "updated_seq": self.updated_seq,
        }


@dataclass(slots=True)
class CapacityRequestState:
    """A request for an organisation's capacity (SPEC 27.3), and its answer."""

    seq: int
    org: str
    items: dict[str, Any]
    note: str | None
    by: str
    ts_ms: int
    meta: EventMeta
    status: str = "requested"
    answer: dict[str, Any] | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "org": self.org,
            "items": self.items,
            "note": self.note,
            "by": self.by,
            "ts": self.ts_ms,
            "tlp": self.meta.label.value,
            "visibility": list(self.meta.visibility) if self.meta.visibility else None,
            "status": self.status,
            "answer": self.answer,
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
    #: The CAD number (or another system's id) for it, if one was given.
    external_ref: str | None = None
    location: dict[str, Any] | None = None
    status: str = "reported"
    status_history: list[dict[str, Any]] = field(default_factory=list)
    orgs: list[str] = field(default_factory=list)
    lead_org: str | None = None
    liaisons: dict[str, str] = field(default_factory=dict)
    #: The incident's own TLP label (events default to at least this).
    label: Label = UNLABELLED
    #: org -> seq of the event that made it a participant.
    joined: dict[str, int] = field(default_factory=dict)
    #: The person the incident is about, and the event that last set it.
    subject: Stamped | None = None
    #: The system that raised it (``incident.created``'s ``source``), if any.
    source: dict[str, Any] | None = None
    #: ``actual``, ``exercise`` or ``test`` (SPEC 28): set at creation, never changed.
    mode: str = "actual"
    created_by: str = ""
    created_ms: int = 0
    #: ts of the last event of any visibility: only for unrestricted readers.
    updated_ms: int = 0
    #: ts of the last event every participant sees.
    public_ms: int = 0
    #: Per organisation, ts of the last restricted event it sees. What a reader
    #: is told as ``updated`` is the later of this and ``public_ms``: a
    #: police-only event must not move the time an NGO sees (SPEC section 18).
    #: RED events move neither, and a follow-up hidden from a newcomer does
    #: not move its time (audience.updated_orgs; summary.last_seen the same).
    restricted_ms: dict[str, int] = field(default_factory=dict)
    messages: dict[int, MessageState] = field(default_factory=dict)
    tasks: dict[int, TaskState] = field(default_factory=dict)
    responders: dict[str, ResponderState] = field(default_factory=dict)
    #: Post-incident reviews (review.py): every submitted one, and action marks.
    reviews: Reviews = field(default_factory=Reviews)
    checkins: dict[int, CheckinState] = field(default_factory=dict)
    #: user -> id of their open check-in.
    open_checkins: dict[str, int] = field(default_factory=dict)
    #: Expertise tags the incident needs (SPEC 27.1), as last set.
    needs: list[str] = field(default_factory=list)
    #: Capacity requests to organisations (SPEC 27.3), by the request's seq.
    capacity_requests: dict[int, CapacityRequestState] = field(default_factory=dict)
    #: The highest seq of a message ``trim_messages`` dropped (0: ``messages``
    #: is whole). A reader that needs one of those folds the log instead.
    trimmed_upto: int = 0

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
        orgs = updated_orgs(ev, self.joined)
        if orgs is None:
            self.public_ms = ev.ts_ms
        else:
            for org in orgs:
                self.restricted_ms[org] = ev.ts_ms

    # ---------------------------------------------------------------- bounding

    def trim_messages(self, keep: int, kept: Callable[[IncidentState, MessageState], bool]) -> None:
        """Drop the oldest messages until ``keep`` are left, never ``kept`` ones.

        A cached projection would otherwise hold every message ever posted
        (services/projections.py). The dropped ones stay in the log, which
        answers for them (``lacks_message``); ``kept`` ones are what the live
        rules still need without I/O (an urgent message awaiting its ack).
        """
        excess = len(self.messages) - keep
        if excess <= 0:
            return
        victims: list[int] = []
        for seq, msg in self.messages.items():  # seq order: posts are applied in order
            if not kept(self, msg):
                victims.append(seq)
                if len(victims) == excess:
                    break
        for seq in victims:
            del self.messages[seq]
        if victims:
            self.trimmed_upto = max(self.trimmed_upto, victims[-1])

    def lacks_message(self, seq: int) -> bool:
        """Whether message ``seq`` may be in the log but was trimmed from ``messages``."""
        return seq <= self.trimmed_upto and seq not in self.messages

    # ------------------------------------------------------------------- view

    def updated_for(self, org: str | None) -> int:
        """The ts of the last event ``org`` may see (None: of any event, for exports)."""
        if org is None:
            return self.updated_ms
        return max(self.public_ms, self.restricted_ms.get(org, 0))

    def sharing(self) -> SharingContext:
        return SharingContext(category=self.category, joined=self.joined)

    def sight(self, reader: Reader | None, rules: AgreementsView, now_ms: int) -> Sight:
        return Sight(reader, self.sharing(), rules, now_ms)

    def summary(self, org: str | None = None) -> dict[str, Any]:
        """The incident summary (SPEC section 18) as ``org`` may see it."""
        return {
            "id": self.id,
            "epoch": self.epoch,
            "seq": self.seq,
            "title": self.title,
            "external_ref": self.external_ref,
            "category": self.category,
            "priority": self.priority,
            "status": self.status,
            "location": self.location,
            "orgs": self.orgs,
            "lead_org": self.lead_org,
            "liaisons": self.liaisons,
            "tlp": self.label.value,
            "created_by": self.created_by,
            "created": self.created_ms,
            "updated": self.updated_for(org),
            "mode": self.mode,
        }

    def view(self, sight: Sight) -> dict[str, Any]:
        """The whole state as ``sight``'s reader may see it (reader None: exports)."""
        org = sight.reader.org if sight.reader is not None else None
        out = self.summary(org)
        out["description"] = self.description
        out["needs"] = self.needs
        out["source"] = self.source
        subject = self.subject
        out["subject"] = (
            redact_subject(subject.value, sight.of(subject.meta).hidden) if subject else None
        )
        out["status_history"] = self.status_history
        out["messages"] = [m.to_wire() for m in self.messages.values() if sight.of(m.meta).visible]
        out["tasks"] = [
            t.to_wire(aud) for t in self.tasks.values() if (aud := sight.of(t.meta)).visible
        ]
        out["responders"] = [
            wire for r in self.responders.values() if (wire := r.to_wire(sight)) is not None
        ]
        out["reviews"], out["open_actions"] = self.reviews.to_wire(sight.of, sight.now_ms)
        out["checkins"] = [
            c.to_wire(sight)
            for c in self.checkins.values()
            if (c.open or c.alarm is not None) and sight.of(c.meta).visible
        ]
        out["capacity_requests"] = [
            r.to_wire() for r in self.capacity_requests.values() if sight.of(r.meta).visible
        ]
        return out

    def review_at(self, seq: int) -> ReviewState:
        return self.reviews.by_seq[seq]


# ---------------------------------------------------------------- projections


def _created(s: IncidentState, ev: StoredEvent) -> None:
    b = ev.body
    s.title, s.category, s.priority = b["title"], b["category"], b["priority"]
    s.description, s.location = b.get("description"), b.get("location")
    s.external_ref = b.get("external_ref")
    s.orgs = list(b["orgs"])
    s.lead_org, s.liaisons = b.get("lead_org"), dict(b.get("liaisons") or {})
    s.created_by, s.created_ms = ev.actor_user, ev.ts_ms
    s.source = b.get("source")
    s.mode = mode_of(b)
    s.label = _label(b, UNLABELLED)
    s.joined = dict.fromkeys(s.orgs, ev.seq)
    _set_subject(s, ev)
    s.status = b.get("status", "reported")
    s.needs = list(b.get("needs") or ())
    s.status_history = [{"status": s.status, "by": ev.actor_user, "ts": ev.ts_ms, "seq": ev.seq}]


def _updated(s: IncidentState, ev: StoredEvent) -> None:
    b = ev.body
    for key in (
        "title",
        "category",
        "priority",
        "description",
        "location",
        "lead_org",
        "external_ref",
    ):
        if b.get(key) is not None:
            setattr(s, key, b[key])
    for org in b.get("add_orgs") or ():
        if org not in s.orgs:
            s.orgs.append(org)
            s.joined[org] = ev.seq
    s.liaisons.update(b.get("liaisons") or {})
    if b.get("needs") is not None:
        s.needs = list(b["needs"])
    if b.get("tlp") is not None:
        s.label = _label(b, s.label)
    _set_subject(s, ev)


def _label(body: dict[str, Any], default: Label) -> Label:
    try:
        return Label(body["tlp"]) if body.get("tlp") is not None else default
    except ValueError:
        return default


def _set_subject(s: IncidentState, ev: StoredEvent) -> None:
    subject = ev.body.get("subject")
    if subject:
        s.subject = Stamped(dict(subject), ev.seq, ev.ts_ms, event_meta(ev))


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
    mentions = b.get("mentions") or {}
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
        mention_users=tuple(mentions.get("users") or ()),
        mention_orgs=tuple(mentions.get("orgs") or ()),
        meta=event_meta(ev),
        written_at=b.get("written_at"),
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
        if ev.actor_user != msg.author_user:
            msg.acked_orgs.setdefault(ev.actor_org, ev.ts_ms)


def _followed(s: IncidentState, ev: StoredEvent) -> MessageState | TaskState | None:
    """The message or task a receipt or an escalation is about."""
    if "message" in ev.body:
        return s.messages.get(ev.body["message"])
    return s.tasks.get(ev.body.get("task", 0))


def _receipt(s: IncidentState, ev: StoredEvent) -> None:
    item = _followed(s, ev)
    if item is not None:
        item.receipts.setdefault(ev.body["state"], {}).setdefault(ev.actor_user, ev.ts_ms)


def _escalation(s: IncidentState, ev: StoredEvent) -> None:
    item = _followed(s, ev)
    if item is not None:
        b = ev.body
        item.escalations = (
            *item.escalations,
            {"seq": ev.seq, "type": ev.type, "ts": ev.ts_ms, "due": b["due"], "orgs": b["orgs"]},
        )


def _task_created(s: IncidentState, ev: StoredEvent) -> None:
    b = ev.body
    task = TaskState(
        id=ev.seq,
        title=b["title"],
        details=b.get("details"),
        created_by=ev.actor_user,
        visibility=ev.visibility,
        meta=event_meta(ev),
        subject=dict(b["subject"]) if b.get("subject") else None,
        updated_seq=ev.seq,
        updated_ms=ev.ts_ms,
    )
    assignee = b.get("assignee")
    if assignee:
        task.assignee_org, task.assignee_user = assignee.get("org"), assignee.get("user")
        task.status = "assigned"
        task.assigned_ms = ev.ts_ms
    task.due_ms = b.get("due")
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
        task.assigned_ms = ev.ts_ms
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
    meta = event_meta(ev)
    r.statuses[_sharing_key(meta)] = Stamped(ev.body["status"], ev.seq, ev.ts_ms, meta)
    if ev.body.get("position"):
        r.positions[_sharing_key(meta)] = Stamped(ev.body["position"], ev.seq, ev.ts_ms, meta)


def _responder_position(s: IncidentState, ev: StoredEvent) -> None:
    r = _responder(s, ev)
    meta = event_meta(ev)
    r.positions[_sharing_key(meta)] = Stamped(ev.body["position"], ev.seq, ev.ts_ms, meta)


def _review(s: IncidentState, ev: StoredEvent) -> None:
    apply_review(s.reviews, ev)


def _action_done(s: IncidentState, ev: StoredEvent) -> None:
    apply_action_done(s.reviews, ev)


def _checkin_position(c: CheckinState, ev: StoredEvent) -> None:
    if ev.body.get("position"):
        c.position = Stamped(ev.body["position"], ev.seq, ev.ts_ms, event_meta(ev))


def _checkin_started(s: IncidentState, ev: StoredEvent) -> None:
    b = ev.body
    c = CheckinState(
        id=ev.seq,
        user=ev.actor_user,
        org=ev.actor_org,
        name=ev.actor_name,
        meta=event_meta(ev),
        interval_s=b.get("interval_s"),
        due_ms=b.get("due"),
        started_ms=ev.ts_ms,
        updated_seq=ev.seq,
    )
    _checkin_position(c, ev)
    s.checkins[ev.seq] = c
    s.open_checkins[ev.actor_user] = ev.seq


def _checkin_of(s: IncidentState, ev: StoredEvent) -> CheckinState | None:
    c = s.checkins.get(ev.body.get("checkin", 0))
    if c is not None:
        c.updated_seq = ev.seq
    return c


def _checkin_ok(s: IncidentState, ev: StoredEvent) -> None:
    c = _checkin_of(s, ev)
    if c is not None and c.open and c.status != "duress":
        c.status, c.due_ms, c.last_ok_ms, c.alarm = "active", ev.body.get("due"), ev.ts_ms, None
        _checkin_position(c, ev)


def _checkin_duress(s: IncidentState, ev: StoredEvent) -> None:
    if "checkin" not in ev.body:  # raised without a timer: it begins a check-in
        _checkin_started(s, ev)
    c = s.checkins.get(ev.body.get("checkin", ev.seq))
    if c is not None:
        c.status, c.due_ms, c.updated_seq = "duress", None, ev.seq
        c.alarm = {"seq": ev.seq, "type": ev.type, "ts": ev.ts_ms}
        _checkin_position(c, ev)


def _checkin_missed(s: IncidentState, ev: StoredEvent) -> None:
    c = _checkin_of(s, ev)
    if c is not None and c.status == "active" and c.due_ms == ev.body.get("due"):
        c.status, c.due_ms = "missed", None
        c.alarm = {"seq": ev.seq, "type": ev.type, "ts": ev.ts_ms, "due": ev.body.get("due")}


def _checkin_closed(s: IncidentState, ev: StoredEvent) -> None:
    c = _checkin_of(s, ev)
    if c is None or not c.open:
        return
    c.due_ms = None
    if ev.type == "checkin.resolved":
        c.status = "resolved"
        c.resolved = {"by": ev.actor_user, "ts": ev.ts_ms, "note": ev.body.get("note")}
    else:
        c.status = "ended"
    if s.open_checkins.get(c.user) == c.id:
        del s.open_checkins[c.user]


def _capacity_requested(s: IncidentState, ev: StoredEvent) -> None:
    b = ev.body
    s.capacity_requests[ev.seq] = CapacityRequestState(
        seq=ev.seq,
        org=b["org"],
        items=dict(b.get("items") or {}),
        note=b.get("note"),
        by=ev.actor_user,
        ts_ms=ev.ts_ms,
        meta=event_meta(ev),
    )


def _capacity_answered(s: IncidentState, ev: StoredEvent) -> None:
    """The first answer counts (a concurrent second one projects the same everywhere)."""
    r = s.capacity_requests.get(ev.body["request"])
    if r is None or r.status != "requested":
        return
    r.status = "accepted" if ev.type == "capacity.accepted" else "declined"
    r.answer = {"by": ev.actor_user, "ts": ev.ts_ms, "seq": ev.seq, "note": ev.body.get("note")}


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
    "review.submit": _review,
    "review.action_done": _action_done,
    "receipt.recorded": _receipt,
    "escalation.unacknowledged": _escalation,
    "escalation.overdue": _escalation,
    "checkin.started": _checkin_started,
    "checkin.ok": _checkin_ok,
    "checkin.ended": _checkin_closed,
    "checkin.duress": _checkin_duress,
    "checkin.missed": _checkin_missed,
    "checkin.resolved": _checkin_closed,
    "capacity.requested": _capacity_requested,
    "capacity.accepted": _capacity_answered,
    "capacity.declined": _capacity_answered,
}
