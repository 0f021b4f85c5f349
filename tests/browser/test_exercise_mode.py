"""Exercise mode and written-at in the browser (SPEC 8.0, 28), desk and phone.

One walk: an exercise incident carries its banner in the desk's list and
pane and on the phone; the phone, offline, writes a post (its clock 20
minutes back, as if written long before the signal came back), and once it
is delivered both sides show "written … · delivered … (offline)".
Screenshots: test-artifacts/exercise-desk.png, exercise-phone.png.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path

from playwright.sync_api import expect

from tests.browser.conftest import People, Rest
from tests.browser.test_web_client import no_page_errors, post, unique
from tests.conftest import LiaisonServer


def test_an_exercise_shows_its_banner_and_an_offline_post_when_it_was_written(
    people: People, web_server: LiaisonServer, artifacts: Path
) -> None:
    dispatch = Rest(web_server, "dispatch")
    title = unique("Drill: flooded underpass")
    ack = dispatch.command(
        {
            "type": "incident.create",
            "id": f"drill-{uuid.uuid4().hex}",
            "title": title,
            "category": "welfare",
            "orgs": ["harbour-shelter"],
            "mode": "exercise",
        }
    )
    incident = ack["incident"]

    desk = people.signed_in("dispatch", hash=f"#/incident/{incident}")
    d = desk.page
    expect(d.locator(".pane.active .pane-title")).to_have_text(title)
    expect(d.locator(".pane.active .mode-banner")).to_have_text("EXERCISE — not a live incident")
    expect(d.locator(".incident-row", has_text=title).locator(".mode-tag")).to_have_text("EXERCISE")

    phone = people.signed_in("outreach", phone=True, hash=f"#/incident/{incident}")
    p = phone.page
    expect(p.locator(".pane.active .pane-title")).to_have_text(title)
    expect(p.locator(".pane.active .mode-banner")).to_be_visible()

    # Offline, written "20 minutes ago" by the phone's clock; delivered now.
    phone.context.set_offline(True)
    expect(p.locator("#conn")).to_have_attribute("data-state", "offline")
    p.clock.set_system_time(time.time() - 20 * 60)
    post(p, "Inject 1: no signal under the bridge, water rising")
    expect(p.locator(".pane.active .msg.pending")).to_have_count(1)
    p.clock.set_system_time(time.time())
    phone.context.set_offline(False)
    expect(p.locator("#conn")).to_have_attribute("data-state", "online", timeout=20_000)

    delivered = p.locator(".pane.active .msg:not(.pending)", has_text="Inject 1")
    expect(delivered.locator(".written-note")).to_contain_text("delivered")
    note = delivered.locator(".written-note").inner_text()
    # The words: "written 19:05 · delivered 19:25 (offline)", 20 minutes apart.
    shown = re.fullmatch(r"written (\d\d):(\d\d) · delivered (\d\d):(\d\d) \(offline\)", note)
    assert shown is not None, note
    wh, wm, dh, dm = (int(g) for g in shown.groups())
    assert ((dh * 60 + dm) - (wh * 60 + wm)) % (24 * 60) in range(19, 22), note
    seen = d.locator(".pane.active .msg", has_text="Inject 1").locator(".written-note")
    expect(seen).to_have_text(note)

    stored = next(e for e in dispatch.timeline(incident) if e["type"] == "message.posted")
    assert stored["body"]["mode"] == "exercise"
    assert 19 * 60_000 < stored["ts"] - stored["body"]["written_at"] < 30 * 60_000

    d.screenshot(path=str(artifacts / "exercise-desk.png"))
    p.screenshot(path=str(artifacts / "exercise-phone.png"))
    phone.errors[:] = [e for e in phone.errors if "ERR_INTERNET_DISCONNECTED" not in e]
    no_page_errors(desk, phone)


def test_a_capacity_request_from_an_exercise_is_marked_as_one(
    people: People, web_server: LiaisonServer, artifacts: Path
) -> None:
    """A drill's capacity request, in the board's "Needs you" list, says EXERCISE.

    The list gathers requests from every incident followed, so without the
    tag a shelter lead could hold real beds for a drill (SPEC 27.3, 28).
    """
    dispatch = Rest(web_server, "dispatch")
    title = unique("Drill: evacuated care home")
    incident = dispatch.command(
        {
            "type": "incident.create",
            "id": f"drill-{uuid.uuid4().hex}",
            "title": title,
            "category": "welfare",
            "orgs": ["harbour-shelter"],
            "mode": "exercise",
        }
    )["incident"]
    dispatch.command(
        {
            "type": "capacity.request",
            "id": uuid.uuid4().hex,
            "incident": incident,
            "org": "harbour-shelter",
            "items": {"beds": 3},
        }
    )

    phone = people.signed_in("shelter-lead", phone=True, hash=f"#/incident/{incident}")
    p = phone.page
    expect(p.locator(".pane.active .pane-title")).to_have_text(title)
    p.get_by_role("button", name="Capacity").click()
    asked = p.locator(".capacity-view .cap-asked", has_text=title)
    expect(asked).to_contain_text("Beds 3")
    expect(asked).to_have_attribute("data-mode", "exercise")
    expect(asked.locator(".mode-tag")).to_have_text("EXERCISE")
    p.screenshot(path=str(artifacts / "exercise-capacity-phone.png"))
    no_page_errors(phone)
