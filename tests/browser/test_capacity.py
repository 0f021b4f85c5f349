"""The capacity board and suggested assignees in headless Chromium (SPEC 27).

A dispatcher at a desk sees the incident's needs and ranked suggestions in
the new-task form and picks one; opens the capacity board and requests beds
from the open incident. The shelter's coordinator on a phone answers the
request and publishes new figures, which the desk's board shows live.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from playwright.sync_api import expect

from tests.browser.conftest import People, Rest
from tests.conftest import LiaisonServer


def test_suggestions_and_the_capacity_board_on_desk_and_phone(
    people: People, web_server: LiaisonServer, artifacts: Path
) -> None:
    dispatch, outreach = Rest(web_server, "dispatch"), Rest(web_server, "outreach")
    title = f"Family at the bridge {uuid.uuid4().hex[:6]}"
    incident = dispatch.new_incident(title, uuid.uuid4().hex)
    dispatch.command(
        {
            "type": "incident.update",
            "id": uuid.uuid4().hex,
            "incident": incident,
            "needs": ["shelter"],
        }
    )
    outreach.command(
        {
            "type": "responder.status",
            "id": uuid.uuid4().hex,
            "incident": incident,
            "status": "available",
            "position": {"lat": 51.51, "lon": -0.0754},
        }
    )

    desk = people.signed_in("dispatch", hash=f"#/incident/{incident}")
    page = desk.page
    expect(page.locator(".pane.active .pane-title")).to_have_text(title)
    pane = page.locator(".pane.active")
    pane.get_by_role("button", name="New task").click()
    suggestions = pane.locator(".task-suggestions")
    expect(suggestions).to_contain_text("Needs: shelter")
    # The demo shelter is tagged shelter: its available outreach worker 0.5 km away first.
    first = suggestions.locator(".suggestion").first
    expect(first).to_have_attribute("data-id", "u_outreach")
    expect(first).to_contain_text("0.5 km")
    suggestions.locator(".suggestion[data-id=u_outreach]").click()
    expect(pane.locator("select[name=assignee]")).to_have_value("user:harbour-shelter:u_outreach")
    page.screenshot(path=str(artifacts / "task-suggestions-desk.png"))

    page.get_by_role("button", name="Capacity").click()
    board = page.locator(".capacity-view")
    shelter = board.locator(".cap-row[data-org=harbour-shelter]")
    expect(shelter.locator(".cap-item[data-item=beds] strong")).to_have_text("6")
    shelter.locator(".cap-request input[name=count]").fill("2")
    shelter.get_by_role("button", name="Request from Harbour Street Shelter").click()
    page.screenshot(path=str(artifacts / "capacity-board-desk.png"))

    phone = people.signed_in("shelter-lead", phone=True, hash=f"#/incident/{incident}")
    mobile = phone.page
    mobile.get_by_role("button", name="Capacity").click()
    asked = mobile.locator(".capacity-view .cap-asked")
    expect(asked).to_contain_text("Beds 2")
    asked.get_by_role("button", name="Accept").click()
    expect(asked).to_have_count(0)
    own = mobile.locator(".cap-row[data-org=harbour-shelter] .cap-edit")
    own.locator("input[name=beds]").fill("4")
    own.get_by_role("button", name="Publish").click()
    mobile.screenshot(path=str(artifacts / "capacity-board-phone.png"))
    # Live on the desk, without a reload.
    expect(shelter.locator(".cap-item[data-item=beds] strong")).to_have_text("4")
    view = dispatch.call("GET", f"/api/v1/incidents/{incident}")
    assert [r["status"] for r in view["capacity_requests"]] == ["accepted"]
    assert desk.errors == [], desk.errors
    assert phone.errors == [], phone.errors
