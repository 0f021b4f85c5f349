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

Labels and agreements (SPEC section 9.4), on top of those:

* ``RED``: only the author and the named ``recipients``, not even the
  author's own organisation; a ``RED`` event moves no one's ``updated``;
* ``AMBER+STRICT``: only the organisations named, never a newcomer;
* ``AMBER`` (the default, and every event without a label): an organisation
  added later (:attr:`IncidentFacts.joined`) gets a placeholder for what was
  written before it joined, unless an agreement from the author's
  organisation grants it ``history``; follow-ups are judged by when their
  subject was written; the incident's own events always reach everyone;
* a responder's position, in another organisation's event, only where an
  agreement grants ``position`` for the incident's category (``REDACTED``
  otherwise: the event, with the position replaced by the marker).

Reads added with retention and capacity (SPEC 25 and 27):

* suggested assignees (27.4): organisations a task could go to (a partner's
  coordinator: its own only); people of the reader's own organisation, the
  incident's liaisons, and responders whose status or position the reader
  sees; each with only the status and position the reader sees
  (:func:`suggestable`, :func:`distance_km`);
* an archived incident (25.4): to a participant every read answers
  ``archived``, to anyone else ``not_found``; its export (supervisors and
  admins) is shaped for the reader as the live export was; the tombstones
  listed to an organisation's supervisor are those of the incidents it took
  part in (:func:`lists_tombstone`), without ``closed_ms`` and ``archived_by``;
* the capacity board (27.2): every partner organisation's reader, except
  auditors and bots scoped to incidents (:func:`sees_capacity`); never on an
  incident's read paths, nor a webhook's.

The agreements (``AGREEMENTS``) start as the demo's: police and shelter
share names, phones and exact positions of welfare incidents both ways,
with history; the wildlife trust has none. The test creates and revokes
more as it goes, and the oracle follows (``set_agreements``). Keep every rule in :func:`entitled`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

Visibility = tuple[str, ...] | None


class Audience(Enum):
    """What one reader must receive at one seq."""

    FULL = "full"
    #: The event, with its position replaced by ``{"redacted": true}`` (no salt).
    REDACTED = "redacted"
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
    #: Its TLP label (SPEC 9.4), and for RED the users it names.
    label: str = "AMBER"
    recipients: tuple[str, ...] = ()


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
    category: str = "welfare"
    #: The lead organisation (SPEC 27.4: only its coordinators rank other organisations).
    lead: str | None = None
    #: (lat, lon) of the incident's location, for the suggestions' distances.
    location: tuple[float, float] | None = None
    events: dict[int, EventMeta] = field(default_factory=dict)
    messages: dict[int, MessageFacts] = field(default_factory=dict)
    #: task id -> (visibility, assignee org or None)
    tasks: dict[int, tuple[Visibility, str | None]] = field(default_factory=dict)

    @property
    def head(self) -> int:
        return max(self.events, default=0)

    def takes_part(self, org: str) -> bool:
        return org in self.joined


@dataclass(frozen=True, slots=True)
class Grant:
    """What an agreement from one organisation to another shares (SPEC 9.4)."""

    owner: str
    recipient: str
    position: bool
    history: bool
    categories: frozenset[str]


#: The agreements in force, by id: the demo's (server/services/admin.py,
#: DEMO_AGREEMENTS) at the start, then what the test creates and revokes
#: (``set_agreements``). Several between one pair add up (SPEC 9.4).
DEMO_AGREEMENTS: dict[str, Grant] = {
    "demo-police-to-shelter": Grant(
        "metro-police", "harbour-shelter", True, True, frozenset({"welfare"})
    ),
    "demo-shelter-to-police": Grant(
        "harbour-shelter", "metro-police", True, True, frozenset({"welfare"})
    ),
}


AGREEMENTS: dict[str, Grant] = dict(DEMO_AGREEMENTS)


def set_agreements(agreements: Mapping[str, Grant]) -> dict[str, Grant]:
    """Replace the agreements in force; the previous ones, to put back or compare."""
    previous = dict(AGREEMENTS)
    AGREEMENTS.clear()
    AGREEMENTS.update(agreements)
    return previous


def grant(owner: str, recipient: str, category: str) -> Grant | None:
    """The union of the agreements in force from ``owner`` to ``recipient``."""
    found = [
        g
        for g in AGREEMENTS.values()
        if (g.owner, g.recipient) == (owner, recipient) and category in g.categories
    ]
    if not found:
        return None
    return Grant(
        owner,
        recipient,
        any(g.position for g in found),
        any(g.history for g in found),
        frozenset().union(*(g.categories for g in found)),
    )


def entitled(event: EventMeta, reader: Reader, incident: IncidentFacts) -> Audience:
    """What ``reader`` must get at ``event.seq`` (SPEC sections 9.3, 9.4 and 13)."""
    if not incident.takes_part(reader.org):
        return Audience.NONE
    if event.visibility is not None and reader.org not in event.visibility:
        return Audience.PLACEHOLDER
    if event.label == "RED" and reader.user != event.actor and reader.user not in event.recipients:
        return Audience.PLACEHOLDER
    if reader.org == event.actor_org:
        return Audience.FULL
    shared = grant(event.actor_org, reader.org, incident.category)
    written = event.subject or event.seq
    if not event.type.startswith("incident.") and event.label in ("AMBER", "AMBER+STRICT"):
        if incident.joined[reader.org] > written:  # a newcomer
            if event.label == "AMBER+STRICT" or shared is None or not shared.history:
                return Audience.PLACEHOLDER
    if event.position is not None and (shared is None or not shared.position):
        return Audience.REDACTED
    return Audience.FULL


def sees(event: EventMeta, reader: Reader, incident: IncidentFacts) -> bool:
    """The reader gets the event's content (whole, or with its position redacted)."""
    return entitled(event, reader, incident) in (Audience.FULL, Audience.REDACTED)


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
    return max(ev.ts for ev in incident.events.values() if tells_time(ev, reader, incident))


def tells_time(event: EventMeta, reader: Reader, incident: IncidentFacts) -> bool:
    """SPEC 18 and 9.4: whether an event moves the reader's ``updated``.

    Only events it sees; never a RED one; and not a follow-up of something
    written before the reader's organisation joined (by another organisation,
    AMBER or AMBER+STRICT), even where an agreement shows it the history.
    """
    if not sees(event, reader, incident) or event.label == "RED":
        return False
    late = (
        event.subject is not None
        and event.label in ("AMBER", "AMBER+STRICT")
        and event.actor_org != reader.org
        and incident.joined[reader.org] > event.subject
    )
    return not late


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
            redacted = entitled(ev, reader, incident) is Audience.REDACTED
            entry["position"] = REDACTED_MARK if redacted else dict(ev.position)
            entry["position_ts"] = ev.ts
    return out


REDACTED_MARK: dict[str, Any] = {"redacted": True}


def allowed_canaries(incident: IncidentFacts, reader: Reader) -> set[str]:
    """Every canary of ``incident`` that ``reader`` may receive, on any path."""
    return {
        token
        for ev in incident.events.values()
        if sees(ev, reader, incident)
        for token in ev.canaries
    }


# ------------------------------------------------------ retention and capacity

#: SPEC 27.4: the Earth radius of the suggestions' haversine distance, km.
EARTH_RADIUS_KM = 6371.0088
#: SPEC 27.4 (server: Role.RESPONDER, DISPATCHER, SUPERVISOR): who takes tasks.
ASSIGNABLE_ROLES = frozenset({"responder", "dispatcher", "supervisor"})
#: SPEC 25.4: who may export an archived incident (of a participating organisation).
ARCHIVE_EXPORTERS = frozenset({"supervisor", "admin"})
#: SPEC 25.2: what an organisation's reader does not get of a tombstone.
TOMBSTONE_HIDDEN = frozenset({"closed_ms", "archived_by"})


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """SPEC 27.4: the haversine distance between two (lat, lon) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def suggestion_orgs(incident: IncidentFacts, reader: Reader, task_vis: Visibility) -> set[str]:
    """SPEC 27.4: the organisations a task could go to, as this reader may rank them."""
    orgs = {o for o in incident.joined if task_vis is None or o in task_vis}
    if reader.org != incident.lead:
        orgs &= {reader.org}
    return orgs


def suggestable(
    user: str, user_org: str, incident: IncidentFacts, reader: Reader, task_vis: Visibility
) -> bool:
    """SPEC 27.4: whether a person (of an assignable role) may be among the reader's candidates."""
    if user_org not in suggestion_orgs(incident, reader, task_vis):
        return False
    if user_org == reader.org or user in incident.liaisons.values():
        return True
    return user in responders_for(incident, reader)


def lists_tombstone(incident: IncidentFacts, reader: Reader) -> bool:
    """SPEC 25.2 and 25.4: an organisation learns of an archived incident only if it took part."""
    return incident.takes_part(reader.org)


#: The role the test gives a bot whose API key is scoped to some incidents.
SCOPED_BOT = "scoped-bot"


def sees_capacity(reader: Reader, org: str) -> bool:
    """SPEC 27.2: whether ``reader`` may see ``org``'s capacity: every partner
    organisation's reader, except auditors, and a bot scoped to some incidents
    its own organisation's only; a webhook carries incident events only."""
    if reader.role in ("auditor", "webhook"):
        return False
    return reader.role != SCOPED_BOT or org == reader.org
