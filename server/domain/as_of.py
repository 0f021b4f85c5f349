"""An incident as it stood at a moment: the one computation the replay and reports share.

``view_as_of`` folds the log up to a seq into a new ``IncidentState`` and
renders it for a reader, judged with the incident's *current* sharing
context, exactly as the timeline judges each event (rest.py): the replay
folds the timeline's envelopes and shows the same thing. ``seq_at`` turns a
time into a seq from the events the reader may see only, so that asking for
moments cannot find the time of an event the reader gets as a placeholder
(SPEC 18: a restricted event's time is not told).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from server.domain.audience import Reader, event_meta
from server.domain.events import StoredEvent
from server.domain.incident import IncidentState, Sight
from server.domain.sharing import AgreementsView


def state_as_of(
    incident: str, epoch: str, events: Iterable[StoredEvent], seq: int
) -> IncidentState:
    """The projection of the events up to and including ``seq`` (seq order)."""
    state = IncidentState(id=incident, epoch=epoch)
    for ev in events:
        if ev.seq > seq:
            break
        state.apply(ev)
    return state


def seq_at(events: Iterable[StoredEvent], sight: Sight, at_ms: int) -> int:
    """The seq of the last event at or before ``at_ms`` that the reader may see (0: none)."""
    seq = 0
    for ev in events:
        if ev.ts_ms > at_ms:
            break
        if sight.of(event_meta(ev)).visible:
            seq = ev.seq
    return seq


def view_as_of(
    current: IncidentState,
    events: list[StoredEvent],
    reader: Reader | None,
    rules: AgreementsView,
    now_ms: int,
    *,
    seq: int | None = None,
    at_ms: int | None = None,
) -> dict[str, Any]:
    """The incident view at ``seq`` (or at the time ``at_ms``) as ``reader`` may see it.

    ``events`` are the log from seq 1 up to at least the moment asked for.
    The answer is the view of SPEC 18 plus ``as_of``: ``{seq, ts, at}``, where
    ``ts`` is the time of the last event the reader sees at or before ``seq``.
    """
    sight = Sight(reader, current.sharing(), rules, now_ms)
    if seq is None:
        seq = seq_at(events, sight, at_ms if at_ms is not None else now_ms)
    state = state_as_of(current.id, current.epoch, events, seq)
    # Judged with the current sharing context, as the timeline is.
    view = state.view(Sight(reader, current.sharing(), rules, now_ms))
    seen = [ev.ts_ms for ev in events if ev.seq <= seq and sight.of(event_meta(ev)).visible]
    view["as_of"] = {"seq": seq, "ts": seen[-1] if seen else None, "at": at_ms}
    return view
