"""The composer makes a restriction deliberate (issue 9, item 6): a restricted
message that mentions an organisation outside it is held back with a warning,
not sent to be refused (or, before, stored and never seen by that organisation)."""

from __future__ import annotations

import uuid

from playwright.sync_api import expect

from tests.browser.conftest import People, Rest
from tests.conftest import LiaisonServer


def test_a_police_only_message_mentioning_the_shelter_is_held_back(
    people: People, web_server: LiaisonServer
) -> None:
    dispatch = Rest(web_server, "dispatch")
    title = f"Shelter bed tonight {uuid.uuid4().hex[:6]}"
    incident = dispatch.new_incident(title, f"mention-{uuid.uuid4().hex}")
    desk = people.signed_in("dispatch", hash=f"#/incident/{incident}")
    d = desk.page
    pane = d.locator(".pane.active")
    expect(pane.locator(".pane-title")).to_have_text(title)
    pane.locator("select.visibility").select_option(label="Metro Police Dispatch only")
    pane.locator("select.mention-pick").select_option(label="Harbour Street Shelter")
    text = "Can the shelter take one adult tonight?"
    pane.locator(".urgent-box").check()
    pane.locator("textarea.composer-text").fill(text)
    pane.locator("button.send").click()

    warning = pane.locator(".composer-warning")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("Harbour Street Shelter")
    expect(pane.locator("textarea.composer-text")).to_have_value(text)
    assert [
        e["type"] for e in dispatch.call("GET", f"/api/v1/incidents/{incident}/timeline")["events"]
    ] == ["incident.created"], "nothing was sent"

    # Widening the visibility is the deliberate act that lets it go.
    pane.locator("select.visibility").select_option(label="Everyone on this incident")
    expect(warning).to_be_hidden()
    pane.locator("button.send").click()
    expect(pane.locator(".msg", has_text=text)).to_be_visible()
    assert desk.errors == [], f"console errors: {desk.errors}"
