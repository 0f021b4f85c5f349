"""Receipts, escalations and lone-worker safety in chromium (issue 10, items 3 and 5).

A desk dispatcher and a phone outreach worker (390x844) on a server with
one-second deadlines: the sender sees "delivered · seen · acknowledged" with
their times, an unacknowledged urgent message escalates in the channel, the
phone runs a check-in timer and raises duress with two taps, and a missed
check-in or a duress shows as a banner on both until the desk resolves it.
Screenshots of each new view go to test-artifacts/.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import People, Rest
from tests.conftest import LiaisonServer
from tests.integration.test_deadlines import FAST


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiaisonServer]:
    """This module's own server, with one-second deadlines (the ``people`` fixture uses it)."""
    srv = LiaisonServer(tmp_path_factory.mktemp("liaison-web-safety"), env=FAST)
    srv.start()
    yield srv
    srv.stop()
    assert srv.errors_logged() == [], "the server logged errors"


def scroll_to(page: Page, selector: str, text: str) -> None:
    """Scroll an element into view for a screenshot, in one step inside the page.

    The client renders a message again when a receipt or a position arrives;
    a locator action on an element replaced meanwhile fails ("not attached
    to the DOM"), and once did in CI right after the receipts were checked.
    """
    page.evaluate(
        """([selector, text]) => {
            const found = [...document.querySelectorAll(selector)]
                .find((el) => el.textContent.includes(text));
            if (found) found.scrollIntoView({ block: "center" });
        }""",
        [selector, text],
    )


def test_receipts_escalations_check_ins_and_duress(
    people: People, web_server: LiaisonServer, artifacts: Path
) -> None:
    dispatch = Rest(web_server, "dispatch")
    title = f"Lone worker {uuid.uuid4().hex[:6]}"
    incident = dispatch.new_incident(title, f"safety-{uuid.uuid4().hex}")
    desk = people.signed_in("dispatch", hash=f"#/incident/{incident}")
    phone = people.signed_in(
        "outreach", phone=True, hash=f"#/incident/{incident}", position=(51.5061, -0.0768)
    )
    d, p = desk.page, phone.page
    pane, p_pane = d.locator(".pane.active"), p.locator(".pane.active")
    expect(pane.locator(".pane-title")).to_have_text(title)
    expect(p_pane.locator(".pane-title")).to_have_text(title)

    # An urgent message: delivered to the phone and seen there, then acknowledged.
    pane.locator(".urgent-box").check()
    pane.locator("textarea.composer-text").fill("Can you go to the north steps?")
    pane.locator("button.send").click()
    d_msg = pane.locator(".msg.urgent", has_text="north steps")
    expect(d_msg.locator(".receipts")).to_contain_text("delivered")
    expect(d_msg.locator(".receipts")).to_contain_text("seen")
    p_pane.locator(".msg.urgent", has_text="north steps").get_by_role(
        "button", name="Acknowledge"
    ).click()
    expect(d_msg.locator(".receipts")).to_contain_text("acknowledged")
    expect(d_msg.locator(".receipts")).to_have_text(
        re.compile(r"delivered \d\d:\d\d · seen \d\d:\d\d · acknowledged \d\d:\d\d")
    )
    scroll_to(d, ".pane.active .msg.urgent", "north steps")
    d.screenshot(path=str(artifacts / "desk-receipts.png"))

    # Not acknowledged within its deadline: it escalates, in the channel and the log.
    pane.locator(".urgent-box").check()
    pane.locator("textarea.composer-text").fill("Second call, nobody answered")
    pane.locator("button.send").click()
    escalated = pane.locator(".msg.urgent", has_text="Second call").locator(".escalated")
    expect(escalated).to_contain_text("Escalated")
    expect(escalated).to_contain_text("Harbour Street Shelter")

    # A task with a due time: on the board with it, escalated once it passes.
    dispatch.command(
        {
            "type": "task.create",
            "id": f"task-{uuid.uuid4().hex}",
            "incident": incident,
            "title": "Debrief at the shelter",
            "assignee": {"org": "harbour-shelter"},
            "due_in_s": 1,
        }
    )
    d_task = pane.locator(".task", has_text="Debrief at the shelter")
    expect(d_task.locator(".task-due")).to_contain_text("Due")
    expect(d_task.locator(".escalated")).to_contain_text("Escalated")
    scroll_to(d, ".pane.active .task", "Debrief at the shelter")
    d.screenshot(path=str(artifacts / "desk-task-escalated.png"))

    # The phone's check-in timer: start, check in, stop.
    bar = p_pane.locator(".checkin-bar")
    expect(bar).to_be_visible()
    expect(pane.locator(".checkin-bar")).to_be_hidden()  # a phone's control, not the desk's
    bar.locator("button.checkin-start").click()
    expect(bar.locator(".checkin-due")).to_contain_text("Check in by")
    p.screenshot(path=str(artifacts / "phone-checkin.png"))
    bar.locator("button.checkin-ok").click()
    bar.get_by_role("button", name="Stop").click()
    expect(bar.locator("button.checkin-start")).to_be_visible()

    # A missed check-in (a one-second timer) shows on both until the desk resolves it.
    outreach = Rest(web_server, "outreach")
    outreach.command(
        {
            "type": "checkin.start",
            "id": f"ci-{uuid.uuid4().hex}",
            "incident": incident,
            "interval_s": 1,
            "position": {"lat": 51.5058, "lon": -0.0761},
        }
    )
    d_alarm = pane.locator(".alarm.missed")
    expect(d_alarm).to_contain_text("MISSED CHECK-IN")
    expect(d_alarm).to_contain_text("Nia Outreach")
    expect(d_alarm).to_contain_text("51.50580, -0.07610")
    expect(p_pane.locator(".alarm.missed")).to_be_visible()
    d.screenshot(path=str(artifacts / "desk-missed-checkin.png"))
    p.screenshot(path=str(artifacts / "phone-missed-checkin.png"))
    d_alarm.get_by_role("button", name="Resolve").click()
    expect(pane.locator(".alarm")).to_have_count(0)
    expect(p_pane.locator(".alarm")).to_have_count(0)

    # Duress: two taps on the phone, a banner on the desk at once.
    duress = bar.locator("button.duress-button")
    duress.click()
    expect(duress).to_have_text("Tap again: DURESS")
    duress.click()
    expect(pane.locator(".alarm.duress")).to_contain_text("DURESS")
    expect(duress).to_have_text("Duress raised")
    p.screenshot(path=str(artifacts / "phone-duress.png"))
    d.screenshot(path=str(artifacts / "desk-duress.png"))
    pane.locator(".alarm.duress").get_by_role("button", name="Resolve").click()
    expect(p_pane.locator(".alarm")).to_have_count(0)

    # The timeline (and so the replay) tells all of it.
    pane.locator(".main-switch button[data-main=timeline]").click()
    timeline = pane.locator(".timeline")
    for text in ("ESCALATION", "MISSED CHECK-IN", "raised a DURESS alarm", "received message"):
        expect(timeline).to_contain_text(text)
    d.screenshot(path=str(artifacts / "desk-timeline-safety.png"))
    kinds = {e["type"] for e in dispatch.timeline(incident)}
    assert {"receipt.recorded", "escalation.unacknowledged", "checkin.missed"} <= kinds
    assert desk.errors == [], f"console errors: {desk.errors}"
    assert phone.errors == [], f"console errors: {phone.errors}"
