"""TLP 2.0 labels in the browser client (issue 9, item 6): a TLP:RED message
chosen in the composer reaches only the person it names, with its badge; a
police position and the person an incident is about read as "not shared"
for the shelter, and the position is not drawn on its map."""

from __future__ import annotations

import uuid
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.browser.conftest import People, Rest
from tests.conftest import LiaisonServer


def _open(page: Page, title: str) -> None:
    expect(page.locator(".pane.active .pane-title")).to_have_text(title)


def test_a_red_message_reaches_only_its_recipient_and_redactions_read_as_not_shared(
    people: People, web_server: LiaisonServer, artifacts: Path
) -> None:
    dispatch = Rest(web_server, "dispatch")
    title = f"Welfare check on the quay {uuid.uuid4().hex[:6]}"
    incident = dispatch.command(
        {
            "type": "incident.create",
            "id": f"tlp-{uuid.uuid4().hex}",
            "title": title,
            # The demo's agreements share names, phones and positions of
            # "welfare" incidents; this one is outside them.
            "category": "domestic",
            "orgs": ["harbour-shelter"],
            "location": {"lat": 51.5055, "lon": -0.0754, "address": "Harbour Quay"},
            "subject": {"name": "A. Person", "dob": "1970-01-31", "phone": "+44 20 7946 0000"},
        }
    )["incident"]
    # The recipient has acted on the incident, so the desk knows her; the
    # officer's position is police data the shelter has no agreement for here.
    Rest(web_server, "outreach").command(
        {
            "type": "responder.status",
            "id": uuid.uuid4().hex,
            "incident": incident,
            "status": "en_route",
        }
    )
    Rest(web_server, "officer").command(
        {
            "type": "responder.status",
            "id": uuid.uuid4().hex,
            "incident": incident,
            "status": "on_scene",
            "position": {"lat": 51.50611, "lon": -0.07682, "accuracy_m": 8},
        }
    )

    hash = f"#/incident/{incident}"
    desk = people.signed_in("dispatch", hash=hash)
    nia = people.signed_in("outreach", hash=hash)
    lee = people.signed_in("shelter-lead", hash=hash)
    omar = people.signed_in("officer", hash=hash)
    for person in (desk, nia, lee, omar):
        _open(person.page, title)

    # The composer refuses RED without recipients, then sends it to Nia only.
    d = desk.page.locator(".pane.active")
    expect(d.locator(".pane-badges .tlp")).to_have_text("TLP:AMBER")
    expect(d.locator("select.tlp-pick")).to_have_value("AMBER")
    secret = f"Only for Nia {uuid.uuid4().hex[:6]}: his sister's number is in the file"
    d.locator("select.tlp-pick").select_option("RED")
    d.locator("textarea.composer-text").fill(secret)
    d.locator("button.send").click()
    expect(d.locator(".composer-warning")).to_contain_text("TLP:RED is for named people only")
    expect(d.locator("textarea.composer-text")).to_have_value(secret)
    d.locator("select.recipient-pick").select_option(label="Nia Outreach (Harbour Street Shelter)")
    d.locator("button.send").click()
    sent = d.locator(".msg[data-tlp=RED]", has_text=secret)
    expect(sent.locator(".tlp")).to_have_text("TLP:RED")
    expect(sent.locator(".tlp-for")).to_have_text("for: Nia Outreach")
    # The label stays where it was set, like "who may see it": widening it
    # again is a deliberate act too.
    expect(d.locator("select.tlp-pick")).to_have_value("RED")
    expect(d.locator(".recipient-chip")).to_contain_text("Nia Outreach")
    d.locator("select.tlp-pick").select_option("AMBER")
    after = f"Everyone: ambulance on its way {uuid.uuid4().hex[:6]}"
    d.locator("textarea.composer-text").fill(after)
    d.locator("button.send").click()
    expect(d.locator(".msg[data-tlp=AMBER]", has_text=after)).to_be_visible()

    # Nia reads it, labelled; Lee (her colleague) and Omar (the author's) do not.
    n = nia.page.locator(".pane.active")
    got = n.locator(".msg", has_text=secret)
    expect(got.locator(".tlp")).to_have_text("TLP:RED")
    expect(got.locator(".tlp-for")).to_have_text("for: Nia Outreach")
    for other in (lee, omar):
        expect(other.page.locator(".pane.active .msg", has_text=after)).to_be_visible()
        assert other.page.locator(".msg", has_text="Only for Nia").count() == 0
        assert "Only for Nia" not in other.page.content()

    # The shelter's coordinator: the police position is not shared, not drawn;
    # the person the incident is about is redacted field by field.
    l_pane = lee.page.locator(".pane.active")
    row = l_pane.locator(".responder[data-user=u_officer]")
    expect(row.locator(".where")).to_have_text(" · position not shared")
    expect(row).to_have_attribute("data-position", "redacted")
    expect(l_pane.locator(".map-label.incident")).to_be_visible()  # the map is drawn
    assert l_pane.locator(".map-label.person", has_text="Omar Officer").count() == 0
    l_pane.locator(".incident-details summary").click()
    for field in ("name", "dob", "phone"):
        expect(l_pane.locator(f".subject dd[data-field={field}]")).to_have_text(
            "not shared with your organisation"
        )
    assert "A. Person" not in lee.page.content()
    # A partner's coordinator does not change the incident's status or priority.
    expect(l_pane.locator("select.incident-status")).to_be_disabled()
    expect(l_pane.locator("select.incident-status")).to_have_attribute(
        "title", "Only Metro Police Dispatch, which leads this incident, can change this."
    )
    # The police desk sees its own officer's position and the subject in full.
    expect(d.locator(".map-label.person", has_text="Omar Officer")).to_be_visible()
    d.locator(".incident-details summary").click()
    expect(d.locator(".subject dd[data-field=dob]")).to_have_text("1970-01-31")
    expect(d.locator("select.incident-status")).to_be_enabled()

    # The incident list and the timeline carry the label too.
    expect(desk.page.locator(f".incident-row[data-incident={incident}] .tlp")).to_have_text(
        "TLP:AMBER"
    )
    d.locator(".main-switch button[data-main=timeline]").click()
    expect(d.locator(".tl[data-type='message.posted'] .tlp", has_text="TLP:RED")).to_be_visible()
    d.locator(".main-switch button[data-main=channel]").click()
    expect(sent).to_be_visible()
    desk.page.screenshot(path=str(artifacts / "tlp-channel.png"))

    # The new incident dialog takes a label and the person it is about.
    second = f"Missing person at the marina {uuid.uuid4().hex[:6]}"
    page = desk.page
    page.get_by_role("button", name="New incident").click()
    page.fill("#ni-title", second)
    page.select_option("#ni-tlp", "GREEN")
    page.fill("#ni-subject-name", "B. Person")
    page.get_by_label("Harbour Street Shelter").check()
    page.get_by_role("button", name="Open incident").click()
    expect(page.locator(".pane.active .pane-title")).to_have_text(second)
    expect(page.locator(".pane.active .pane-badges .tlp")).to_have_text("TLP:GREEN")
    expect(page.locator(".pane.active select.tlp-pick")).to_have_value("GREEN")

    # Under the demo's welfare agreement the shelter gets the name, not the
    # date of birth (the agreement does not list it).
    welfare = f"Rough sleeper by the ferry {uuid.uuid4().hex[:6]}"
    shared = dispatch.command(
        {
            "type": "incident.create",
            "id": f"tlp-{uuid.uuid4().hex}",
            "title": welfare,
            "category": "welfare",
            "orgs": ["harbour-shelter"],
            "subject": {"name": "C. Person", "dob": "1980-05-05"},
        }
    )["incident"]
    lee.page.goto(web_server.url + f"/#/incident/{shared}")
    _open(lee.page, welfare)
    l_pane = lee.page.locator(".pane.active")
    l_pane.locator(".incident-details summary").click()
    expect(l_pane.locator(".subject dd[data-field=name]")).to_have_text("C. Person")
    expect(l_pane.locator(".subject dd[data-field=dob]")).to_have_text(
        "not shared with your organisation"
    )

    for person in (desk, nia, lee, omar):
        assert person.errors == [], f"console errors: {person.errors}"
