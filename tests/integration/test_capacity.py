"""Expertise, suggestions and the capacity board end to end (SPEC section 27)."""

from __future__ import annotations

import asyncio
import uuid

import orjson
import pytest

from liaison_client import CommandFailed, LiaisonClient
from tests.conftest import ADMIN_PASSWORD, LiaisonServer, connect, new_incident


async def _code(call: object) -> str:
    try:
        await call  # type: ignore[misc]
    except CommandFailed as err:
        return str(err.error["code"])
    return "ok"


async def test_tags_needs_and_ranked_suggestions_through_the_sharing_rules(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    root = await connect(clients, server, "admin", password=ADMIN_PASSWORD, live=False)
    org = await root.request("PUT", "/api/v1/orgs/harbour-shelter/tags", {"tags": ["shelter"]})
    assert org["tags"] == ["shelter"]
    user = await root.request(
        "PUT", "/api/v1/users/u_outreach/tags", {"tags": ["first_aid", "lang:ar"]}
    )
    assert user["tags"] == ["first_aid", "lang:ar"]
    assert await _code(root.request("PUT", "/api/v1/users/u_outreach/tags", {"tags": ["x"]})) == (
        "invalid"
    )

    dispatch = await connect(clients, server, "dispatch")
    outreach = await connect(clients, server, "outreach")
    officer = await connect(clients, server, "officer")
    assert await _code(outreach.request("PUT", "/api/v1/orgs/metro-police/tags", {"tags": []})) == (
        "forbidden"
    )
    incident = await new_incident(dispatch, "Family stranded at the bridge")
    await dispatch.send(
        {"type": "incident.update", "incident": incident, "needs": ["first_aid", "lang:ar"]}
    )
    for c in (outreach, officer):
        await c.follow(incident)
    # 0.01 degrees of latitude from the incident: 1.112 km.
    await outreach.send(
        {
            "type": "responder.status",
            "incident": incident,
            "status": "available",
            "position": {"lat": 51.51, "lon": -0.07},
        }
    )
    # The officer's position is police-only: never used for the shelter's reader.
    await officer.send(
        {
            "type": "responder.status",
            "incident": incident,
            "status": "available",
            "position": {"lat": 51.5, "lon": -0.07},
            "visibility": ["metro-police"],
        }
    )
    ranked = await dispatch.suggestions(incident)
    assert ranked[0]["id"] == "u_outreach"
    assert ranked[0]["matched"] == ["first_aid", "lang:ar"]
    assert ranked[0]["distance_km"] == pytest.approx(1.112, abs=0.01)
    by_id = {s["id"]: s for s in ranked}
    assert by_id["u_officer"]["distance_km"] == 0
    assert by_id["harbour-shelter"]["kind"] == "org"
    view = await dispatch.incident(incident)
    assert view["needs"] == ["first_aid", "lang:ar"]
    # A partner's coordinator: its own organisation only, and nothing of the police.
    lead = await connect(clients, server, "shelter-lead", live=False)
    theirs = await lead.suggestions(incident, needs=["shelter"])
    assert {s["org"] for s in theirs} == {"harbour-shelter"}
    assert b"u_officer" not in orjson.dumps(theirs)
    assert await _code(lead.suggestions(incident, needs=["cooking"])) == "invalid"
    assert await _code(lead.suggestions(incident, task=999)) == "not_found"


async def test_the_board_history_live_changes_and_a_request_from_an_incident(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatch = await connect(clients, server, "dispatch")
    lead = await connect(clients, server, "shelter-lead")
    outreach = await connect(clients, server, "outreach", live=False)
    start = (await dispatch.capacity_board())["pos"]
    waiting = asyncio.ensure_future(dispatch.capacity_changes(start, wait_s=10))
    cid = uuid.uuid4().hex
    entry = await lead.publish_capacity(
        "harbour-shelter", {"beds": 4, "languages": ["ar", "fr"], "opening_hours": "18-08"}, cid
    )
    assert not entry["duplicate"]
    again = await lead.publish_capacity("harbour-shelter", {"beds": 1}, cid)
    assert again["duplicate"]
    assert again["seq"] == entry["seq"]
    changes = await asyncio.wait_for(waiting, 10)
    assert [e["seq"] for e in changes["entries"]] == [entry["seq"]]
    await lead.publish_capacity("harbour-shelter", {"beds": 3, "opening_hours": None})
    board = await dispatch.capacity_board()
    row = next(r for r in board["orgs"] if r["org"] == "harbour-shelter")
    assert row["items"]["beds"]["value"] == 3
    assert "opening_hours" not in row["items"]
    assert row["items"]["languages"]["value"] == ["ar", "fr"]
    assert all(r["kind"] != "system" for r in board["orgs"])
    history = await outreach.capacity_history("harbour-shelter", entry["seq"] - 1)
    assert [h["items"].get("beds") for h in history["history"]] == [4, 3]
    assert await _code(outreach.publish_capacity("harbour-shelter", {"beds": 9})) == "forbidden"
    assert await _code(dispatch.publish_capacity("harbour-shelter", {"beds": 9})) == "forbidden"
    assert await _code(lead.publish_capacity("harbour-shelter", {"ponies": 1})) == "invalid"

    incident = await new_incident(dispatch, "Cold night, three people need beds")
    await lead.follow(incident)
    feed_start = (await lead.feed())["cursor"]
    asked = await dispatch.request_capacity(
        incident, "harbour-shelter", {"beds": 3}, note="Tonight"
    )
    page = await lead.feed(feed_start)
    need = next(e for e in page["entries"] if e.get("reasons") == ["capacity"])
    assert (need["request"], need["items"]) == (asked["seq"], {"beds": 3})
    assert await _code(dispatch.answer_capacity(incident, asked["seq"], True)) == "forbidden"
    await lead.answer_capacity(incident, asked["seq"], True, note="Held until 23:00")
    assert await _code(lead.answer_capacity(incident, asked["seq"], False)) == "conflict"
    view = await dispatch.incident(incident)
    (request,) = view["capacity_requests"]
    assert (request["status"], request["answer"]["note"]) == ("accepted", "Held until 23:00")
    # Nothing of the board in the incident index or search.
    listed = await dispatch.request("GET", "/api/v1/search?q=18-08")
    assert listed["hits"] == []
