"""The replay's Export menu in headless Chromium: downloads with a progress bar.

A supervisor opens the replay, picks the verifiable log and the PDF report;
each arrives as a download, the bar ends full, and the JSONL verifies offline
against the node key (protocol/liaison_verify.py).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from playwright.sync_api import expect

from protocol import liaison_verify as lv
from tests.browser.conftest import People, Rest
from tests.conftest import LiaisonServer


def test_the_replay_exports_with_progress_and_the_file_verifies(
    people: People, web_server: LiaisonServer, artifacts: Path, tmp_path: Path
) -> None:
    dispatch = Rest(web_server, "dispatch")
    title = f"Export menu {uuid.uuid4().hex[:6]}"
    incident = dispatch.new_incident(title, f"export-{uuid.uuid4().hex}")
    for i in range(5):
        text = f"<b>update {i}</b>" if i else "=1+1"
        dispatch.command(
            {"type": "message.post", "id": uuid.uuid4().hex, "incident": incident, "text": text}
        )
    events = len(dispatch.timeline(incident))
    key = dispatch.call("GET", "/api/v1/node-key")["public_key"]

    desk = people.signed_in("sergeant", hash=f"#/incident/{incident}")
    page = desk.page
    expect(page.locator(".pane.active .pane-title")).to_have_text(title)
    page.locator(".pane.active").get_by_role("button", name="Replay").click()
    menu = page.locator(".replay .export-menu")
    menu.locator("summary").click()
    with page.expect_download() as download:
        menu.get_by_role("button", name="Verifiable log (JSONL)").click()
    saved = tmp_path / "export.jsonl"
    download.value.save_as(saved)
    assert download.value.suggested_filename == f"incident-{incident}.jsonl"
    expect(menu.locator(".export-status")).to_contain_text("Exported JSONL")
    progress = menu.locator("progress")
    expect(progress).to_have_js_property("value", events)
    expect(progress).to_have_js_property("max", events)
    report = lv.verify_lines(saved.read_text().splitlines(), key)
    assert report.ok, report.problems
    assert report.incidents == [(incident, events)]
    page.screenshot(path=str(artifacts / "export-menu.png"))

    with page.expect_download() as pdf:
        menu.get_by_role("button", name="Report (PDF)").click()
    pdf_path = tmp_path / "report.pdf"
    pdf.value.save_as(pdf_path)
    assert pdf_path.read_bytes().startswith(b"%PDF-")
    expect(menu.locator(".export-status")).to_contain_text("Exported PDF")
    assert desk.errors == [], desk.errors
