"""Reading exercise mode and written-at off an envelope (SPEC 8.0, 28).

if is_exercise(env): ...            # never act on a drill as if it were live
note = written_note(env)            # "written 19:05 · delivered 19:25 (offline)"
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

#: Written and stored further apart than this (ms): the post waited in an outbox.
WRITTEN_NOTE_AFTER_MS = 60_000


def mode_of(env: dict[str, Any]) -> str:
    """``actual``, ``exercise`` or ``test``: an envelope's body says so unless live."""
    body = env.get("body") or {}
    mode = body.get("mode") if isinstance(body, dict) else None
    return mode if isinstance(mode, str) else "actual"


def is_exercise(env: dict[str, Any]) -> bool:
    """Whether the event belongs to an exercise or a test incident."""
    return mode_of(env) != "actual"


def written_note(env: dict[str, Any]) -> str | None:
    """The written/delivered note (UTC) of an event written over a minute before it was stored."""
    body = env.get("body") or {}
    written, ts = body.get("written_at"), env.get("ts")
    if not isinstance(written, int) or not isinstance(ts, int):
        return None
    if ts - written <= WRITTEN_NOTE_AFTER_MS:
        return None
    return f"written {_hhmm(written)} · delivered {_hhmm(ts)} (offline)"


def _hhmm(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M")
