"""Reviews, KPIs and the view as of a moment over a real server (SPEC 8.12, 18, 18.2)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from liaison_client import CommandFailed, LiaisonClient
from tests.conftest import LiaisonServer, connect, new_incident


async def _code(coro: Any) -> str:
    with pytest.raises(CommandFailed) as err:
        await coro
    code: str = err.value.code
    return code


async def test_reviews_kpis_and_the_view_as_of(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatch = await connect(clients, server, "dispatch")
    officer = await connect(clients, server, "officer")
    shelter = await connect(clients, server, "shelter-super")
    sergeant = await connect(clients, server, "sergeant", live=False)
    start = int(time.time() * 1000) - 1
    incident = await new_incident(dispatch, "Reports")
    task = await dispatch.send(
        {
            "type": "task.create",
            "incident": incident,
            "title": "PNC check",
            "visibility": ["metro-police"],
            "assignee": {"user": "u_officer"},
        }
    )
    await officer.send({"type": "task.accept", "incident": incident, "task": task["seq"]})
    end_open = int(time.time() * 1000) + 1
    before = await sergeant.kpis(start, end_open)  # its facts are cached by the server now
    assert [r["resolved"] for r in before["resolution"]] == [0]
    review: dict[str, Any] = {"went_well": "Calm", "went_badly": "Slow radio", "rating": 4}
    assert await _code(shelter.submit_review(incident, **review)) == "conflict"  # not closed
    closed = await dispatch.send(
        {"type": "incident.status", "incident": incident, "status": "closed"}
    )
    action = {"id": "a-radio", "text": "Fix radio", "owner": "u_shelter-super", "due": 1.0}
    await shelter.submit_review(incident, **review, actions=[action])
    end = int(time.time() * 1000) + 1

    # KPIs: the police supervisor counts its police-only task, the shelter's does not
    police = await sergeant.kpis(start, end)
    assert police["incidents"] == 1
    assert [r["resolved"] for r in police["resolution"]] == [1]  # the head moved: folded again
    assert [(r["org"], r["accepted"]) for r in police["tasks"]] == [("metro-police", 1)]
    ngo = await shelter.kpis(start, end)
    assert ngo["incidents"] == 1
    assert ngo["tasks"] == []
    assert ngo["joint"] == [{"orgs": ["harbour-shelter", "metro-police"], "incidents": 1}]
    csv = await sergeant.kpis_csv(start, end)
    assert csv.splitlines()[0] == "kpi,group,metric,value"
    assert "tasks,metro-police,accepted,1" in csv.splitlines()
    assert await _code(dispatch.kpis(start, end)) == "forbidden"  # a dispatcher
    assert await _code(sergeant.kpis(end, start)) == "invalid"
    assert await _code(sergeant.kpis("yesterday", end)) == "invalid"

    # the view as of the close: closed, no review yet; now: the review, its action overdue
    at_close = await shelter.view_at(incident, seq=closed["seq"])
    assert at_close["status"] == "closed"
    assert at_close["reviews"] == []
    assert at_close["as_of"]["seq"] == closed["seq"]
    now = await shelter.incident(incident)
    assert [a["id"] for a in now["open_actions"]] == ["a-radio"]
    assert now["open_actions"][0]["overdue"] is True
    # asked for a moment, the shelter is never told the seq of the police-only task
    at_task = await shelter.view_at(incident, at=task["ts"])
    assert at_task["as_of"]["seq"] == 1
    assert await _code(shelter.view_at(incident, seq=10_000)) == "out_of_range"
    await shelter.action_done(incident, "a-radio")
    assert (await shelter.incident(incident))["open_actions"] == []
