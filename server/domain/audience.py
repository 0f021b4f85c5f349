"""The one function every read path asks: what may this reader get of this event?

``audience`` turns (event, reader, incident, agreements, now) into an
``Audience``: a placeholder, the event whole, or the event with protected
fields redacted or a position coarsened. Live fan-out, resume, the timeline,
the incident view and list, presence-adjacent state and the command rules all
call it, so a rule changed here changes everywhere at once (DESIGN.md,
"Organisations and data sharing"). The rules, in order (SPEC section 9.4):

1. An unrestricted reader (an export of the whole log) gets everything.
2. Outside the event's ``visibility``: a placeholder.
3. ``RED``: its author and the users it names as ``recipients``; everyone
   else, the author's organisation included, gets a placeholder.
4. ``incident.*`` events define the incident shared with every participant:
   always delivered (their protected fields still follow rule 7).
5. The author's own organisation gets its events whole.
6. A newcomer (an organisation added after the event) gets a placeholder for
   an ``AMBER`` event unless an agreement from the author's organisation grants
   it ``history``; for ``AMBER+STRICT``, always (it named its organisations
   when it was written). CLEAR, GREEN and RED (named people) are not held back.
7. Protected fields the event carries (a person's name, date of birth, phone,
   address; a responder's position) are redacted unless an agreement in force
   from the author's organisation to the reader's grants them, for the kind
   and the incident's category; a position may be granted coarsened.

Audiences are few per event (an organisation, or a RED recipient, each maps
to one), which is what lets fan-out encode once per audience class.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from server.domain.events import StoredEvent
from server.domain.sharing import (
    UNLABELLED,
    AgreementsView,
    FieldClass,
    Label,
    Precision,
)


@dataclass(frozen=True, slots=True)
class Audience:
    """What one reader gets of one event. Hashable: fan-out caches by it."""

    visible: bool
    #: Protected fields replaced by the redaction marker.
    hidden: frozenset[FieldClass] = frozenset()
    #: The position is sent rounded to about 100 m.
    coarse: bool = False

    @property
    def whole(self) -> bool:
        return self.visible and not self.hidden and not self.coarse


WHOLE = Audience(visible=True)
PLACEHOLDER = Audience(visible=False)


class EventMeta(msgspec.Struct, frozen=True, gc=False):
    """The facts about an event (or a state item it set) the rules look at.

    A msgspec Struct, neither a frozen dataclass nor a named tuple: one is
    built per event on every read path (fan-out, resume, projection), where a
    frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field)
    cost several times more; and one is kept per message of every cached
    projection, where a named tuple is an object the cyclic garbage collector
    walks on every pass. ``gc=False`` keeps it out of those passes: it holds
    only strings, numbers, tuples of strings, an enum member and a frozenset
    of enum members, so it can never be part of a reference cycle (msgspec's
    condition for ``gc=False``; tests/unit/test_gc_untracked.py checks it).
    """

    seq: int
    type: str
    actor_org: str
    actor_user: str
    visibility: tuple[str, ...] | None
    label: Label
    recipients: tuple[str, ...]
    #: Protected fields present in the event's body.
    protected: frozenset[FieldClass]
    #: The seq of what it follows up (a message edit's message, a task change's
    #: task), else its own: a newcomer is judged by when the subject was
    #: written, or the edit of a message it may not see would show its text.
    origin: int = 0

    @property
    def written(self) -> int:
        return self.origin or self.seq


@dataclass(frozen=True, slots=True)
class Reader:
    org: str
    user: str


@dataclass(frozen=True, slots=True)
class SharingContext:
    """The incident-level facts: its category and when each organisation joined."""

    category: str
    #: org -> seq of the event that made it a participant (1: from the start).
    joined: Mapping[str, int]


#: Label by wire value (a dict lookup: ``Label(raw)`` is an Enum call per event).
_LABELS: dict[Any, Label] = {label.value: label for label in Label}


def label_of(body: Mapping[str, Any]) -> Label:
    """An event's label; events stored before labels (or with an unknown one)
    count as ``UNLABELLED``."""
    raw = body.get("tlp")
    if raw is None:
        return UNLABELLED
    try:
        return _LABELS.get(raw, UNLABELLED)
    except TypeError:  # an unhashable value (a list): not a label
        return UNLABELLED


#: Where protected fields sit in each event type's body.
_SUBJECT_TYPES = frozenset({"incident.created", "incident.updated", "task.created"})
_POSITION_TYPES = frozenset(
    {
        "responder.status",
        "responder.position",
        "checkin.started",
        "checkin.ok",
        "checkin.duress",
        "checkin.missed",
    }
)
SUBJECT_FIELDS: tuple[FieldClass, ...] = (
    FieldClass.NAME,
    FieldClass.DOB,
    FieldClass.PHONE,
    FieldClass.ADDRESS,
)


_NONE_PROTECTED: frozenset[FieldClass] = frozenset()
_POSITION_PROTECTED = frozenset({FieldClass.POSITION})


def protected_fields(kind: str, body: Mapping[str, Any]) -> frozenset[FieldClass]:
    """The protected fields ``body`` (of an event of type ``kind``) carries."""
    if kind in _SUBJECT_TYPES:
        subject = body.get("subject")
        if not subject:
            return _NONE_PROTECTED
        return frozenset(f for f in SUBJECT_FIELDS if subject.get(f.value) is not None)
    if kind in _POSITION_TYPES and body.get("position"):
        return _POSITION_PROTECTED
    return _NONE_PROTECTED


#: Follow-up event types and the body field naming their subject. Receipts
#: and escalations follow a message or a task, check-in events a check-in
#: (the seq of its ``checkin.started``, or of a duress raised without one).
_SUBJECT_OF: dict[str, str | tuple[str, ...]] = {
    "message.edited": "message",
    "message.retracted": "message",
    "message.acknowledged": "message",
    "receipt.recorded": ("message", "task"),
    "escalation.unacknowledged": ("message", "task"),
    "escalation.overdue": ("message", "task"),
    "checkin.ok": "checkin",
    "checkin.ended": "checkin",
    "checkin.duress": "checkin",
    "checkin.missed": "checkin",
    "checkin.resolved": "checkin",
    "task.assigned": "task",
    "task.accepted": "task",
    "task.declined": "task",
    "task.started": "task",
    "task.completed": "task",
    "task.cancelled": "task",
    "review.action_done": "review",
}


def origin_of(seq: int, kind: str, body: Mapping[str, Any]) -> int:
    """The seq of what a follow-up follows up; 0 for an event that starts something."""
    subject_field = _SUBJECT_OF.get(kind)
    if isinstance(subject_field, tuple):
        subject_field = next((name for name in subject_field if name in body), None)
    origin = body.get(subject_field) if subject_field else None
    return origin if isinstance(origin, int) and 0 < origin < seq else 0


def updated_orgs(ev: StoredEvent, joined: Mapping[str, int]) -> tuple[str, ...] | None:
    """Whose ``updated`` an event moves: None for every participant, else those named.

    The time is told only to whom the event may show, whatever the
    agreements: a ``RED`` event moves no one's, a restricted one its
    organisations', and an ``AMBER`` follow-up of something written before
    an organisation joined (hidden from it unless an agreement grants the
    history) not that organisation's. That last rule errs on the side of
    silence: a newcomer granted the history sees the follow-up but its
    ``updated`` does not move for it (SPEC section 18).
    """
    label = label_of(ev.body)
    if label is Label.RED:
        return ()
    origin = origin_of(ev.seq, ev.type, ev.body)
    if not origin or label not in (Label.AMBER, Label.AMBER_STRICT):
        return ev.visibility
    return tuple(
        org
        for org, seq in joined.items()
        if (seq <= origin or org == ev.actor_org)
        and (ev.visibility is None or org in ev.visibility)
    )


def meta_of(
    seq: int,
    kind: str,
    actor_org: str,
    actor_user: str,
    visibility: tuple[str, ...] | None,
    body: Mapping[str, Any],
) -> EventMeta:
    recipients = body.get("recipients")
    return EventMeta(
        seq,
        kind,
        actor_org,
        actor_user,
        visibility,
        label_of(body),
        tuple(recipients) if recipients else (),
        protected_fields(kind, body),
        origin_of(seq, kind, body),
    )


def event_meta(ev: StoredEvent) -> EventMeta:
    return meta_of(ev.seq, ev.type, ev.actor_org, ev.actor_user, ev.visibility, ev.body)


def audience(
    meta: EventMeta,
    reader: Reader | None,
    ctx: SharingContext,
    rules: AgreementsView,
    now_ms: int,
) -> Audience:
    """What ``reader`` gets of the event ``meta`` describes (module docstring)."""
    if reader is None:
        return WHOLE
    if meta.visibility is not None and reader.org not in meta.visibility:
        return PLACEHOLDER
    if (
        meta.label is Label.RED
        and reader.user != meta.actor_user
        and reader.user not in meta.recipients
    ):
        return PLACEHOLDER
    if reader.org == meta.actor_org:
        return WHOLE
    defining = meta.type.startswith("incident.")
    if not defining and meta.label in (Label.AMBER, Label.AMBER_STRICT):
        joined = ctx.joined.get(reader.org)
        if joined is None or joined > meta.written:  # a newcomer (or not a participant)
            if meta.label is Label.AMBER_STRICT:
                return PLACEHOLDER
            if not rules.grant(meta.actor_org, reader.org, ctx.category, meta.type, now_ms).history:
                return PLACEHOLDER
    if not meta.protected:
        return WHOLE
    grant = rules.grant(meta.actor_org, reader.org, ctx.category, meta.type, now_ms)
    hidden = meta.protected - grant.fields
    coarse = (
        FieldClass.POSITION in meta.protected
        and FieldClass.POSITION not in hidden
        and grant.position is Precision.COARSE
    )
    if not hidden and not coarse:
        return WHOLE
    return Audience(visible=True, hidden=frozenset(hidden), coarse=coarse)


# ------------------------------------------------------------------ redaction

#: What a redacted field holds on the wire (SPEC section 9.4).
REDACTED: dict[str, Any] = {"redacted": True}

#: Decimal places a coarsened position keeps: 0.001° of latitude is ~111 m.
COARSE_DECIMALS = 3
COARSE_ACCURACY_M = 100.0


def coarsen(position: Mapping[str, Any]) -> dict[str, Any]:
    """A position rounded to the ~100 m grid, marked as such."""
    accuracy = position.get("accuracy_m")
    return {
        "lat": round(float(position["lat"]), COARSE_DECIMALS),
        "lon": round(float(position["lon"]), COARSE_DECIMALS),
        "accuracy_m": max(COARSE_ACCURACY_M, float(accuracy or 0.0)),
        "precision": Precision.COARSE.value,
    }


def redact_subject(subject: Mapping[str, Any], hidden: frozenset[FieldClass]) -> dict[str, Any]:
    return {
        key: (REDACTED if value is not None and FieldClass(key) in hidden else value)
        if key in _SUBJECT_KEYS
        else value
        for key, value in subject.items()
    }


_SUBJECT_KEYS = frozenset(f.value for f in SUBJECT_FIELDS)


def redact_position(position: Mapping[str, Any] | None, aud: Audience) -> Any:
    if position is None:
        return None
    if FieldClass.POSITION in aud.hidden:
        return REDACTED
    return coarsen(position) if aud.coarse else dict(position)


def redact_body(kind: str, body: Mapping[str, Any], aud: Audience) -> dict[str, Any]:
    """``body`` as ``aud`` may read it (a copy; the stored body is never changed)."""
    out = dict(body)
    if kind in _SUBJECT_TYPES and out.get("subject"):
        out["subject"] = redact_subject(out["subject"], aud.hidden)
    if kind in _POSITION_TYPES and out.get("position"):
        out["position"] = redact_position(out["position"], aud)
    return out


def redacted_names(aud: Audience) -> list[str]:
    """The wire list of what an envelope had redacted or coarsened, sorted."""
    names = {f.value for f in aud.hidden}
    if aud.coarse:
        names.add(FieldClass.POSITION.value)
    return sorted(names)
