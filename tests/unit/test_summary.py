"""Index headers (server/domain/summary.py) agree with the projection, in any merge order."""

from __future__ import annotations

import random
from typing import Any

from server.domain import summary
from server.domain.events import StoredEvent
from server.domain.incident import IncidentState


def event(seq: int, kind: str, body: dict[str, Any], ts: int = 0) -> StoredEvent:
    return StoredEvent(
        incident="inc", seq=seq, epoch="ep", type=kind, ts_ms=ts or 1000 + seq,
        actor_user="u", actor_org="o1", actor_name="U", client_id=f"c{seq}",
        visibility=None, body=body, digest="d", hash="h",
    )  # fmt: skip


def history(rng: random.Random, length: int) -> list[StoredEvent]:
    created = {
        "title": "t0", "category": "c", "priority": "normal", "orgs": ["o1", "o2"],
        "lead_org": "o1", "liaisons": {"o1": "u1"}, "location": None,
    }  # fmt: skip
    events = [event(1, "incident.created", created)]
    for seq in range(2, length + 2):
        roll = rng.random()
        if roll < 0.3:
            body: dict[str, Any] = {"status": rng.choice(["active", "contained", "closed"])}
            events.append(event(seq, "incident.status_changed", body))
        elif roll < 0.6:
            body = {
                "title": rng.choice([None, f"t{seq}"]),
                "priority": rng.choice([None, "high", "urgent"]),
                "add_orgs": rng.sample(["o1", "o3", "o4", "o5"], rng.randint(0, 2)),
                "liaisons": {rng.choice(["o1", "o3"]): f"u{seq}"},
            }
            events.append(event(seq, "incident.updated", body))
        else:
            events.append(event(seq, "message.posted", {"text": "x"}))
    return events


def test_header_in_any_merge_order_is_the_projection() -> None:
    rng = random.Random(7)
    for _ in range(200):
        events = history(rng, rng.randint(0, 12))
        state = IncidentState(id="inc", epoch="ep")
        for ev in events:
            state.apply(ev)
        header_events = [e for e in events if e.type in summary.HEADER_TYPES]
        rng.shuffle(header_events)  # nodes merge their own runs in whatever order
        header: summary.Header = {}
        for ev in header_events:
            summary.merge(header, [ev])
        summary.merge(header, header_events[: len(header_events) // 2])  # repeats: idempotent
        got = summary.summary("inc", header, events[-1].seq, events[-1].ts_ms)
        assert got == state.summary()
        assert got["orgs"] == state.orgs, "organisations keep the order they joined in"
