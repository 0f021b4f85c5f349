"""Exercise mode and written-at: two stamps every event body may carry (SPEC 8.0, 28).

``mode`` (after CAP's ``status``: Actual / Exercise / Test) is chosen when an
incident is opened and never changes. A live incident's events carry no
``mode`` at all (absent means ``actual``, so every event stored before modes
existed reads as live); every event of an exercise or a test carries it, so
a single event seen out of context (a webhook delivery, an export line)
still says it is not real.

``written_at`` is when the author wrote the command, by the client's clock:
a post written in a tunnel at 19:05 is stored at 19:25 and shown as
"written 19:05 · delivered 19:25 (offline)". The server's ``ts`` stays the
authoritative time (ordering, deadlines, KPIs); ``written_at`` is
information, and both live in the body, so the hash chain commits to it
with no change to any verifier (section 14).

Client clocks are wrong: a little ahead is clamped to the server's time (a
post is never "written" after it was stored); far ahead, or older than any
outbox plausibly keeps a post, is refused as ``invalid`` with
``detail.field = "written_at"`` (a client then sends it again without).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from protocol import v1
from protocol.errors import ErrorCode, ProtocolError
from server.domain.events import EventDraft

#: How far ahead of the server a client clock may be and still be believed
#: (clamped to the server's time). Phones set by the network are within
#: seconds; one set by hand can be minutes off.
WRITTEN_AHEAD_MS = 5 * 60_000
#: The oldest written-at accepted: a week, the longest a phone plausibly
#: keeps a post queued (a shift, a weekend out of coverage).
WRITTEN_MAX_AGE_MS = 7 * 86_400_000


def checked_written_at(written_at: int | None, now_ms: int) -> int | None:
    """``written_at`` as stored: clamped to ``now_ms``; refused when absurd."""
    if written_at is None:
        return None
    if written_at > now_ms + WRITTEN_AHEAD_MS:
        raise _out_of_range("future", f"more than {WRITTEN_AHEAD_MS // 1000} s ahead of the server")
    if written_at < now_ms - WRITTEN_MAX_AGE_MS:
        raise _out_of_range("too_old", f"older than {WRITTEN_MAX_AGE_MS // 86_400_000} days")
    return min(written_at, now_ms)


def _out_of_range(reason: str, why: str) -> ProtocolError:
    return ProtocolError(
        ErrorCode.INVALID,
        f"written_at: {why}; send it again without written_at",
        {"field": "written_at", "reason": reason},
    )


def stamped(draft: EventDraft, mode: str, written_at: int | None) -> EventDraft:
    """The draft with ``mode`` (when not live) and ``written_at`` (when given) in its body."""
    if mode == v1.LIVE_MODE and written_at is None:
        return draft
    body = dict(draft.body)
    if mode != v1.LIVE_MODE:
        body["mode"] = mode
    if written_at is not None:
        body["written_at"] = written_at
    return replace(draft, body=body)


def mode_of(body: dict[str, object]) -> str:
    """The mode an event's body says (absent: live)."""
    mode = body.get("mode")
    return mode if isinstance(mode, str) and mode in v1.MODES else v1.LIVE_MODE


def is_live(mode: str | None) -> bool:
    return mode in (None, v1.LIVE_MODE)


#: Written and stored further apart than this: the post waited somewhere
#: (an outbox offline), and readers are told (SPEC 8.0).
WRITTEN_NOTE_AFTER_MS = 60_000


def written_note(written_at: object, ts_ms: int) -> str | None:
    """``written 19:05 · delivered 19:25 (offline)`` (UTC) when the two differ by over a minute."""
    if not isinstance(written_at, int) or ts_ms - written_at <= WRITTEN_NOTE_AFTER_MS:
        return None
    return f"written {_hhmm(written_at)} · delivered {_hhmm(ts_ms)} (offline)"


def _hhmm(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M")


def banner(mode: str | None) -> str | None:
    """The banner an exercise or a test carries everywhere it is shown; None when live."""
    if is_live(mode):
        return None
    return f"{str(mode).upper()}: not a live incident"
