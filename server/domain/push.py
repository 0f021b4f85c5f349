"""What a push notification says: one ``needs_you`` feed entry, shortened.

Pure. The entry was made for one reader by the feed (server/services/feed.py
through ``audience``, the one function of every read path), so it already
holds only what that reader may see; the payload keeps less still (SPEC
section 26): the incident and seq, why, a title and at most ``BODY_CHARS`` of
the visible preview. A push service stores it, and a locked phone shows it,
so nothing else from the event goes in (no ids of people, no positions).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from typing import Any

#: Characters of the preview a notification shows (a lock screen shows ~2 lines).
BODY_CHARS = 120
#: Version of the payload's shape (SPEC section 26).
PAYLOAD_V = 1

_TITLES = {
    "duress": "Duress alarm",
    "checkin": "Missed check-in",
    "escalation": "Escalation",
    "urgent": "Urgent message",
    "task": "Task for you",
    "capacity": "Capacity request",
    "mention": "You were mentioned",
}
#: Reasons a push service should deliver at once, waking the device (RFC 8030 5.3).
_HIGH = frozenset({"duress", "checkin", "escalation", "urgent"})


def reason_of(entry: Mapping[str, Any]) -> str:
    """The entry's most pressing reason (``_TITLES`` order)."""
    reasons = entry.get("reasons") or ()
    return next((r for r in _TITLES if r in reasons), "mention")


def urgency(entry: Mapping[str, Any]) -> str:
    """The ``Urgency`` header: high for alarms and urgent messages, else normal."""
    return "high" if reason_of(entry) in _HIGH else "normal"


def topic(entry: Mapping[str, Any]) -> str:
    """The ``Topic`` header (RFC 8030 5.4): the same for a re-sent push of the
    same entry, so a push service keeps one of the two. 32 base64url characters."""
    key = f"{entry['incident']}:{entry['seq']}".encode()
    return base64.urlsafe_b64encode(hashlib.sha256(key).digest()[:24]).decode()


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= BODY_CHARS else text[: BODY_CHARS - 1] + "…"


def _body(entry: Mapping[str, Any], reason: str) -> str:
    author = (entry.get("author") or {}).get("name") or ""
    if reason in ("urgent", "mention"):
        preview = _short(str(entry.get("text") or ""))
        return f"{author}: {preview}" if author and preview else preview or author
    if reason == "task":
        return _short(str(entry.get("title") or "A task was assigned to you"))
    if reason == "capacity":
        # The items asked for stay out: a count of beds says nothing a lock
        # screen needs, and the organisation reads the request when it opens it.
        if author:
            return f"{author}: asks your organisation for capacity"
        return "Your organisation is asked for capacity"
    if reason == "duress":
        return "A field worker raised a duress alarm"
    if reason == "checkin":
        return "A field worker did not check in on time"
    return "An urgent message or task was not acknowledged in time"


def payload(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The notification for a ``needs_you`` entry (SPEC section 26)."""
    reason = reason_of(entry)
    incident, seq = str(entry["incident"]), int(entry["seq"])
    return {
        "v": PAYLOAD_V,
        "incident": incident,
        "seq": seq,
        "reason": reason,
        "title": _TITLES[reason],
        "body": _body(entry, reason),
        "tag": f"{incident}:{seq}",
        "url": f"/#/incident/{incident}",
    }
