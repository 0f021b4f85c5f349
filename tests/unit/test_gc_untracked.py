"""What a projection keeps per message is invisible to the garbage collector.

A node keeps up to ``LIAISON_PROJECTION_MESSAGES`` messages per cached
incident; each collector pass walks every tracked object it is given, with the
GIL held (a 140 ms pass under workload C when messages were dataclasses). So a
plain message and its EventMeta are untracked (msgspec ``gc=False``), and so
is what they hold. That is safe only while none of them can reach itself: the
collector would never free such a cycle. Both are checked here, on messages
every event type has touched, and ``PauseTimer`` that reports the passes.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

from protocol import v1
from server import gc_tuning
from server.domain.audience import EventMeta
from server.domain.deadlines import DeadlineConfig, fire, pending
from server.domain.incident import MessageState
from tests.unit.test_domain import DIRECTORY, DISPATCH, NGO, OUTREACH, Log, inc, log

__all__ = ["log"]  # the fixture


def _reachable(root: object) -> Iterator[object]:
    """Every object ``root`` refers to, directly or not (not ``root`` unless in a cycle)."""
    seen: set[int] = set()
    todo = list(gc.get_referents(root))
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue  # a class (an enum's, say) is shared by all, never a message's own
        seen.add(id(obj))
        yield obj
        todo.extend(gc.get_referents(obj))


def _busy_incident(log: Log) -> tuple[int, int]:
    """A plain message, and one that was mentioned, acked, edited, seen and escalated."""
    plain = log.do(DISPATCH, inc(log, type="message.post", text="Plain words")).seq
    busy = log.do(
        DISPATCH,
        inc(log, type="message.post", text="Need a hand", urgent=True, mentions={"orgs": [NGO]}),
    ).seq
    log.do(DISPATCH, inc(log, type="message.edit", message=busy, text="Need two hands"))
    rid = v1.receipt_id(inc(log)["incident"], "message", busy, "seen")
    log.do(OUTREACH, inc(log, type="receipt.mark", id=rid, message=busy, state="seen"))
    assert log.state is not None
    config = DeadlineConfig(urgent_ack_s=60, task_ack_s=120)
    [deadline] = pending(log.state, config, DIRECTORY)
    draft = fire(log.state, deadline, DIRECTORY, config)
    assert draft is not None
    log.store(draft)
    log.do(OUTREACH, inc(log, type="message.ack", message=busy))
    return plain, busy


def test_a_plain_message_adds_nothing_for_the_collector_to_walk(log: Log) -> None:
    plain, _ = _busy_incident(log)
    assert log.state is not None
    msg = log.state.messages[plain]
    gc.collect()  # untracks the tuples of strings it holds, as every pass does
    assert not gc.is_tracked(msg)
    assert not gc.is_tracked(msg.meta)
    tracked = [o for o in _reachable(msg) if gc.is_tracked(o)]
    # Shared by every message: the empty set of protected fields and the label.
    tracked = [o for o in tracked if o is not msg.meta.protected and o is not msg.meta.label]
    assert tracked == [], tracked


def test_no_message_state_or_meta_can_reach_itself(log: Log) -> None:
    """msgspec's condition for gc=False, on every field an event sets."""
    _, busy = _busy_incident(log)
    assert log.state is not None
    msg = log.state.messages[busy]
    assert msg.mention_orgs == (NGO,)
    assert msg.receipts
    assert msg.escalations
    assert msg.acks
    wire: dict[str, Any] = msg.to_wire()
    assert wire["mentions"] == {"users": [], "orgs": [NGO]}
    assert wire["escalations"] == list(msg.escalations)
    for state in log.state.messages.values():
        for root in (state, state.meta):
            assert all(o is not root for o in _reachable(root)), type(root)
            assert not any(isinstance(o, MessageState) for o in _reachable(root))
        assert not any(isinstance(o, EventMeta) and o is not state.meta for o in _reachable(state))


def test_the_pause_timer_reports_each_collection_while_installed() -> None:
    seen: list[tuple[int, float]] = []
    timer = gc_tuning.PauseTimer(lambda generation, s: seen.append((generation, s)))
    timer.install()
    try:
        gc.collect()
        gc.collect(0)
    finally:
        timer.remove()
    assert [g for g, _ in seen[-2:]] == [2, 0]
    assert all(s >= 0 for _, s in seen)
    count = len(seen)
    gc.collect()
    assert len(seen) == count  # removed: no longer called
    timer.remove()  # a second remove is harmless
