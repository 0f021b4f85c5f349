"""What the phone keeps on the device, when the device's storage misbehaves.

- a write to IndexedDB that fails (quota exhausted) is logged and shown in the
  connection indicator; what the person does is still sent;
- a slow outbox write never eats the message the person types next;
- a steady stream of events cannot postpone saving the incident forever.
"""

from __future__ import annotations

import uuid

from playwright.sync_api import expect

from tests.browser.conftest import People, Rest
from tests.browser.test_web_client import post, unique
from tests.conftest import LiaisonServer

#: Makes every IndexedDB write of the "kv" store fail as a full disk would,
#: from the moment the page sets window.__failKv (the login itself works).
QUOTA_EXCEEDED = """
(() => {
  const put = IDBObjectStore.prototype.put;
  IDBObjectStore.prototype.put = function (...args) {
    if (window.__failKv && this.name === "kv") {
      throw new DOMException("the disk is full (test)", "QuotaExceededError");
    }
    return put.apply(this, args);
  };
})();
"""


def test_a_failed_write_is_shown_and_nothing_is_lost(
    people: People, web_server: LiaisonServer
) -> None:
    dispatch = Rest(web_server, "dispatch")
    title = unique("Storage full, Dock Road")
    incident = dispatch.new_incident(title, f"quota-{uuid.uuid4().hex}")
    phone = people.open(phone=True)
    p = phone.page
    p.add_init_script(QUOTA_EXCEEDED)
    p.goto(web_server.url + f"/#/incident/{incident}")
    p.fill("#login-user", "outreach")
    p.fill("#login-password", "liaison-demo")
    p.click("form.login-form button[type=submit]")
    conn = p.locator("#conn")
    expect(conn).to_have_attribute("data-state", "online")
    expect(p.locator(".pane.active .pane-title")).to_have_text(title)
    assert p.evaluate("window.__liaison.flushPersistence()") == "saved"

    p.evaluate("window.__failKv = true")
    post(p, "Written while the disk is full")
    # The post itself goes out, once (the outbox is another store) ...
    expect(p.locator(".pane.active .msg:not(.pending)", has_text="disk is full")).to_have_count(1)
    assert [e for e in dispatch.timeline(incident) if "disk is full" in str(e.get("body"))]
    # ... but the incident's state cannot be saved, and the person sees it.
    assert p.evaluate("window.__liaison.flushPersistence()") == "failed"
    expect(conn).to_have_attribute("data-saved", "failed")
    expect(conn).to_contain_text("not saved on this device")
    assert "QuotaExceededError" in (conn.get_attribute("title") or "")
    assert any("could not save" in e and "QuotaExceededError" in e for e in phone.errors)
    # Something that changes rarely fails too (the incident list): it must be
    # saved again once there is room, not at its next change.
    p.evaluate("window.__liaison.incidents.refreshList()")
    expect(conn).to_have_attribute("data-saved", "failed")
    phone.errors.clear()

    # Space is back: the next save clears the warning.
    p.evaluate("window.__failKv = false")
    post(p, "Disk has room again")
    expect(p.locator(".pane.active .msg:not(.pending)", has_text="room again")).to_have_count(1)
    assert p.evaluate("window.__liaison.flushPersistence()") == "saved"
    expect(conn).to_have_attribute("data-saved", "saved")
    expect(conn).not_to_contain_text("not saved")


def test_a_slow_outbox_write_keeps_the_next_message(
    people: People, web_server: LiaisonServer
) -> None:
    dispatch = Rest(web_server, "dispatch")
    title = unique("Slow phone, Mill Lane")
    incident = dispatch.new_incident(title, f"slow-{uuid.uuid4().hex}")
    phone = people.signed_in("outreach", phone=True, hash=f"#/incident/{incident}")
    p = phone.page
    expect(p.locator(".pane.active .pane-title")).to_have_text(title)
    phone.context.set_offline(True)
    expect(p.locator("#conn")).to_have_attribute("data-state", "offline")
    # The outbox write of the first message takes until the test lets it go.
    p.evaluate(
        """() => {
          const store = window.__liaison.store;
          const put = store.putOutbox.bind(store);
          window.__release = null;
          store.putOutbox = (item) =>
            new Promise((resolve) => { window.__release = resolve; }).then(() => put(item));
        }"""
    )
    post(p, "First, written slowly")
    p.wait_for_function("window.__release !== null")
    composer = p.locator(".pane.active textarea.composer-text")
    expect(composer).to_have_value("")
    composer.fill("Second, typed while the first was being saved")
    p.evaluate(
        """() => {
          const store = window.__liaison.store;
          store.putOutbox = Object.getPrototypeOf(store).putOutbox.bind(store);
          window.__release();
        }"""
    )
    expect(p.locator("#conn")).to_have_attribute("data-queued", "1")
    expect(composer).to_have_value("Second, typed while the first was being saved")
    p.locator(".pane.active button.send").click()
    expect(p.locator("#conn")).to_have_attribute("data-queued", "2")
    phone.context.set_offline(False)
    expect(p.locator("#conn")).to_have_attribute("data-queued", "0", timeout=20_000)
    events = dispatch.timeline(incident)
    texts = [e["body"]["text"] for e in events if e["type"] == "message.posted"]
    assert texts == ["First, written slowly", "Second, typed while the first was being saved"]
    phone.errors[:] = [e for e in phone.errors if "ERR_INTERNET_DISCONNECTED" not in e]
    assert phone.errors == []


def test_a_steady_stream_of_events_is_still_saved(
    people: People, web_server: LiaisonServer
) -> None:
    dispatch = Rest(web_server, "dispatch")
    title = unique("Busy channel, Canal Street")
    incident = dispatch.new_incident(title, f"busy-{uuid.uuid4().hex}")
    phone = people.signed_in("outreach", phone=True, hash=f"#/incident/{incident}")
    p = phone.page
    expect(p.locator(".pane.active .pane-title")).to_have_text(title)
    read_back = """async (id) => {
      const app = window.__liaison;
      const state = await app.store.get(app.key('state:' + id));
      return state ? state.seq : 0;
    }"""
    # A post every 300 ms, faster than the save delay: a debounce would never
    # save; the phone must still have written something within a few seconds.
    max_posts = 40
    saved_seq = 0
    for n in range(max_posts):
        dispatch.command(
            {
                "type": "message.post",
                "id": uuid.uuid4().hex,
                "incident": incident,
                "text": f"tick {n:02d}.",
            }
        )
        expect(p.locator(".pane.active .msg", has_text=f"tick {n:02d}.")).to_have_count(1)
        saved_seq = p.evaluate(read_back, incident)
        if saved_seq > 1:
            break
        p.wait_for_timeout(300)  # the pace of the traffic, not a synchronisation
    assert saved_seq > 1, "the incident was never saved while events kept arriving"
