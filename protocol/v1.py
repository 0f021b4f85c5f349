"""Protocol version 1: inbound commands and outbound event types.

Client → server, Socket.IO event ``cmd`` with an ack::

    {"type": "message.post", "id": "c-7f3a", "incident": "inc_x", "text": "On my way"}

``id`` is the client's own id for the action: a retry with the same ``id`` is
answered with the original event and never stored twice. ``parse_command``
turns a decoded frame into one of the frozen classes below; match on them.

Server → client, Socket.IO event ``ev`` carrying a list of envelopes (see
``EVENT_TYPES`` and SPEC.md, "Events").
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, ClassVar

from protocol.capacity import parse_request
from protocol.errors import ErrorCode, ProtocolError
from protocol.external_ref import check_ref
from protocol.fields import Fields
from protocol.limits import LIMITS, Limits

INCIDENT_STATUSES = ("reported", "active", "contained", "resolved", "closed")
PRIORITIES = ("low", "normal", "high", "critical")
RESPONDER_STATUSES = ("available", "en_route", "on_scene", "unavailable")
#: TLP 2.0 labels, least restrictive first (SPEC section 9.4).
TLP_LABELS = ("CLEAR", "GREEN", "AMBER", "AMBER+STRICT", "RED")
#: Labels an incident itself may carry: the stricter two need named readers,
#: which a whole incident (every participant) cannot have.
INCIDENT_LABELS = ("CLEAR", "GREEN", "AMBER")

#: Each write command and the event type it appends.
EVENT_OF_COMMAND = {
    "incident.create": "incident.created",
    "incident.update": "incident.updated",
    "incident.status": "incident.status_changed",
    "message.post": "message.posted",
    "message.edit": "message.edited",
    "message.retract": "message.retracted",
    "message.ack": "message.acknowledged",
    "task.create": "task.created",
    "task.assign": "task.assigned",
    "task.accept": "task.accepted",
    "task.decline": "task.declined",
    "task.start": "task.started",
    "task.complete": "task.completed",
    "task.cancel": "task.cancelled",
    "responder.status": "responder.status",
    "responder.position": "responder.position",
    "review.submit": "review.submit",
    "review.action_done": "review.action_done",
    "receipt.mark": "receipt.recorded",
    "checkin.start": "checkin.started",
    "checkin.ok": "checkin.ok",
    "checkin.end": "checkin.ended",
    "checkin.duress": "checkin.duress",
    "checkin.resolve": "checkin.resolved",
    "capacity.request": "capacity.requested",
    "capacity.accept": "capacity.accepted",
    "capacity.decline": "capacity.declined",
}

#: Events only the server's deadline rules append (SPEC "Deadlines and
#: escalations"): no command produces them. Key performance indicators count
#: the ``escalation.`` and ``checkin.`` prefixes.
SYSTEM_EVENT_TYPES = (
    "escalation.unacknowledged",
    "escalation.overdue",
    "checkin.missed",
)

#: Every event type a log can hold.
EVENT_TYPES = (*EVENT_OF_COMMAND.values(), *SYSTEM_EVENT_TYPES)

#: Receipt states a device or person reports (acknowledged is ``message.ack``,
#: or accepting a task).
RECEIPT_STATES = ("delivered", "seen")
#: Bounds of a lone-worker check-in interval, seconds.
CHECKIN_MIN_S = 1
CHECKIN_MAX_S = 24 * 3600
#: Longest a task may be given to be done, seconds (a week).
TASK_DUE_MAX_S = 7 * 24 * 3600

#: What a client receives instead of an event it may not see.
RESTRICTED_TYPE = "restricted"


@dataclass(frozen=True, slots=True)
class Location:
    lat: float
    lon: float
    address: str | None = None

    @classmethod
    def parse(cls, f: Fields) -> Location:
        return cls(
            lat=f.req_float("lat", -90.0, 90.0),
            lon=f.req_float("lon", -180.0, 180.0),
            address=f.opt_str("address"),
        )

    def to_wire(self) -> dict[str, Any]:
        return {"lat": self.lat, "lon": self.lon, "address": self.address}


@dataclass(frozen=True, slots=True)
class Position:
    lat: float
    lon: float
    accuracy_m: float | None = None

    @classmethod
    def parse(cls, f: Fields) -> Position:
        return cls(
            lat=f.req_float("lat", -90.0, 90.0),
            lon=f.req_float("lon", -180.0, 180.0),
            accuracy_m=f.opt_float("accuracy_m", 0.0, 1e6),
        )

    def to_wire(self) -> dict[str, Any]:
        return {"lat": self.lat, "lon": self.lon, "accuracy_m": self.accuracy_m}


@dataclass(frozen=True, slots=True)
class Subject:
    """The person an incident or task is about: protected fields (SPEC 9.4).

    Each is shown to another organisation only where a sharing agreement
    grants it; otherwise it arrives as the redaction marker.
    """

    name: str | None = None
    dob: str | None = None
    phone: str | None = None
    address: str | None = None

    @classmethod
    def parse(cls, f: Fields) -> Subject:
        dob = f.opt_str("dob", max_chars=10)
        if dob is not None and not _is_iso_date(dob):
            raise ProtocolError(
                ErrorCode.INVALID, "subject.dob: expected YYYY-MM-DD", {"field": "subject.dob"}
            )
        subject = cls(
            name=f.opt_str("name", max_chars=200),
            dob=dob,
            phone=f.opt_str("phone", max_chars=40),
            address=f.opt_str("address", max_chars=500),
        )
        if subject == cls():
            raise ProtocolError(ErrorCode.INVALID, "subject: empty", {"field": "subject"})
        return subject

    def to_wire(self) -> dict[str, Any]:
        return {"name": self.name, "dob": self.dob, "phone": self.phone, "address": self.address}


@dataclass(frozen=True, slots=True)
class Source:
    """Where an incident came from when another system raised it (SPEC section 18).

    Set by integrations (a CAP alert's sender, identifier, sent time and
    status: ``Exercise`` or ``Test`` must not be mistaken for ``Actual``).
    Shared with every participant, like the incident's other header fields.
    """

    format: str
    sender: str
    identifier: str
    sent: str | None = None
    status: str | None = None

    @classmethod
    def parse(cls, f: Fields) -> Source:
        return cls(
            format=f.req_str("format", max_chars=32),
            sender=f.req_str("sender"),
            identifier=f.req_str("identifier"),
            sent=f.opt_str("sent", max_chars=40),
            status=f.opt_str("status", max_chars=32),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "sender": self.sender,
            "identifier": self.identifier,
            "sent": self.sent,
            "status": self.status,
        }


def _is_iso_date(text: str) -> bool:
    try:
        return len(text) == 10 and date.fromisoformat(text).isoformat() == text
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Assignee:
    """A task goes to an organisation, a person, or a person within an organisation."""

    org: str | None = None
    user: str | None = None

    @classmethod
    def parse(cls, f: Fields) -> Assignee:
        org, user = f.opt_ident("org"), f.opt_ident("user")
        if org is None and user is None:
            raise ProtocolError(ErrorCode.INVALID, f"{f.where}: needs org or user")
        return cls(org=org, user=user)

    def to_wire(self) -> dict[str, Any]:
        return {"org": self.org, "user": self.user}


# --------------------------------------------------------------------------- base


@dataclass(frozen=True, slots=True)
class Command:
    """Base of every inbound command."""

    TYPE: ClassVar[str] = ""
    #: Commands that append an event need a client action id.
    WRITES: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class IncidentCommand(Command):
    """A write to one incident's log."""

    id: str
    incident: str
    #: Organisations that may see the resulting event; None = every participant.
    visibility: tuple[str, ...] | None
    #: The event's TLP label; None = the default (SPEC section 9.4). On
    #: ``incident.update``, the incident's own label.
    tlp: str | None
    #: For ``RED`` only: the users who may read it (besides its author).
    recipients: tuple[str, ...] | None


def _incident_base(f: Fields) -> dict[str, Any]:
    return {
        "id": f.ident("id"),
        "incident": f.ident("incident"),
        "visibility": f.str_list("visibility"),
        "tlp": f.choice("tlp", TLP_LABELS, required=False),
        "recipients": f.str_list("recipients"),
    }


def _subject(f: Fields) -> Subject | None:
    sub = f.sub("subject")
    return Subject.parse(sub) if sub else None


# ------------------------------------------------------------------- subscriptions


@dataclass(frozen=True, slots=True)
class FollowTarget:
    incident: str
    #: Last seq the client holds; 0 = from the start.
    after_seq: int
    #: Epoch the client's after_seq belongs to; None = trust after_seq as is.
    epoch: str | None


@dataclass(frozen=True, slots=True)
class Follow(Command):
    """Follow incidents, each from the last seq the client holds."""

    TYPE: ClassVar[str] = "follow"
    WRITES: ClassVar[bool] = False
    targets: tuple[FollowTarget, ...]

    @classmethod
    def parse(cls, f: Fields) -> Follow:
        targets = tuple(
            FollowTarget(
                incident=t.ident("incident"),
                after_seq=t.opt_int("after_seq") or 0,
                epoch=t.opt_ident("epoch"),
            )
            for t in f.obj_list("incidents")
        )
        return cls(targets=targets)


@dataclass(frozen=True, slots=True)
class Unfollow(Command):
    TYPE: ClassVar[str] = "unfollow"
    WRITES: ClassVar[bool] = False
    incidents: tuple[str, ...]

    @classmethod
    def parse(cls, f: Fields) -> Unfollow:
        return cls(incidents=f.str_list("incidents", required=True) or ())


@dataclass(frozen=True, slots=True)
class FeedSubscribe(Command):
    """Read the cross-incident feed from a cursor, then live (SPEC section 24).

    Wire: ``{"type": "feed.subscribe", "after": "<cursor>"?, "kinds": [...]?}``.
    Without ``after``: from now. The ack carries the cursor it starts at;
    entries come as ``feed`` frames ``{"entries": [...], "cursor": ...}``.
    """

    TYPE: ClassVar[str] = "feed.subscribe"
    WRITES: ClassVar[bool] = False
    after: str | None
    kinds: tuple[str, ...] | None

    @classmethod
    def parse(cls, f: Fields) -> FeedSubscribe:
        return cls(after=f.opt_str("after", max_chars=80), kinds=f.str_list("kinds"))


@dataclass(frozen=True, slots=True)
class FeedUnsubscribe(Command):
    """Stop the connection's feed. Wire: ``{"type": "feed.unsubscribe"}``."""

    TYPE: ClassVar[str] = "feed.unsubscribe"
    WRITES: ClassVar[bool] = False

    @classmethod
    def parse(cls, f: Fields) -> FeedUnsubscribe:
        return cls()


# ----------------------------------------------------------------------- incidents


def _external_ref(f: Fields) -> str | None:
    value = f.obj.get("external_ref")
    return None if value is None else check_ref(value)


@dataclass(frozen=True, slots=True)
class IncidentCreate(Command):
    """Open a new incident; its log starts with ``incident.created`` at seq 1."""

    TYPE: ClassVar[str] = "incident.create"
    id: str
    title: str
    category: str
    priority: str
    location: Location | None
    orgs: tuple[str, ...]
    lead_org: str | None
    liaisons: dict[str, str]
    description: str | None
    #: The incident's label; None = the creator organisation's default.
    tlp: str | None = None
    subject: Subject | None = None
    #: The system that raised it, if another did (a CAP alert).
    source: Source | None = None
    #: The CAD number (or another system's id) for the incident (SPEC 18.3).
    external_ref: str | None = None
    #: Expertise tags the incident needs (SPEC 27.1); None = none given.
    needs: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, f: Fields) -> IncidentCreate:
        loc = f.sub("location")
        source = f.sub("source")
        return cls(
            needs=f.str_list("needs"),
            source=Source.parse(source) if source else None,
            external_ref=_external_ref(f),
            tlp=f.choice("tlp", INCIDENT_LABELS, required=False),
            subject=_subject(f),
            id=f.ident("id"),
            title=f.req_str("title"),
            category=f.req_str("category", max_chars=64),
            priority=f.choice("priority", PRIORITIES, required=False) or "normal",
            location=Location.parse(loc) if loc else None,
            orgs=f.str_list("orgs") or (),
            lead_org=f.opt_ident("lead_org"),
            liaisons=f.str_map("liaisons") or {},
            description=f.opt_str("description", max_chars=f.limits.max_text_chars),
        )


@dataclass(frozen=True, slots=True)
class IncidentUpdate(IncidentCommand):
    """Change fields of an incident; absent fields are left as they are."""

    TYPE: ClassVar[str] = "incident.update"
    title: str | None
    category: str | None
    priority: str | None
    location: Location | None
    add_orgs: tuple[str, ...]
    lead_org: str | None
    liaisons: dict[str, str]
    description: str | None
    subject: Subject | None = None
    #: A new external reference (absent: unchanged).
    external_ref: str | None = None
    #: The needs replaced (SPEC 27.1); absent: unchanged, ``[]``: none.
    needs: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, f: Fields) -> IncidentUpdate:
        loc = f.sub("location")
        return cls(
            needs=f.str_list("needs"),
            external_ref=_external_ref(f),
            subject=_subject(f),
            **_incident_base(f),
            # Absent means "unchanged"; present must be a real value, as at create.
            title=f.opt_str("title", nonblank=True),
            category=f.opt_str("category", max_chars=64, nonblank=True),
            priority=f.choice("priority", PRIORITIES, required=False),
            location=Location.parse(loc) if loc else None,
            add_orgs=f.str_list("add_orgs") or (),
            lead_org=f.opt_ident("lead_org"),
            liaisons=f.str_map("liaisons") or {},
            description=f.opt_str("description", max_chars=f.limits.max_text_chars),
        )


@dataclass(frozen=True, slots=True)
class IncidentStatus(IncidentCommand):
    TYPE: ClassVar[str] = "incident.status"
    status: str
    note: str | None

    @classmethod
    def parse(cls, f: Fields) -> IncidentStatus:
        return cls(
            **_incident_base(f),
            status=f.choice("status", INCIDENT_STATUSES),
            note=f.opt_str("note"),
        )


# ------------------------------------------------------------------------- channel


@dataclass(frozen=True, slots=True)
class MessagePost(IncidentCommand):
    TYPE: ClassVar[str] = "message.post"
    text: str
    mention_users: tuple[str, ...]
    mention_orgs: tuple[str, ...]
    reply_to: int | None
    urgent: bool

    @classmethod
    def parse(cls, f: Fields) -> MessagePost:
        mentions = f.sub("mentions")
        return cls(
            **_incident_base(f),
            text=f.req_str("text", max_chars=f.limits.max_text_chars),
            mention_users=(mentions.str_list("users") or ()) if mentions else (),
            mention_orgs=(mentions.str_list("orgs") or ()) if mentions else (),
            reply_to=f.opt_int("reply_to", minimum=1),
            urgent=f.flag("urgent"),
        )


@dataclass(frozen=True, slots=True)
class MessageEdit(IncidentCommand):
    TYPE: ClassVar[str] = "message.edit"
    message: int
    text: str

    @classmethod
    def parse(cls, f: Fields) -> MessageEdit:
        return cls(
            **_incident_base(f),
            message=f.req_int("message", minimum=1),
            text=f.req_str("text", max_chars=f.limits.max_text_chars),
        )


@dataclass(frozen=True, slots=True)
class MessageRetract(IncidentCommand):
    TYPE: ClassVar[str] = "message.retract"
    message: int

    @classmethod
    def parse(cls, f: Fields) -> MessageRetract:
        return cls(**_incident_base(f), message=f.req_int("message", minimum=1))


@dataclass(frozen=True, slots=True)
class MessageAck(IncidentCommand):
    """Acknowledge an urgent message."""

    TYPE: ClassVar[str] = "message.ack"
    message: int

    @classmethod
    def parse(cls, f: Fields) -> MessageAck:
        return cls(**_incident_base(f), message=f.req_int("message", minimum=1))


# --------------------------------------------------------------------------- tasks


@dataclass(frozen=True, slots=True)
class TaskCreate(IncidentCommand):
    """A task's id is the seq of its ``task.created`` event."""

    TYPE: ClassVar[str] = "task.create"
    title: str
    details: str | None
    assignee: Assignee | None
    subject: Subject | None = None
    #: Seconds from now the task is due by; past it, it escalates as overdue.
    due_in_s: int | None = None

    @classmethod
    def parse(cls, f: Fields) -> TaskCreate:
        assignee = f.sub("assignee")
        due = f.opt_int("due_in_s", minimum=1)
        if due is not None and due > TASK_DUE_MAX_S:
            raise ProtocolError(
                ErrorCode.INVALID,
                f"due_in_s: at most {TASK_DUE_MAX_S}",
                {"field": "due_in_s"},
            )
        return cls(
            subject=_subject(f),
            **_incident_base(f),
            title=f.req_str("title"),
            details=f.opt_str("details", max_chars=f.limits.max_text_chars),
            assignee=Assignee.parse(assignee) if assignee else None,
            due_in_s=due,
        )


@dataclass(frozen=True, slots=True)
class TaskAssign(IncidentCommand):
    TYPE: ClassVar[str] = "task.assign"
    task: int
    assignee: Assignee

    @classmethod
    def parse(cls, f: Fields) -> TaskAssign:
        sub = f.sub("assignee", required=True)
        assert sub is not None
        return cls(
            **_incident_base(f), task=f.req_int("task", minimum=1), assignee=Assignee.parse(sub)
        )


@dataclass(frozen=True, slots=True)
class TaskTransition(IncidentCommand):
    """accept / decline / start / complete / cancel, with an optional note."""

    task: int
    note: str | None

    @classmethod
    def parse(cls, f: Fields) -> TaskTransition:
        return cls(
            **_incident_base(f),
            task=f.req_int("task", minimum=1),
            note=f.opt_str("note", max_chars=f.limits.max_text_chars),
        )


class TaskAccept(TaskTransition):
    TYPE: ClassVar[str] = "task.accept"


class TaskDecline(TaskTransition):
    TYPE: ClassVar[str] = "task.decline"


class TaskStart(TaskTransition):
    TYPE: ClassVar[str] = "task.start"


class TaskComplete(TaskTransition):
    TYPE: ClassVar[str] = "task.complete"


class TaskCancel(TaskTransition):
    TYPE: ClassVar[str] = "task.cancel"


# ---------------------------------------------------------------------- responders


@dataclass(frozen=True, slots=True)
class ResponderStatus(IncidentCommand):
    TYPE: ClassVar[str] = "responder.status"
    status: str
    position: Position | None

    @classmethod
    def parse(cls, f: Fields) -> ResponderStatus:
        pos = f.sub("position")
        return cls(
            **_incident_base(f),
            status=f.choice("status", RESPONDER_STATUSES),
            position=Position.parse(pos) if pos else None,
        )


@dataclass(frozen=True, slots=True)
class ResponderPosition(IncidentCommand):
    TYPE: ClassVar[str] = "responder.position"
    position: Position

    @classmethod
    def parse(cls, f: Fields) -> ResponderPosition:
        return cls(**_incident_base(f), position=Position.parse(f))


# ------------------------------------------------------------------------- reviews

#: A review's rating, worst to best.
RATING_RANGE = (1, 5)
#: Latest due time a follow-up action may have (Unix seconds, year 9999).
MAX_DUE_S = 253_402_300_799.0


@dataclass(frozen=True, slots=True)
class ReviewAction:
    """A follow-up action of a review: who does what by when (``due``: Unix seconds)."""

    id: str
    text: str
    owner: str
    due: float

    @classmethod
    def parse(cls, f: Fields) -> ReviewAction:
        return cls(
            id=f.ident("id"),
            text=f.req_str("text", max_chars=f.limits.max_text_chars),
            owner=f.ident("owner"),
            due=f.req_float("due", 0.0, MAX_DUE_S),
        )

    def to_wire(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "owner": self.owner, "due": self.due}


@dataclass(frozen=True, slots=True)
class ReviewSubmit(IncidentCommand):
    """An organisation's post-incident review (SPEC 8.12); a later one supersedes it."""

    TYPE: ClassVar[str] = "review.submit"
    went_well: str
    went_badly: str
    rating: int
    actions: tuple[ReviewAction, ...]

    @classmethod
    def parse(cls, f: Fields) -> ReviewSubmit:
        rating = f.req_int("rating", minimum=RATING_RANGE[0])
        if rating > RATING_RANGE[1]:
            raise ProtocolError(
                ErrorCode.INVALID, "rating: must be between 1 and 5", {"field": "rating"}
            )
        actions = (
            tuple(ReviewAction.parse(a) for a in f.obj_list("actions"))
            if (f.obj.get("actions"))
            else ()
        )
        ids = [a.id for a in actions]
        if len(set(ids)) != len(ids):
            raise ProtocolError(
                ErrorCode.INVALID, "actions: ids must be unique", {"field": "actions"}
            )
        return cls(
            **_incident_base(f),
            went_well=f.req_str("went_well", max_chars=f.limits.max_text_chars),
            went_badly=f.req_str("went_badly", max_chars=f.limits.max_text_chars),
            rating=rating,
            actions=actions,
        )


@dataclass(frozen=True, slots=True)
class ReviewActionDone(IncidentCommand):
    """Mark a follow-up action of a review done (its owner or the reviewing coordinator)."""

    TYPE: ClassVar[str] = "review.action_done"
    action_id: str
    note: str | None

    @classmethod
    def parse(cls, f: Fields) -> ReviewActionDone:
        return cls(
            **_incident_base(f),
            action_id=f.ident("action_id"),
            note=f.opt_str("note", max_chars=f.limits.max_text_chars),
        )


# ------------------------------------------------------------------------ receipts


def receipt_id(incident: str, kind: str, subject: int, state: str) -> str:
    """The client id a receipt must carry: one per person, subject and state.

    Every device of a person sends the same id, so the log stores the first
    and answers the others as duplicates (SPEC "Receipts"). It names the
    incident: a client id is unique per user across incidents (SPEC §12).
    """
    return f"rcpt-{incident}-{kind}-{subject}-{state}"


@dataclass(frozen=True, slots=True)
class ReceiptMark(IncidentCommand):
    """An urgent message or a task reached a device (delivered) or was shown (seen)."""

    TYPE: ClassVar[str] = "receipt.mark"
    message: int | None
    task: int | None
    state: str

    @classmethod
    def parse(cls, f: Fields) -> ReceiptMark:
        message, task = f.opt_int("message", minimum=1), f.opt_int("task", minimum=1)
        if (message is None) == (task is None):
            raise ProtocolError(
                ErrorCode.INVALID, "receipt: name a message or a task", {"field": "message"}
            )
        state = f.choice("state", RECEIPT_STATES)
        cmd = cls(**_incident_base(f), message=message, task=task, state=state)
        expected = receipt_id(cmd.incident, *cmd.subject_ref(), state)
        if cmd.id != expected:
            raise ProtocolError(
                ErrorCode.INVALID, f"id: a receipt's id is {expected!r}", {"field": "id"}
            )
        return cmd

    def subject_ref(self) -> tuple[str, int]:
        if self.message is not None:
            return "message", self.message
        assert self.task is not None
        return "task", self.task


# ------------------------------------------------------------------------ check-ins


def _opt_position(f: Fields) -> Position | None:
    pos = f.sub("position")
    return Position.parse(pos) if pos else None


@dataclass(frozen=True, slots=True)
class CheckinStart(IncidentCommand):
    """A lone worker starts a check-in timer: check in every ``interval_s``."""

    TYPE: ClassVar[str] = "checkin.start"
    interval_s: int
    position: Position | None

    @classmethod
    def parse(cls, f: Fields) -> CheckinStart:
        interval = f.req_int("interval_s", minimum=CHECKIN_MIN_S)
        if interval > CHECKIN_MAX_S:
            raise ProtocolError(
                ErrorCode.INVALID, f"interval_s: at most {CHECKIN_MAX_S}", {"field": "interval_s"}
            )
        return cls(**_incident_base(f), interval_s=interval, position=_opt_position(f))


@dataclass(frozen=True, slots=True)
class CheckinOk(IncidentCommand):
    """The worker is fine: the timer starts again (also after a missed check-in)."""

    TYPE: ClassVar[str] = "checkin.ok"
    position: Position | None

    @classmethod
    def parse(cls, f: Fields) -> CheckinOk:
        return cls(**_incident_base(f), position=_opt_position(f))


@dataclass(frozen=True, slots=True)
class CheckinEnd(IncidentCommand):
    """The worker stops the timer (back with the team, shift over)."""

    TYPE: ClassVar[str] = "checkin.end"

    @classmethod
    def parse(cls, f: Fields) -> CheckinEnd:
        return cls(**_incident_base(f))


@dataclass(frozen=True, slots=True)
class CheckinDuress(IncidentCommand):
    """A duress alarm: raised at once, with or without a running timer."""

    TYPE: ClassVar[str] = "checkin.duress"
    position: Position | None

    @classmethod
    def parse(cls, f: Fields) -> CheckinDuress:
        return cls(**_incident_base(f), position=_opt_position(f))


@dataclass(frozen=True, slots=True)
class CheckinResolve(IncidentCommand):
    """Someone concerned resolves a worker's missed check-in or duress alarm."""

    TYPE: ClassVar[str] = "checkin.resolve"
    user: str
    note: str | None

    @classmethod
    def parse(cls, f: Fields) -> CheckinResolve:
        return cls(
            **_incident_base(f),
            user=f.ident("user"),
            note=f.opt_str("note", max_chars=f.limits.max_text_chars),
        )


# ------------------------------------------------------------------------ capacity


@dataclass(frozen=True, slots=True)
class CapacityRequest(IncidentCommand):
    """Ask a participating organisation for some of its capacity (SPEC 27.3).

    Wire: ``{"type": "capacity.request", "id", "incident", "org": "<org>",
    "items": {"beds": 2, "languages": ["ar"]}, "note"?}``.
    """

    TYPE: ClassVar[str] = "capacity.request"
    org: str
    items: dict[str, Any]
    note: str | None

    @classmethod
    def parse(cls, f: Fields) -> CapacityRequest:
        return cls(
            **_incident_base(f),
            org=f.ident("org"),
            items=parse_request(f),
            note=f.opt_str("note", max_chars=f.limits.max_text_chars),
        )


@dataclass(frozen=True, slots=True)
class CapacityAnswer(IncidentCommand):
    """The requested organisation accepts or declines a request (by its seq)."""

    request: int
    note: str | None

    @classmethod
    def parse(cls, f: Fields) -> CapacityAnswer:
        return cls(
            **_incident_base(f),
            request=f.req_int("request", minimum=1),
            note=f.opt_str("note", max_chars=f.limits.max_text_chars),
        )


class CapacityAccept(CapacityAnswer):
    TYPE: ClassVar[str] = "capacity.accept"


class CapacityDecline(CapacityAnswer):
    TYPE: ClassVar[str] = "capacity.decline"


COMMANDS: dict[str, Any] = {
    cls.TYPE: cls
    for cls in (
        Follow,
        Unfollow,
        FeedSubscribe,
        FeedUnsubscribe,
        IncidentCreate,
        IncidentUpdate,
        IncidentStatus,
        MessagePost,
        MessageEdit,
        MessageRetract,
        MessageAck,
        TaskCreate,
        TaskAssign,
        TaskAccept,
        TaskDecline,
        TaskStart,
        TaskComplete,
        TaskCancel,
        ResponderStatus,
        ResponderPosition,
        ReviewSubmit,
        ReviewActionDone,
        ReceiptMark,
        CheckinStart,
        CheckinOk,
        CheckinEnd,
        CheckinDuress,
        CheckinResolve,
        CapacityRequest,
        CapacityAccept,
        CapacityDecline,
    )
}


def parse_command(value: Any, limits: Limits = LIMITS) -> Command:
    """Validate a decoded frame and return its typed command."""
    f = Fields(value, "", limits)
    kind = f.req_str("type", max_chars=64)
    cls = COMMANDS.get(kind)
    if cls is None:
        raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind!r}")
    command: Command = cls.parse(f)
    return command
