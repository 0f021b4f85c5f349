"""Feed entries: what one event means for one reader's cross-incident feed.

Pure: given an event, the audience its reader has for it (decided by
``audience.audience``, the one function of every read path) and the
incident's state, the index-level entries it makes (SPEC section 24):

================== ==========================================================
``incident.opened`` an incident the reader's organisation takes part in was
                    created; carries the summary.
``org.added``       the reader's organisation was added to an incident;
                    carries the summary.
``incident.changed`` title, status, priority, category, location, lead, label,
                    organisations or liaisons changed; carries the changes.
``needs_you``       an urgent message, a mention of the reader or its
                    organisation, a task assigned to either, a capacity
                    request to its organisation, an escalation, missed
                    check-in or duress alarm that names either in its
                    ``notify``; carries a preview.
================== ==========================================================

An event the reader may not see makes **no entry at all** (not even a
content-free "incident changed"): the feed is ordered by commit time across
incidents, so an entry at a position tells *when* a restricted event was
written, which the incident index takes care never to tell (SPEC section 18,
``updated``). The reader's own actions never "need" it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.domain.audience import Audience, Reader, redact_body
from server.domain.events import StoredEvent
from server.domain.summary import changes

OPENED = "incident.opened"
ORG_ADDED = "org.added"
CHANGED = "incident.changed"
NEEDS_YOU = "needs_you"
#: Every event the reader may see, as the timeline shows it (for bots).
EVENT = "event"
KINDS = frozenset({OPENED, ORG_ADDED, CHANGED, NEEDS_YOU, EVENT})
#: What a reader gets without ``kinds``: the index-level entries.
DEFAULT_KINDS = KINDS - {EVENT}

#: Characters of a message's text a ``needs_you`` entry previews.
PREVIEW_CHARS = 280

#: Header keys (summary.changes) that are summary fields of the same name.
_FIELDS = frozenset({"title", "category", "priority", "location", "lead_org", "tlp", "status"})


def index_entries(
    ev: StoredEvent,
    aud: Audience,
    reader: Reader,
    joined: Mapping[str, int],
    summary: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """The index-level entries ``ev`` makes for ``reader`` (without their cursor).

    ``joined``: each organisation's join seq (the incident's state at or after
    ``ev``); ``summary``: the incident's summary as of ``ev`` (``opens``), so
    an entry is the same however late it is read.
    """
    if not aud.visible:
        return []
    base: dict[str, Any] = {"incident": ev.incident, "seq": ev.seq, "ts": ev.ts_ms}
    if "mode" in ev.body:  # an exercise's or a test's entries say so (SPEC 28)
        base["mode"] = ev.body["mode"]
    if opens(ev, reader, joined):
        kind = OPENED if ev.type == "incident.created" else ORG_ADDED
        return [{"kind": kind, **base, "summary": dict(summary or {})}]
    if ev.type in ("incident.updated", "incident.status_changed"):
        changed = _changes(ev)
        return [{"kind": CHANGED, **base, "changes": changed}] if changed else []
    if ev.actor_user == reader.user:
        return []
    need = _need(ev, aud, reader)
    return [{"kind": NEEDS_YOU, **base, **need}] if need else []


def opens(ev: StoredEvent, reader: Reader, joined: Mapping[str, int]) -> bool:
    """Whether ``ev`` brings the incident to the reader's organisation (an entry
    with the summary): its creation, or the update that added the organisation."""
    return ev.type == "incident.created" or (
        ev.type == "incident.updated" and joined.get(reader.org) == ev.seq
    )


def _changes(ev: StoredEvent) -> dict[str, Any]:
    """The summary fields an ``incident.*`` event sets, in wire form."""
    out: dict[str, Any] = {}
    for key, value in changes(ev):
        if key in _FIELDS:
            out[key] = value
        elif key.startswith("org:"):
            out.setdefault("orgs_added", []).append(key[len("org:") :])
        elif key.startswith("liaison:"):
            out.setdefault("liaisons", {})[key[len("liaison:") :]] = value
    return out


def _need(ev: StoredEvent, aud: Audience, reader: Reader) -> dict[str, Any] | None:
    """Why ``ev`` needs ``reader``, with what the reader may read of it; None if it does not."""
    body = redact_body(ev.type, ev.body, aud)
    author = {"user": ev.actor_user, "org": ev.actor_org, "name": ev.actor_name}
    if ev.type == "message.posted":
        mentions = body.get("mentions") or {}
        reasons = []
        if body.get("urgent"):
            reasons.append("urgent")
        if reader.user in (mentions.get("users") or ()) or reader.org in (
            mentions.get("orgs") or ()
        ):
            reasons.append("mention")
        if not reasons:
            return None
        text = str(body.get("text", ""))
        return {
            "reasons": reasons,
            "message": ev.seq,
            "text": text[:PREVIEW_CHARS],
            "author": author,
        }
    if ev.type in ("task.created", "task.assigned"):
        assignee = body.get("assignee") or {}
        if assignee.get("user") != reader.user and (
            assignee.get("org") != reader.org or assignee.get("user") not in (None, reader.user)
        ):
            return None
        task = ev.seq if ev.type == "task.created" else body.get("task")
        return {"reasons": ["task"], "task": task, "title": body.get("title"), "author": author}
    if ev.type == "capacity.requested" and body.get("org") == reader.org:
        return {
            "reasons": ["capacity"],
            "request": ev.seq,
            "items": body.get("items"),
            "author": author,
        }
    if ev.type in ALARMS:
        return _alarm(ev, body, reader, author)
    return None


#: Events that name who they concern in ``notify`` ({users, orgs}), and the
#: reason a ``needs_you`` entry gives for each.
ALARMS = {
    "escalation.unacknowledged": "escalation",
    "escalation.overdue": "escalation",
    "checkin.missed": "checkin",
    "checkin.duress": "duress",
}


def _alarm(
    ev: StoredEvent, body: Mapping[str, Any], reader: Reader, author: dict[str, Any]
) -> dict[str, Any] | None:
    """An escalation or alarm for the reader (named, or its organisation), by
    subject only: the entry quotes nothing of the message or task it is about."""
    notify = body.get("notify") or {}
    if reader.user not in (notify.get("users") or ()) and reader.org not in (
        notify.get("orgs") or ()
    ):
        return None
    need: dict[str, Any] = {"reasons": [ALARMS[ev.type]], "type": ev.type, "author": author}
    for key in ("message", "task", "checkin", "user"):
        if body.get(key) is not None:
            need[key] = body[key]
    if ev.type.startswith("checkin."):
        need["user"] = body.get("user", ev.actor_user)
    return need
