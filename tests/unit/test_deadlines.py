"""The deadline rules, receipts and check-ins in the pure domain (no I/O, no clock)."""

from __future__ import annotations

from protocol import v1
from protocol.errors import ErrorCode
from server.domain.audience import Reader, audience, event_meta
from server.domain.deadlines import SYSTEM_ACTOR, DeadlineConfig, awaits_ack, fire, pending
from server.domain.sharing import NoAgreements
from tests.unit.test_domain import (
    DIRECTORY,
    DISPATCH,
    NGO,
    OFFICER,
    OUTREACH,
    POLICE,
    Log,
    inc,
    log,
)

__all__ = ["log"]  # the fixture

CONFIG = DeadlineConfig(urgent_ack_s=60, task_ack_s=120)


def _due(log: Log) -> list[tuple[str, int]]:
    assert log.state is not None
    return [(d.rule, d.subject) for d in pending(log.state, CONFIG, DIRECTORY)]


def test_an_urgent_message_escalates_once_to_the_unacknowledged_orgs(log: Log) -> None:
    msg = log.do(DISPATCH, inc(log, type="message.post", text="Send someone", urgent=True))
    log.do(DISPATCH, inc(log, type="message.post", text="Not urgent"))
    assert log.state is not None
    [deadline] = pending(log.state, CONFIG, DIRECTORY)
    assert (deadline.rule, deadline.subject) == ("ack", msg.seq)
    assert deadline.due_ms == msg.ts_ms + 60_000
    draft = fire(log.state, deadline, DIRECTORY, CONFIG)
    assert draft is not None
    assert draft.type == "escalation.unacknowledged"
    assert (
        draft.client_id
        == deadline.client_id
        == f"dl-ack-{msg.incident}-{msg.seq}-{deadline.due_ms}"
    )
    assert draft.actor_user == SYSTEM_ACTOR
    assert draft.body["orgs"] == [NGO]
    assert draft.body["notify"]["users"] == ["u_n", "u_d"]  # the NGO's liaison, the dispatcher
    assert "text" not in draft.body
    log.store(draft)
    assert _due(log) == []
    assert fire(log.state, deadline, DIRECTORY, CONFIG) is None  # a double fire appends nothing


def test_an_acknowledgement_by_the_addressed_org_meets_the_deadline(log: Log) -> None:
    msg = log.do(DISPATCH, inc(log, type="message.post", text="Hi", urgent=True)).seq
    log.do(DISPATCH, inc(log, type="message.ack", message=msg))  # the author's own: not enough
    assert _due(log) == [("ack", msg)]
    log.do(OUTREACH, inc(log, type="message.ack", message=msg))
    assert _due(log) == []


def test_a_red_escalation_reaches_exactly_the_readers_of_its_message(log: Log) -> None:
    msg = log.do(
        DISPATCH,
        inc(log, type="message.post", text="x", urgent=True, tlp="RED", recipients=["u_o"]),
    )
    assert log.state is not None
    [deadline] = pending(log.state, CONFIG, DIRECTORY)
    draft = fire(log.state, deadline, DIRECTORY, CONFIG)
    assert draft is not None
    ev = log.store(draft)
    ctx, rules = log.state.sharing(), NoAgreements()
    for who in (DISPATCH, OFFICER, OUTREACH):
        reader = Reader(who.org_id, who.user_id)
        seen = audience(event_meta(ev), reader, ctx, rules, 0).visible
        assert seen == audience(event_meta(msg), reader, ctx, rules, 0).visible
        assert seen == (who is not OUTREACH)


def test_tasks_escalate_unaccepted_and_overdue(log: Log) -> None:
    task = log.do(
        DISPATCH,
        inc(log, type="task.create", title="Go", assignee={"org": NGO}, due_in_s=600),
    )
    assert sorted(_due(log)) == [("task_ack", task.seq), ("task_due", task.seq)]
    assert log.state is not None
    assert log.state.tasks[task.seq].due_ms == task.body["due"]
    log.do(OUTREACH, inc(log, type="task.accept", task=task.seq))
    assert _due(log) == [("task_due", task.seq)]
    [deadline] = pending(log.state, CONFIG, DIRECTORY)
    draft = fire(log.state, deadline, DIRECTORY, CONFIG)
    assert draft is not None
    assert draft.type == "escalation.overdue"
    assert draft.body["orgs"] == [NGO]
    log.store(draft)
    assert _due(log) == []


def test_receipts_once_per_person_and_state_for_urgent_items_only(log: Log) -> None:
    msg = log.do(DISPATCH, inc(log, type="message.post", text="Hi", urgent=True)).seq
    plain = log.do(DISPATCH, inc(log, type="message.post", text="Hi")).seq
    assert log.state is not None

    def mark(message: int, state: str = "seen") -> dict[str, object]:
        rid = v1.receipt_id(inc(log)["incident"], "message", message, state)
        return inc(log, type="receipt.mark", id=rid, message=message, state=state)

    ev = log.do(OUTREACH, mark(msg))
    assert ev.type == "receipt.recorded"
    assert log.state.messages[msg].receipts == {"seen": {"u_n": ev.ts_ms}}
    assert log.refuse(OUTREACH, inc(log, type="receipt.mark", message=msg, state="seen")) is (
        ErrorCode.INVALID
    )  # not the receipt's own id
    assert log.refuse(OUTREACH, mark(msg)) is ErrorCode.CONFLICT  # recorded already
    assert log.refuse(DISPATCH, mark(msg)) is ErrorCode.INVALID  # the sender's own
    assert log.refuse(OUTREACH, mark(plain)) is ErrorCode.INVALID  # not urgent


def test_a_check_in_is_missed_escalated_and_resolved(log: Log) -> None:
    pos = {"lat": 51.5, "lon": -0.07}
    start = log.do(OUTREACH, inc(log, type="checkin.start", interval_s=60, position=pos))
    assert _due(log) == [("checkin", start.seq)]
    assert log.refuse(OUTREACH, inc(log, type="checkin.start", interval_s=60)) is ErrorCode.CONFLICT
    ok = log.do(OUTREACH, inc(log, type="checkin.ok"))
    assert log.state is not None
    [deadline] = pending(log.state, CONFIG, DIRECTORY)
    assert deadline.due_ms == ok.body["due"]
    draft = fire(log.state, deadline, DIRECTORY, CONFIG)
    assert draft is not None
    assert draft.type == "checkin.missed"
    assert draft.body["position"] == {**pos, "accuracy_m": None}
    assert draft.body["notify"]["orgs"] == [NGO, POLICE]
    log.store(draft)
    checkin = log.state.checkins[start.seq]
    assert checkin.status == "missed"
    assert _due(log) == []
    assert log.refuse(OFFICER, inc(log, type="checkin.resolve", user="u_n")) is ErrorCode.FORBIDDEN
    log.do(DISPATCH, inc(log, type="checkin.resolve", user="u_n", note="Reached"))
    assert checkin.status == "resolved"
    assert "u_n" not in log.state.open_checkins


def test_duress_is_taken_at_once_and_resolved_by_someone_else(log: Log) -> None:
    raised = log.do(OUTREACH, inc(log, type="checkin.duress"))
    assert raised.body["notify"]["users"] == ["u_n", "u_d"]
    assert log.refuse(OUTREACH, inc(log, type="checkin.duress")) is ErrorCode.CONFLICT
    assert log.refuse(OUTREACH, inc(log, type="checkin.ok")) is ErrorCode.CONFLICT
    assert log.refuse(OUTREACH, inc(log, type="checkin.resolve", user="u_n")) is (
        ErrorCode.FORBIDDEN
    )
    assert _due(log) == []
    log.do(DISPATCH, inc(log, type="checkin.resolve", user="u_n"))
    assert log.state is not None
    assert log.state.checkins[raised.seq].status == "resolved"


def test_a_bounded_projection_keeps_exactly_the_messages_whose_ack_is_due(log: Log) -> None:
    """Trimming old messages (services/projections.py) must not lose a deadline."""
    keep = awaits_ack(CONFIG, DIRECTORY)
    urgent = log.do(DISPATCH, inc(log, type="message.post", text="Send someone", urgent=True)).seq
    met = log.do(DISPATCH, inc(log, type="message.post", text="Seen?", urgent=True)).seq
    log.do(OUTREACH, inc(log, type="message.ack", message=met))
    for i in range(5):
        log.do(DISPATCH, inc(log, type="message.post", text=f"chatter {i}"))
    state = log.state
    assert state is not None
    due_before = pending(state, CONFIG, DIRECTORY)
    state.trim_messages(2, keep)
    assert urgent in state.messages, "its acknowledgement is still due"
    assert met not in state.messages
    assert state.lacks_message(met)
    assert len(state.messages) == 2  # the urgent one and the newest
    assert pending(state, CONFIG, DIRECTORY) == due_before
    log.do(OUTREACH, inc(log, type="message.ack", message=urgent))
    state.trim_messages(1, keep)
    assert urgent not in state.messages, "met: nothing needs it in memory any more"
    assert pending(state, CONFIG, DIRECTORY) == []
