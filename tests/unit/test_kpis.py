"""KPIs against a hand-computed fixture (SPEC 18.2).

Three scripted incidents with chosen times; every expected figure below is
worked out by hand in the comments, for the police and for the NGO, which
must not see anything of the police-only task or escalation.
"""

from __future__ import annotations

from typing import Any

from server.domain.audience import Reader
from server.domain.events import EventDraft, StoredEvent
from server.domain.kpis import aggregate, to_csv_rows
from server.domain.sharing import NoAgreements
from server.services.kpis import facts_for
from tests.unit.test_domain import DISPATCH, NGO, OFFICER, OUTREACH, POLICE, Log

S = 1000  # ms per second


class Clock:
    """The log's clock, set by the script: every event of a step gets ``now``."""

    def __init__(self) -> None:
        self.now = 0

    def __iter__(self) -> Clock:
        return self

    def __next__(self) -> int:
        return self.now


def _log(clock: Clock) -> Log:
    log = Log()
    log.ts = clock  # type: ignore[assignment]  # a settable clock for itertools.count
    return log


def _at(clock: Clock, seconds: int) -> None:
    clock.now = seconds * S


def _create(log: Log, cat: str, prio: str, orgs: list[str], cid: str) -> str:
    ev = log.do(
        DISPATCH,
        {
            "type": "incident.create",
            "id": cid,
            "title": cid,
            "category": cat,
            "priority": prio,
            "orgs": orgs,
        },
    )
    return ev.incident


def _raw(log: Log, kind: str, visibility: tuple[str, ...] | None) -> None:
    """An event another part of the server appends (escalation and check-in rules)."""
    inc = log.events[0].incident
    log.store(
        EventDraft(
            inc,
            kind,
            "u_system",
            POLICE,
            "Rules",
            f"r-{len(log.events)}",
            visibility,
            {"tlp": "AMBER"},
        )
    )


def incident_a(clock: Clock) -> list[StoredEvent]:
    log = _log(clock)
    _at(clock, 0)
    inc = _create(log, "welfare", "high", [NGO], "a")
    _at(clock, 10)
    m = log.do(
        DISPATCH,
        {
            "type": "message.post",
            "incident": inc,
            "text": "Need you",
            "urgent": True,
            "mentions": {"orgs": [NGO]},
        },
    ).seq
    _at(clock, 70)  # NGO acknowledges after 60 s
    log.do(OUTREACH, {"type": "message.ack", "incident": inc, "message": m})
    _at(clock, 100)
    t = log.do(
        DISPATCH, {"type": "task.create", "incident": inc, "title": "Go", "assignee": {"org": NGO}}
    ).seq
    _at(clock, 160)  # accepted after 60 s
    log.do(OUTREACH, {"type": "task.accept", "incident": inc, "task": t})
    _at(clock, 200)
    p = log.do(
        DISPATCH,
        {
            "type": "task.create",
            "incident": inc,
            "title": "PNC check",
            "visibility": [POLICE],
            "assignee": {"user": OFFICER.user_id},
        },
    ).seq
    _at(clock, 230)  # the police-only task: accepted after 30 s
    log.do(OFFICER, {"type": "task.accept", "incident": inc, "task": p})
    _at(clock, 460)  # done 300 s after acceptance
    log.do(OUTREACH, {"type": "task.complete", "incident": inc, "task": t})
    _at(clock, 500)
    _raw(log, "escalation.fired", (POLICE,))
    _raw(log, "checkin.missed", None)
    _at(clock, 600)  # resolved 600 s after creation
    log.do(DISPATCH, {"type": "incident.status", "incident": inc, "status": "resolved"})
    return log.events


def incident_b(clock: Clock) -> list[StoredEvent]:
    log = _log(clock)
    _at(clock, 1000)
    inc = _create(log, "welfare", "normal", [NGO], "b")
    _at(clock, 1010)  # urgent, mentions the NGO, never acknowledged
    log.do(
        DISPATCH,
        {
            "type": "message.post",
            "incident": inc,
            "text": "Anyone?",
            "urgent": True,
            "mentions": {"orgs": [NGO]},
        },
    )
    _at(clock, 1020)
    t = log.do(
        DISPATCH,
        {"type": "task.create", "incident": inc, "title": "Blanket", "assignee": {"org": NGO}},
    ).seq
    _at(clock, 1140)
    log.do(OUTREACH, {"type": "task.decline", "incident": inc, "task": t})
    _at(clock, 1150)
    # raised to high before it is resolved: counted under welfare/high
    log.do(DISPATCH, {"type": "incident.update", "incident": inc, "priority": "high"})
    _at(clock, 1200)  # resolved 200 s after creation
    log.do(DISPATCH, {"type": "incident.status", "incident": inc, "status": "resolved"})
    _at(clock, 1300)
    _raw(log, "checkin.ok", None)
    _at(clock, 1400)  # a change after resolution does not move its group
    log.do(DISPATCH, {"type": "incident.update", "incident": inc, "priority": "low"})
    return log.events


def incident_c(clock: Clock) -> list[StoredEvent]:
    """Police alone, never resolved."""
    log = _log(clock)
    _at(clock, 2000)
    inc = _create(log, "theft", "low", [], "c")
    _at(clock, 2050)
    log.do(DISPATCH, {"type": "incident.status", "incident": inc, "status": "active"})
    return log.events


def kpis(reader: Reader, logs: list[list[StoredEvent]]) -> dict[str, Any]:
    return aggregate(facts_for(events, reader, NoAgreements(), 10**13) for events in logs)


def stats(median: float | None, mean: float | None, top: float | None) -> dict[str, Any]:
    return {"median_s": median, "mean_s": mean, "max_s": top}


def test_the_police_figures_are_the_hand_computed_ones() -> None:
    clock = Clock()
    logs = [incident_a(clock), incident_b(clock), incident_c(clock)]
    got = kpis(Reader(POLICE, DISPATCH.user_id), logs)
    assert got["incidents"] == 3
    assert got["acknowledgement"] == [
        {"org": NGO, "count": 1, "unacknowledged": 1, **stats(60.0, 60.0, 60.0)}
    ]
    by_org = {r["org"]: r for r in got["tasks"]}
    assert by_org[NGO] == {
        "org": NGO,
        "assigned": 2,
        "accepted": 1,
        "declined": 1,
        "completed": 1,
        "cancelled": 0,
        "reassigned": 0,
        "to_accept": stats(60.0, 60.0, 60.0),
        "to_done": stats(300.0, 300.0, 300.0),
    }
    assert by_org[POLICE]["assigned"] == 1
    assert by_org[POLICE]["accepted"] == 1
    assert by_org[POLICE]["to_accept"] == stats(30.0, 30.0, 30.0)
    assert by_org[POLICE]["to_done"] == stats(None, None, None)
    # welfare/high: A (600 s) and B (200 s, raised to high before resolution)
    assert got["resolution"] == [
        {
            "category": "theft",
            "priority": "low",
            "incidents": 1,
            "resolved": 0,
            **stats(None, None, None),
        },
        {
            "category": "welfare",
            "priority": "high",
            "incidents": 2,
            "resolved": 2,
            **stats(400.0, 400.0, 600.0),
        },
    ]
    assert got["joint"] == [{"orgs": sorted([NGO, POLICE]), "incidents": 2}]
    assert got["escalations"] == {"total": 1, "by_type": {"escalation.fired": 1}}
    assert got["checkins"] == {
        "total": 2,
        "missed": 1,
        "by_type": {"checkin.missed": 1, "checkin.ok": 1},
    }


def test_the_ngo_counts_only_what_it_may_see() -> None:
    clock = Clock()
    logs = [incident_a(clock), incident_b(clock)]  # it takes no part in C
    got = kpis(Reader(NGO, OUTREACH.user_id), logs)
    assert got["incidents"] == 2
    assert [r["org"] for r in got["tasks"]] == [NGO]  # nothing of the police-only task
    assert got["escalations"] == {"total": 0, "by_type": {}}  # police-only
    assert got["checkins"]["total"] == 2
    assert got["acknowledgement"][0]["count"] == 1


def test_csv_rows_carry_every_figure() -> None:
    clock = Clock()
    got = kpis(Reader(POLICE, DISPATCH.user_id), [incident_a(clock)])
    rows = {(k, g, m): v for k, g, m, v in to_csv_rows(got)}
    assert rows[("incidents", "", "count")] == 1
    assert rows[("tasks", NGO, "to_done.median_s")] == 300.0
    assert rows[("resolution", "welfare/high", "median_s")] == 600.0
    assert rows[("joint", f"{NGO}+{POLICE}", "incidents")] == 1
    assert rows[("checkins", "checkin.missed", "count")] == 1
