"""After the incident, in the browser: reviews, KPI charts, the replay as of T.

- a shelter supervisor writes the shelter's review of a closed incident with a
  follow-up action (overdue: due in the past), sees it among the open
  actions, marks it done; a responder on a phone sees the review read-only;
- a police supervisor opens the KPI charts, whose figures are the REST ones;
- the shelter's replay shows status and priority at T from the server's view
  as of that seq (the same as the REST answer), times relative to T, and the
  police-only entry as a marked placeholder.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import People, Rest
from tests.browser.test_web_client import no_page_errors, unique
from tests.conftest import LiaisonServer


def _cmd(who: Rest, incident: str, kind: str, **fields: Any) -> dict[str, Any]:
    return who.command({"type": kind, "id": uuid.uuid4().hex, "incident": incident, **fields})


def _closed_incident(server: LiaisonServer, title: str, gap_s: float = 0.0) -> tuple[Rest, str]:
    dispatch = Rest(server, "dispatch")
    incident = dispatch.new_incident(title, f"after-{uuid.uuid4().hex}")
    _cmd(dispatch, incident, "message.post", text="Known to us", visibility=["metro-police"])
    _cmd(dispatch, incident, "incident.update", priority="critical")
    active = _cmd(dispatch, incident, "incident.status", status="active")
    while time.time() * 1000 < active["ts"] + gap_s * 1000:  # a later moment, seconds apart
        time.sleep(0.05)
    _cmd(dispatch, incident, "incident.status", status="closed", note="Safe")
    return dispatch, incident


def test_a_review_with_a_follow_up_action_tracked_until_done(
    people: People, web_server: LiaisonServer, artifacts: Path
) -> None:
    title = unique("Welfare check, Dock Road")
    _, incident = _closed_incident(web_server, title)
    desk = people.signed_in("shelter-super", hash=f"#/incident/{incident}")
    d = desk.page
    pane = d.locator(".pane.active")
    expect(pane.locator(".pane-title")).to_have_text(title)
    form = pane.locator("form.review-form")
    form.locator("textarea[name=went_well]").fill("Quick handover on the bridge")
    form.locator("textarea[name=went_badly]").fill("Radio gaps at the north steps")
    form.locator("select[name=rating]").select_option("4")
    form.get_by_role("button", name="Add an action").click()
    form.locator(".action-row input[name=text]").fill("Agree a handover script")
    form.locator(".action-row input[name=due]").fill("2026-01-15")  # in the past: overdue
    form.get_by_role("button", name="Submit the review").click()
    action = pane.locator(".open-actions .open-action", has_text="Agree a handover script")
    expect(action).to_have_class(re.compile(r"\boverdue\b"))
    expect(action.locator(".action-owner")).to_have_text("Ray Supervisor")
    expect(pane.locator(".review[data-org=harbour-shelter] .rating")).to_have_text("★★★★☆")
    d.screenshot(path=str(artifacts / "review-desk.png"))

    view = Rest(web_server, "shelter-super").call("GET", f"/api/v1/incidents/{incident}")
    (review,) = view["reviews"]
    assert review["went_badly"] == "Radio gaps at the north steps"
    assert [a["overdue"] for a in view["open_actions"]] == [True]

    phone = people.signed_in("outreach", phone=True, hash=f"#/incident/{incident}")
    p = phone.page
    expect(p.locator(".pane .review[data-org=harbour-shelter]")).to_contain_text("Quick handover")
    expect(p.locator(".pane form.review-form")).to_have_count(0)  # a responder does not write it
    expect(p.locator(".pane .open-action")).to_contain_text("Overdue")
    p.screenshot(path=str(artifacts / "review-phone.png"))

    action.get_by_role("button", name="Done").click()
    expect(pane.locator(".open-actions")).to_have_text("None.")
    expect(pane.locator(".review-actions li.done")).to_have_count(1)
    expect(p.locator(".pane .open-actions")).to_have_text("None.")
    no_page_errors(desk, phone)


def test_kpi_charts_show_the_rest_figures(
    people: People, web_server: LiaisonServer, artifacts: Path
) -> None:
    dispatch, incident = _closed_incident(web_server, unique("KPI incident"))
    del dispatch, incident
    desk = people.signed_in("sergeant")
    d = desk.page
    d.get_by_role("button", name="KPIs").click()
    view = d.locator(".kpi-view")
    expect(view.locator(".kpi-note")).to_contain_text("incidents opened in this range")
    expect(view.locator("figure.kpi-chart")).to_have_count(6)
    kpis = Rest(web_server, "sergeant").call("GET", "/api/v1/kpis")
    expect(view.locator(".kpi-note")).to_contain_text(f"{kpis['incidents']} incidents")
    joint = view.locator("figure.kpi-chart", has_text="Joint incidents per pair")
    (pair,) = [r for r in kpis["joint"] if r["orgs"] == ["harbour-shelter", "metro-police"]]
    expect(joint.locator(".bar-value")).to_have_text(str(pair["incidents"]))
    resolution = view.locator("figure.kpi-chart", has_text="Time to resolve")
    expect(resolution.locator("svg .bar")).to_have_count(len(kpis["resolution"]))
    d.screenshot(path=str(artifacts / "kpis-desk.png"), full_page=True)
    with d.expect_download() as download:
        view.get_by_role("button", name="Download CSV").click()
    assert Path(download.value.path()).read_text().startswith("kpi,group,metric,value")
    phone = people.signed_in("shelter-super", phone=True)
    phone.page.get_by_role("button", name="KPIs").click()
    expect(phone.page.locator(".kpi-view figure.kpi-chart")).to_have_count(6)
    phone.page.screenshot(path=str(artifacts / "kpis-phone.png"), full_page=True)
    no_page_errors(desk, phone)


def test_replay_shows_the_incident_as_of_t_as_the_server_computes_it(
    people: People, web_server: LiaisonServer, artifacts: Path
) -> None:
    title = unique("Replay as of T")
    _, incident = _closed_incident(web_server, title, gap_s=1.2)
    desk = people.signed_in("shelter-super", hash=f"#/incident/{incident}")
    d = desk.page
    expect(d.locator(".pane.active .pane-title")).to_have_text(title)
    d.locator(".pane.active").get_by_role("button", name="Replay").click()
    replay = d.locator(".replay")
    expect(replay.locator(".verify")).to_contain_text("Hash chain verified")
    rest = Rest(web_server, "shelter-super")
    restricted = replay.locator(".replay-events .restricted-entry")
    expect(restricted.locator(".restricted-mark")).to_have_text("Restricted")
    for seq in (1, 3, 4, 5):
        row = replay.locator(f".replay-events .tl[data-seq='{seq}']")
        row.get_by_role("button", name="Go to this moment").click()
        expect(row).to_have_class(re.compile(r"\bcurrent\b"))
        expect(row.locator(".tl-rel")).to_have_text("T")
        server = rest.call("GET", f"/api/v1/incidents/{incident}/view?at_seq={seq}")
        as_of = replay.locator(".as-of")
        expect(as_of.locator(".as-of-source")).to_have_attribute("data-source", "server")
        expect(as_of.locator(".as-of-source")).to_contain_text(f"seq {seq}")
        expect(as_of.locator(".as-of-status")).to_have_class(
            re.compile(rf"\bst-{server['status']}\b")
        )
        expect(as_of.locator(".as-of-priority")).to_have_class(
            re.compile(rf"\bprio-{server['priority']}\b")
        )
    later = replay.locator(".replay-events .tl[data-seq='1'] .tl-rel")
    expect(later).to_have_text(re.compile("^T\u2212"))  # T minus: before the moment
    d.screenshot(path=str(artifacts / "replay-as-of.png"))
    no_page_errors(desk)
