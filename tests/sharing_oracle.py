"""Who may read what: the SPEC's sharing rules, written down apart from the server.

The leak test (tests/integration/test_leak_stateful.py) records every event it
makes the server store, as :class:`EventMeta`, and asks :func:`entitled` what
each reader must get at that seq on every read path. The rules here come from
protocol/SPEC.md (sections 8.6, 9.3, 13 and 18 "online"), never from the
server's code: if the two disagree, one of them is wrong and the test says so.

Today's rules, all of them:

* a reader whose organisation does not take part in the incident gets nothing
  (``NONE``: the incident answers exactly like a missing one);
* a participant gets the whole event (``FULL``) if its ``visibility`` is
  ``null`` or names the reader's organisation, else a ``restricted``
  placeholder (``PLACEHOLDER``) at the same seq; newcomers see earlier
  ``null`` events like everyone else;
* follow-ups (edits, retractions, acknowledgements, task transitions) carry
  their subject's visibility, replies their parent's narrowed by what was sent.

Made to grow: TLP labels and sharing agreements (server/domain/sharing.py)
will add a label and recipients to :class:`EventMeta`, a ``REDACTED`` audience
(protected fields replaced) and rules keyed on :attr:`IncidentFacts.joined`
(the seq at which each organisation joined, for "AMBER history is hidden from
organisations added later"). Keep every rule in :func:`entitled`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

Visibility = tuple[str, ...] | None


class Audience(Enum):
    """What one reader must receive at one seq."""

    FULL = "full"
    PLACEHOLDER = "placeholder"
    #: Not a participant: the incident does not exist for this reader.
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Reader:
    user: str
    org: str
    role: str


@dataclass(frozen=True, slots=True)
class EventMeta:
    """What the test knows of one stored event (from its command and its ack)."""

    incident: str
    seq: int
    type: str
    cid: str
    actor: str
    actor_org: str
    visibility: Visibility
    ts: int
    #: Canary tokens in the event's content.
    canaries: frozenset[str] = frozenset()
    #: The message or task this event is about (follow-ups), else None.
    subject: int | None = None
    #: responder.status: the status; responder.*: the position (or None).
    status: str | None = None
    position: Mapping[str, Any] | None = None


@dataclass(slots=True)
class MessageFacts:
    author: str
    visibility: Visibility
    text: str
    retracted: bool = False
    acks: set[str] = field(default_factory=set)


@dataclass(slots=True)
class IncidentFacts:
    """The oracle's model of one incident, built from accepted commands."""

    id: str
    #: org id -> seq of the event that made it a participant (1 for the creators).
    joined: dict[str, int]
    liaisons: dict[str, str]
    title: str
    status: str = "reported"
    events: dict[int, EventMeta] = field(default_factory=dict)
    messages: dict[int, MessageFacts] = field(default_factory=dict)
    #: task id -> (visibility, assignee org or None)
    tasks: dict[int, tuple[Visibility, str | None]] = field(default_factory=dict)

    @property
    def head(self) -> int:
        return max(self.events, default=0)

    def takes_part(self, org: str) -> bool:
        return org in self.joined


def entitled(event: EventMeta, reader: Reader, incident: IncidentFacts) -> Audience:
    """What ``reader`` must get at ``event.seq`` (SPEC sections 9.3 and 13)."""
    if not incident.takes_part(reader.org):
        return Audience.NONE
    if event.visibility is None or reader.org in event.visibility:
        return Audience.FULL
    return Audience.PLACEHOLDER


def sees(event: EventMeta, reader: Reader, incident: IncidentFacts) -> bool:
    return entitled(event, reader, incident) is Audience.FULL


# ------------------------------------------------------------- visibility rules


def normalise(sent: Iterable[str] | None, own_org: str) -> Visibility:
    """SPEC 13: the sender's organisation is always added; the list is stored sorted."""
    if sent is None:
        return None
    return tuple(sorted({*sent, own_org}))


def reply_visibility(parent: Visibility, sent: Visibility) -> Visibility:
    """SPEC 13: a reply reaches no further than its parent, narrowed by ``sent``."""
    if parent is None:
        return sent
    if sent is None:
        return parent
    common = tuple(org for org in parent if org in sent)
    return common or parent


def mention_outsiders(visibility: Visibility, mentioned_orgs: Iterable[str]) -> list[str]:
    """SPEC 8.6: mentioned organisations (of orgs and users) the message would not reach."""
    if visibility is None:
        return []
    return sorted({org for org in mentioned_orgs if org not in visibility})


# ----------------------------------------------------------------- read paths


def visible_online(
    reader: Reader, online: Iterable[str], incident: IncidentFacts, org_of: Mapping[str, str]
) -> set[str]:
    """SPEC 18 ``online``: the reader's own organisation and the incident's liaisons."""
    liaisons = set(incident.liaisons.values())
    return {u for u in online if org_of[u] == reader.org or u in liaisons}


def updated_for(incident: IncidentFacts, reader: Reader) -> int:
    """SPEC 18 incident list: ``updated`` is the time of the last event the reader may see."""
    return max(ev.ts for ev in incident.events.values() if sees(ev, reader, incident))


def responders_for(incident: IncidentFacts, reader: Reader) -> dict[str, dict[str, Any]]:
    """SPEC 13: each responder's latest status and position among the events the reader sees.

    Their times too: the time of a later restricted position must not show.
    """
    out: dict[str, dict[str, Any]] = {}
    for seq in sorted(incident.events):
        ev = incident.events[seq]
        if not ev.type.startswith("responder.") or not sees(ev, reader, incident):
            continue
        entry = out.setdefault(
            ev.actor, {"status": None, "status_ts": None, "position": None, "position_ts": None}
        )
        if ev.type == "responder.status":
            entry["status"], entry["status_ts"] = ev.status, ev.ts
        if ev.position is not None:
            entry["position"], entry["position_ts"] = dict(ev.position), ev.ts
    return out


def allowed_canaries(incident: IncidentFacts, reader: Reader) -> set[str]:
    """Every canary of ``incident`` that ``reader`` may receive, on any path."""
    return {
        token
        for ev in incident.events.values()
        if sees(ev, reader, incident)
        for token in ev.canaries
    }
