"""Exercise mode and written-at in the pure domain (SPEC 8.0, 28).

written_at: clamped a little ahead, refused far ahead or too old, stored in
the body (so chained), never the authoritative time. Mode: set at creation,
on every event of an exercise (system ones too), never changed, kept out of
the live KPIs unless asked for.
"""

from __future__ import annotations

from typing import Any

import pytest

from protocol import v1
from protocol.errors import ErrorCode, ProtocolError
from server.domain import chain
from server.domain.audience import Reader, audience, event_meta
from server.domain.deadlines import DeadlineConfig, fire, pending
from server.domain.decide import decide, decide_create
from server.domain.events import EventDraft, StoredEvent
from server.domain.feed import index_entries
from server.domain.incident import IncidentState
from server.domain.kpis import by_mode, incident_facts, to_csv_rows
from server.domain.modes import (
    WRITTEN_AHEAD_MS,
    WRITTEN_MAX_AGE_MS,
    checked_written_at,
    written_note,
)
from server.domain.sharing import NoAgreements
from server.domain.summary import merge, summary
from server.services.envelope import envelope
from server.services.export import describe
from tests.unit.test_domain import DIRECTORY, DISPATCH, NGO, OUTREACH, Log

NOW = 1_767_225_600_000  # 2026-01-01 00:00 UTC


class ClockLog(Log):
    """The domain's test log, deciding at a chosen server time."""

    def __init__(self, now: int = NOW) -> None:
        super().__init__()
        self.now = now

    def do(self, who: Any, command: dict[str, Any]) -> StoredEvent:
        cmd = v1.parse_command({"id": f"c{len(self.events)}", **command})
        if isinstance(cmd, v1.IncidentCreate):
            return self.store(decide_create(who, cmd, DIRECTORY, self.now))
        assert self.state is not None
        return self.store(decide(self.state, who, cmd, DIRECTORY, self.rules, self.now))

    def store(self, d: EventDraft) -> StoredEvent:
        epoch = d.epoch or self.events[0].epoch
        ev = chain.sequence_draft(d, epoch, len(self.events), self.prev, self.now)
        self.prev = ev.hash
        if self.state is None:
            self.state = IncidentState(id=d.incident, epoch=epoch)
        self.state.apply(ev)
        self.events.append(ev)
        return ev


def opened(mode: str | None = None) -> ClockLog:
    log = ClockLog()
    cmd: dict[str, Any] = {"type": "incident.create", "title": "Drill", "category": "welfare"}
    cmd |= {"orgs": [NGO], "liaisons": {NGO: "u_n"}}
    if mode is not None:
        cmd["mode"] = mode
    log.do(DISPATCH, cmd)
    return log


def post(log: ClockLog, **fields: Any) -> dict[str, Any]:
    assert log.state is not None
    return {"type": "message.post", "incident": log.state.id, "text": "hi", **fields}


# ------------------------------------------------------------------ written_at


def test_written_at_is_kept_clamped_or_refused() -> None:
    assert checked_written_at(None, NOW) is None
    assert checked_written_at(NOW - 20 * 60_000, NOW) == NOW - 20 * 60_000
    # A clock a little ahead is believed up to the server's own time.
    assert checked_written_at(NOW + WRITTEN_AHEAD_MS, NOW) == NOW
    for value, reason in (
        (NOW + WRITTEN_AHEAD_MS + 1, "future"),
        (NOW - WRITTEN_MAX_AGE_MS - 1, "too_old"),
    ):
        with pytest.raises(ProtocolError) as err:
            checked_written_at(value, NOW)
        assert err.value.code is ErrorCode.INVALID
        assert err.value.detail == {"field": "written_at", "reason": reason}


def test_a_post_written_offline_carries_its_time_and_ts_stays_the_servers() -> None:
    log = opened()
    ev = log.do(OUTREACH, post(log, written_at=NOW - 20 * 60_000))
    assert ev.body["written_at"] == NOW - 20 * 60_000
    assert ev.ts_ms == NOW
    assert chain.event_digest(ev) == ev.digest  # in the body, so in the chain
    assert log.state is not None
    assert log.state.messages[ev.seq].to_wire()["written_at"] == NOW - 20 * 60_000
    ahead = log.do(OUTREACH, post(log, written_at=NOW + 1_000))
    assert ahead.body["written_at"] == NOW
    plain = log.do(OUTREACH, post(log))
    assert "written_at" not in plain.body


def test_an_absurd_written_at_is_refused_with_a_typed_error() -> None:
    log = opened()
    with pytest.raises(ProtocolError) as err:
        log.do(OUTREACH, post(log, written_at=NOW + 86_400_000))
    assert err.value.to_wire()["code"] == "invalid"
    assert err.value.to_wire()["detail"]["field"] == "written_at"
    with pytest.raises(ProtocolError):
        v1.parse_command(post(log, id="x", written_at="19:05"))


def test_the_note_shows_only_when_written_and_delivered_differ_by_over_a_minute() -> None:
    assert written_note(NOW - 60_000, NOW) is None
    assert written_note(None, NOW) is None
    assert written_note(NOW - 20 * 60_000, NOW) == "written 23:40 · delivered 00:00 (offline)"
    log = opened()
    ev = log.do(OUTREACH, post(log, written_at=NOW - 20 * 60_000))
    assert describe(envelope(ev)) == "hi (written 23:40 · delivered 00:00 (offline))"


# ------------------------------------------------------------------------ mode


def test_every_event_of_an_exercise_says_so_and_a_live_one_carries_nothing() -> None:
    live = opened()
    assert "mode" not in live.events[0].body
    assert "mode" not in live.do(OUTREACH, post(live)).body
    drill = opened("exercise")
    assert drill.state is not None
    assert drill.state.mode == "exercise"
    msg = drill.do(OUTREACH, post(drill, urgent=True))
    assert [e.body.get("mode") for e in drill.events] == ["exercise", "exercise"]
    assert drill.state.summary()["mode"] == "exercise"
    assert describe(envelope(msg)).startswith("[EXERCISE] ")


def test_the_index_summary_and_the_projection_agree_on_the_mode() -> None:
    for mode in ("actual", "exercise", "test"):
        log = opened(mode)
        header: dict[str, list[Any]] = {}
        merge(header, log.events)
        assert log.state is not None
        assert summary(log.state.id, header, 1, NOW)["mode"] == log.state.summary()["mode"] == mode


def test_a_mode_is_never_changed() -> None:
    log = opened("exercise")
    assert log.state is not None
    for mode in ("actual", "test"):
        with pytest.raises(ProtocolError) as err:
            log.do(DISPATCH, {"type": "incident.update", "incident": log.state.id, "mode": mode})
        assert err.value.code is ErrorCode.INVALID
        assert err.value.detail is not None
        assert err.value.detail["reason"] == "immutable"
    # Saying the mode it has is no change at all.
    with pytest.raises(ProtocolError, match="nothing to update"):
        log.do(DISPATCH, {"type": "incident.update", "incident": log.state.id, "mode": "exercise"})
    with pytest.raises(ProtocolError):
        v1.parse_command(
            {"type": "incident.create", "id": "x", "title": "t", "category": "c", "mode": "Live"}
        )


def test_an_exercises_escalations_and_feed_entries_carry_the_mode() -> None:
    log = opened("exercise")
    assert log.state is not None
    msg = log.do(DISPATCH, post(log, urgent=True, mentions={"orgs": [NGO]}))
    due = [d for d in pending(log.state, DeadlineConfig(), DIRECTORY) if d.subject == msg.seq]
    assert due, "an urgent message has a deadline"
    draft = fire(log.state, due[0], DIRECTORY, DeadlineConfig())
    assert draft is not None
    assert draft.body["mode"] == "exercise"
    reader = Reader(org=NGO, user="u_n")
    aud = audience(event_meta(msg), reader, log.state.sharing(), NoAgreements(), NOW)
    entries = index_entries(msg, aud, reader, log.state.joined, None)
    assert entries
    assert all(e["mode"] == "exercise" for e in entries)


# ------------------------------------------------------------------------ KPIs


def _facts(mode: str | None) -> Any:
    log = opened(mode)
    assert log.state is not None
    msg = log.do(DISPATCH, post(log, urgent=True, mentions={"orgs": [NGO]}))
    log.now += 30_000
    log.do(OUTREACH, {"type": "message.ack", "incident": log.state.id, "message": msg.seq})
    reader = Reader(org="police", user="u_d")
    return incident_facts(log.events, log.state.sight(reader, NoAgreements(), NOW).of)


def test_kpis_leave_exercises_out_and_count_them_apart_when_asked() -> None:
    facts = [_facts(None), _facts("exercise"), _facts("test")]
    live = by_mode(facts)
    assert live["incidents"] == 1
    assert live["exercises_excluded"] == 2
    assert "exercises" not in live
    assert live["acknowledgement"][0]["count"] == 1
    both = by_mode(facts, include_exercises=True)
    assert both["incidents"] == 1
    assert both["exercises"]["incidents"] == 2
    assert both["exercises"]["acknowledgement"][0]["count"] == 2
    rows = to_csv_rows(both)
    assert ("exercises_excluded", "", "count", 2) in rows
    assert ("exercises.incidents", "", "count", 2) in rows
