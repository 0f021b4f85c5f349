"""The outbox's priority lanes in the browser (client_web/src/lanes.js), end to end.

The issue's words: "an urgent message queued behind 50 chat messages goes
first". A phone offline queues 50 chat posts, then an urgent one; when the
signal comes back the server stores the urgent one before every chat post,
and the chat in the order it was written.
"""

from __future__ import annotations

import uuid

from playwright.sync_api import expect

from tests.browser.conftest import People, Rest
from tests.browser.test_web_client import no_page_errors, post, unique
from tests.conftest import LiaisonServer

CHATS = 50


def test_an_urgent_message_queued_behind_50_chat_messages_goes_first(
    people: People, web_server: LiaisonServer
) -> None:
    dispatch = Rest(web_server, "dispatch")
    title = unique("Flooded underpass")
    incident = dispatch.command(
        {
            "type": "incident.create",
            "id": f"lanes-{uuid.uuid4().hex}",
            "title": title,
            "category": "welfare",
            "orgs": ["harbour-shelter"],
        }
    )["incident"]

    phone = people.signed_in("outreach", phone=True, hash=f"#/incident/{incident}")
    p = phone.page
    expect(p.locator(".pane.active .pane-title")).to_have_text(title)
    phone.context.set_offline(True)
    expect(p.locator("#conn")).to_have_attribute("data-state", "offline")
    for i in range(CHATS):
        post(p, f"chat {i:02d}")
    post(p, "URGENT: water at the doors", urgent=True)
    expect(p.locator(".pane.active .msg.pending")).to_have_count(CHATS + 1)
    phone.context.set_offline(False)
    expect(p.locator("#conn")).to_have_attribute("data-state", "online", timeout=20_000)
    expect(p.locator(".pane.active .msg.pending")).to_have_count(0, timeout=30_000)

    posts = [e for e in dispatch.timeline(incident) if e["type"] == "message.posted"]
    texts = [e["body"]["text"] for e in posts]
    assert texts[0] == "URGENT: water at the doors", texts[:3]
    assert posts[0]["body"]["urgent"] is True
    assert texts[1:] == [f"chat {i:02d}" for i in range(CHATS)]
    phone.errors[:] = [e for e in phone.errors if "ERR_INTERNET_DISCONNECTED" not in e]
    no_page_errors(phone)
