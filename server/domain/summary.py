"""Incident summaries for the incident index, folded field by field.

The list of incidents (``GET /api/v1/incidents``) is served from an index the
storage backend keeps next to the log, not from projections: listing must not
load and subscribe every incident on every node. An index entry is the
*header* of an incident (title, status, orgs...) plus its head (seq, ts).

The header is a set of **assignments** ``key -> (seq, value)`` that each
header event makes (``changes``). Merging keeps, per key, the value of the
highest seq (for ``org:<id>``, the lowest: an organisation keeps the place
where it first joined). That merge is order-independent and idempotent, so a
Redis node can apply its events' assignments right after its own append
without knowing the header other nodes wrote, and SQLite can apply them in
its commit. ``summary`` turns a header back into exactly what
``IncidentState.summary()`` gives for the same log (a unit test checks that).

Only three event types change a header; every event moves the head, and the
``updated`` time of the organisations that see it (``last_seen``): the index
keeps that time per (incident, organisation), so a restricted event never
moves the time, nor the place in the order, that others are shown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from server.domain.audience import origin_of, updated_orgs
from server.domain.events import StoredEvent
from server.domain.sharing import UNLABELLED

HEADER_TYPES = frozenset({"incident.created", "incident.updated", "incident.status_changed"})

#: key -> [seq, value], as stored (JSON/msgpack-friendly lists).
Header = dict[str, list[Any]]

_ORG = "org:"
_LIAISON = "liaison:"
#: Fields ``incident.updated`` may set (only when present and not null).
_UPDATABLE = ("title", "category", "priority", "location", "lead_org", "tlp", "external_ref")


def changes(ev: StoredEvent) -> list[tuple[str, Any]]:
    """The header assignments ``ev`` makes, in the projection's semantics."""
    b = ev.body
    out: list[tuple[str, Any]] = []
    if ev.type == "incident.created":
        out += [("epoch", ev.epoch), ("created_by", ev.actor_user), ("created", ev.ts_ms)]
        out += [(k, b[k]) for k in ("title", "category", "priority")]
        out += [("location", b.get("location")), ("lead_org", b.get("lead_org"))]
        if b.get("tlp") is not None:
            out.append(("tlp", b["tlp"]))
        if b.get("external_ref") is not None:
            out.append(("external_ref", b["external_ref"]))
        if b.get("mode") is not None:
            out.append(("mode", b["mode"]))
        out.append(("status", b.get("status", "reported")))
        out += [(_ORG + org, i) for i, org in enumerate(b["orgs"])]
        out += [(_LIAISON + o, u) for o, u in (b.get("liaisons") or {}).items()]
    elif ev.type == "incident.updated":
        out += [(k, b[k]) for k in _UPDATABLE if b.get(k) is not None]
        out += [(_ORG + org, i) for i, org in enumerate(b.get("add_orgs") or ())]
        out += [(_LIAISON + o, u) for o, u in (b.get("liaisons") or {}).items()]
    elif ev.type == "incident.status_changed":
        out.append(("status", b["status"]))
    return out


def last_seen(
    events: Iterable[StoredEvent], joined: Mapping[str, int]
) -> tuple[int | None, dict[str, int]]:
    """The latest ts of the public events, and per organisation of the restricted ones.

    ``joined``: each organisation's join seq once ``events`` are applied
    (``joined_of`` the header). Whose time an event moves is
    ``audience.updated_orgs``: RED events count for no one, an AMBER
    follow-up of something older than an organisation's joining not for it.
    """
    public: int | None = None
    restricted: dict[str, int] = {}
    for ev in events:
        orgs = updated_orgs(ev, joined)
        if orgs is None:
            public = ev.ts_ms if public is None else max(public, ev.ts_ms)
            continue
        for org in orgs:
            restricted[org] = max(restricted.get(org, 0), ev.ts_ms)
    return public, restricted


def needs_joined(events: Iterable[StoredEvent]) -> bool:
    """Whether ``last_seen`` of ``events`` reads the join seqs (only follow-ups do)."""
    return any(origin_of(ev.seq, ev.type, ev.body) for ev in events)


def joined_of(header: Mapping[str, list[Any]]) -> dict[str, int]:
    """Each organisation's join seq, from a header."""
    return {k[len(_ORG) :]: v[0] for k, v in header.items() if k.startswith(_ORG)}


def wins(key: str, seq: int, current_seq: int | None) -> bool:
    """Whether an assignment at ``seq`` replaces the one stored at ``current_seq``."""
    if current_seq is None:
        return True
    return seq < current_seq if key.startswith(_ORG) else seq > current_seq


def merge(header: Header, events: Iterable[StoredEvent]) -> bool:
    """Apply the events' assignments to ``header`` in place; whether anything changed."""
    changed = False
    for ev in events:
        for key, value in changes(ev):
            current = header.get(key)
            if wins(key, ev.seq, current[0] if current else None):
                header[key] = [ev.seq, value]
                changed = True
    return changed


def orgs_of(header: Mapping[str, list[Any]]) -> list[str]:
    """Participating organisations, in the order they joined."""
    joined = [(v[0], v[1], k[len(_ORG) :]) for k, v in header.items() if k.startswith(_ORG)]
    return [org for _, _, org in sorted(joined)]


def summary(incident: str, header: Mapping[str, list[Any]], seq: int, ts_ms: int) -> dict[str, Any]:
    """The wire summary (SPEC §18) of an incident from its header and head.

    ``ts_ms`` is the reader's ``updated``: the ts of the last event it may see.
    """

    def get(key: str, default: Any = None) -> Any:
        entry = header.get(key)
        return entry[1] if entry else default

    liaisons = sorted(
        (v[0], k[len(_LIAISON) :], v[1]) for k, v in header.items() if k.startswith(_LIAISON)
    )
    return {
        "id": incident,
        "epoch": get("epoch"),
        "seq": seq,
        "title": get("title", ""),
        "external_ref": get("external_ref"),
        "category": get("category", ""),
        "priority": get("priority", "normal"),
        "status": get("status", "reported"),
        "location": get("location"),
        "orgs": orgs_of(header),
        "lead_org": get("lead_org"),
        "liaisons": {org: user for _, org, user in liaisons},
        "tlp": get("tlp", UNLABELLED.value),
        "created_by": get("created_by", ""),
        "created": get("created", 0),
        "updated": ts_ms,
        "mode": get("mode", "actual"),
    }
