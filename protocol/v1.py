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

from protocol.errors import ErrorCode, ProtocolError
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
}

#: Every event type a log can hold.
EVENT_TYPES = tuple(EVENT_OF_COMMAND.values())

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
    """Read the cross-incident feed from a cursor, then live (SPEC section 22).

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

    @classmethod
    def parse(cls, f: Fields) -> IncidentCreate:
        loc = f.sub("location")
        return cls(
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

    @classmethod
    def parse(cls, f: Fields) -> IncidentUpdate:
        loc = f.sub("location")
        return cls(
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

    @classmethod
    def parse(cls, f: Fields) -> TaskCreate:
        assignee = f.sub("assignee")
        return cls(
            subject=_subject(f),
            **_incident_base(f),
            title=f.req_str("title"),
            details=f.opt_str("details", max_chars=f.limits.max_text_chars),
            assignee=Assignee.parse(assignee) if assignee else None,
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
