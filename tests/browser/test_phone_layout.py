"""Issue 10 items 8 and 9 in headless Chromium: the phone layout measured at
390x844 and 844x390, and what a responder needs to know (description,
liaisons with tap-to-call, links, bots, edits, refusals in words, the
organisations dialog), walked on a phone and at a desk."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import People, Rest
from tests.conftest import ADMIN_PASSWORD, LiaisonServer

HOSTILE = (
    '<img src=x onerror="window.__xss=1"> see https://example.org/a?b=1. '
    "not javascript:alert(1) — call +44 20 7946 0101"
)
#: Close together, so their map labels would overlap where they are drawn.
NEAR = [(51.50552, -0.07538), (51.50549, -0.07542), (51.50551, -0.07536)]


def _admin_call(server: LiaisonServer, token: str, method: str, path: str, body: Any) -> Any:
    req = urllib.request.Request(  # noqa: S310 - loopback test server
        server.url + path,
        data=json.dumps(body).encode(),
        method=method,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
        return json.loads(resp.read())


_KEYS: dict[str, str] = {}


def _bot_key(server: LiaisonServer) -> str:
    """An API key of the demo CAD bot, made by a police admin (and the org River Rescue)."""
    if server.url in _KEYS:
        return _KEYS[server.url]
    login = {"username": "admin", "password": ADMIN_PASSWORD}
    root = _admin_call(server, "", "POST", "/api/v1/auth/login", login)["token"]
    admin = {
        "username": "phone-admin",
        "org": "metro-police",
        "name": "Phone Admin",
        "role": "admin",
        "password": ADMIN_PASSWORD,
    }
    _admin_call(server, root, "POST", "/api/v1/users", admin)
    _admin_call(
        server,
        root,
        "POST",
        "/api/v1/orgs",
        {"id": "river-rescue", "name": "River Rescue", "kind": "ngo"},
    )
    login = {"username": "phone-admin", "password": ADMIN_PASSWORD}
    token = _admin_call(server, "", "POST", "/api/v1/auth/login", login)["token"]
    key = _admin_call(server, token, "POST", "/api/v1/keys", {"user": "cad-bot", "name": "CAD"})
    _KEYS[server.url] = str(key["key"])
    return _KEYS[server.url]


def _setup(server: LiaisonServer) -> tuple[Rest, str]:
    dispatch = Rest(server, "dispatch")
    incident = dispatch.command(
        {
            "type": "incident.create",
            "id": "c-phone-open",
            "title": "Person in the water by Harbour Bridge",
            "category": "welfare",
            "priority": "high",
            "orgs": ["harbour-shelter"],
            "liaisons": {"metro-police": "u_dispatch", "harbour-shelter": "u_shelter-lead"},
            "description": "Caller saw a man climb over the railing; he may be injured.",
            "location": {"lat": 51.5055, "lon": -0.0754, "address": "Harbour Bridge, north end"},
        }
    )["incident"]
    for i in range(10):
        dispatch.command(
            {
                "type": "message.post",
                "id": f"c-phone-m{i}",
                "incident": incident,
                "text": f"Update {i}: units moving along the quay",
            }
        )
    dispatch.command(
        {"type": "message.post", "id": "c-phone-x", "incident": incident, "text": HOSTILE}
    )
    bot = Rest.__new__(Rest)
    bot.server, bot.token = server, _bot_key(server)
    bot.command(
        {
            "type": "message.post",
            "id": "c-phone-bot",
            "incident": incident,
            "text": "CAD: unit 12 assigned",
        }
    )
    for i, (who, (lat, lon)) in enumerate(
        zip(("officer", "sergeant", "dispatch"), NEAR, strict=True)
    ):
        Rest(server, who).command(
            {
                "type": "responder.status",
                "id": f"c-phone-st{i}",
                "incident": incident,
                "status": "on_scene",
                "position": {"lat": lat, "lon": lon, "accuracy": 5},
            }
        )
    return dispatch, incident


def _box(page: Page, selector: str) -> dict[str, float]:
    box = page.locator(selector).first.bounding_box()
    assert box is not None, selector
    return {"x": box["x"], "y": box["y"], "width": box["width"], "height": box["height"]}


def _header_fits(page: Page) -> dict[str, Any]:
    """The top bar at the viewport's width: every control inside it, on one line
    (a wrapped "Share position: off" made the bar two lines tall), in one row."""
    got: dict[str, Any] = page.evaluate(
        """() => {
          const bar = document.querySelector('.topbar');
          const items = [...bar.querySelectorAll(
            '.conn, .header-actions > button, .account-menu > summary')]
            .filter((el) => el.offsetParent !== null)
            .map((el) => {
              const r = el.getBoundingClientRect();
              return {cls: el.className || el.tagName, left: r.left, right: r.right,
                      top: r.top, height: r.height, text: el.textContent};
            });
          return {width: innerWidth, bar: bar.getBoundingClientRect().height, items};
        }"""
    )
    print("header", got)
    for item in got["items"]:
        assert item["left"] >= 0, got
        assert item["right"] <= got["width"], got
        assert item["height"] <= 44, got  # one line of text
    middles = [item["top"] + item["height"] / 2 for item in got["items"]]
    assert max(middles) - min(middles) <= 4, got  # one row
    conn = got["items"][0]
    assert conn["right"] - conn["left"] >= 70, got  # "Online" whole, with its dot
    assert got["bar"] <= 56, got
    return got


def _message_room(page: Page) -> float:
    """The channel's height in messages (of the median message's height)."""
    sizes = page.evaluate(
        """() => {
          const s = document.querySelector('.pane.active .channel-scroll');
          const msgs = [...s.querySelectorAll('.msg')].map((m) => m.getBoundingClientRect().height);
          msgs.sort((a, b) => a - b);
          return [s.clientHeight, msgs[Math.floor(msgs.length / 2)]];
        }"""
    )
    return float(sizes[0]) / float(sizes[1])


def _not_typing(page: Page) -> None:
    tag = page.evaluate("document.activeElement && document.activeElement.tagName")
    assert tag not in ("INPUT", "TEXTAREA", "SELECT"), tag


def _labels_apart(page: Page) -> int:
    """Every shown map label inside the map, none overlapping another; how many."""
    got = page.evaluate(
        """() => {
          const pane = document.querySelector('.pane.active');
          const map = pane.querySelector('.map-canvas').getBoundingClientRect();
          const boxes = [...pane.querySelectorAll('.leaflet-tooltip.map-tip')]
            .filter((el) => el.dataset.placed === 'shown')
            .map((el) => el.getBoundingClientRect());
          const inside = boxes.every((b) => b.left >= map.left - 1 && b.right <= map.right + 1
            && b.top >= map.top - 1 && b.bottom <= map.bottom + 1);
          let overlaps = 0;
          boxes.forEach((a, i) => boxes.slice(i + 1).forEach((b) => {
            const x = a.left < b.right - 1 && b.left < a.right - 1;
            if (x && a.top < b.bottom - 1 && b.top < a.bottom - 1) overlaps++;
          }));
          return {n: boxes.length, inside, overlaps};
        }"""
    )
    assert got["inside"], got
    assert got["overlaps"] == 0, got
    return int(got["n"])


def test_the_phone_walk(people: People, web_server: LiaisonServer, artifacts: Path) -> None:
    dispatch, incident = _setup(web_server)
    nia = people.signed_in("outreach", phone=True, hash=f"#/incident/{incident}")
    page = nia.page
    pane = page.locator(".pane.active")
    expect(pane.locator(".msg", has_text="CAD: unit 12 assigned")).to_be_visible()

    # What a responder needs to know: the description and whom to call.
    expect(pane.locator(".pane-known")).to_have_text(
        "What is known: Caller saw a man climb over the railing; he may be injured."
    )
    call = pane.locator(".org-contact[data-org=metro-police] a.call")
    expect(call).to_have_attribute("href", "tel:+442079460101")
    expect(pane.locator(".org-contact[data-org=metro-police] .liaison")).to_have_text(
        " Dana Dispatcher"
    )
    expect(pane.locator(".org-contact[data-org=harbour-shelter] a.call")).to_have_attribute(
        "href", "tel:+442079460202"
    )
    # Bots are marked; people are not.
    bot_msg = pane.locator(".msg", has_text="CAD: unit 12 assigned")
    expect(bot_msg.locator(".bot-tag")).to_have_text("BOT")
    assert pane.locator(".msg", has_text="Update 3").locator(".bot-tag").count() == 0

    # Links built as nodes: http(s) with noopener in a new tab, tel:, and nothing else.
    hostile = pane.locator(".msg", has_text="see https://example.org")
    link = hostile.locator("a.msg-link[href^=http]")
    expect(link).to_have_attribute("href", "https://example.org/a?b=1")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(hostile.locator("a.tel")).to_have_attribute("href", "tel:+442079460101")
    assert hostile.locator("img").count() == 0
    assert hostile.locator("a").count() == 2
    assert page.evaluate("window.__xss") is None
    expect(hostile.locator(".msg-text")).to_contain_text('<img src=x onerror="window.__xss=1">')

    # Portrait at rest, then compact while reading back: room for the messages.
    page.wait_for_function(
        "() => { const s = document.querySelector('.pane.active .channel-scroll');"
        " return s.scrollHeight - s.scrollTop - s.clientHeight < 4; }"
    )
    rest_room = _message_room(page)
    _header_fits(page)  # Online, Share position, Capacity and the account menu
    wide = page.evaluate(
        """() => [...document.querySelectorAll('.pane.active .msg')]
          .filter((m) => m.getBoundingClientRect().right > innerWidth)
          .map((m) => m.textContent.slice(0, 40))"""
    )
    assert wide == [], wide  # no message wider than the phone
    bot_tag = _box(page, ".pane.active .bot-tag")
    assert bot_tag["width"] >= 24, bot_tag  # "BOT" whole, not "B…"
    page.screenshot(path=str(artifacts / "phone-portrait-rest.png"))
    page.locator(".pane.active .channel-scroll").hover()
    page.mouse.wheel(0, -600)
    page.wait_for_function("() => document.body.classList.contains('compact')")
    expect(pane.locator(".status-bar")).to_be_hidden()
    compact_room = _message_room(page)
    page.screenshot(path=str(artifacts / "phone-portrait-compact.png"))
    print(f"room at rest {rest_room:.1f}, compact {compact_room:.1f} messages")
    assert rest_room >= 3, rest_room
    assert compact_room >= 5, compact_room
    page.mouse.wheel(0, 5000)
    page.wait_for_function("() => !document.body.classList.contains('compact')")
    expect(pane.locator(".status-bar")).to_be_visible()
    # Typing collapses too, and shows the composer's options.
    pane.locator(".composer-text").focus()
    page.wait_for_function("() => document.body.classList.contains('compact')")
    expect(pane.locator(".composer-row")).to_be_visible()
    page.screenshot(path=str(artifacts / "phone-portrait-typing.png"))
    assert _message_room(page) >= 5
    pane.locator(".composer-text").blur()
    page.wait_for_function("() => !document.body.classList.contains('compact')")

    # Sign out is in the account menu, never next to "Share position".
    expect(page.locator(".geo-toggle")).to_be_visible()
    expect(page.locator(".sign-out")).to_be_hidden()
    page.locator(".account-menu > summary").click()
    expect(page.locator(".sign-out")).to_be_visible()
    geo, out = _box(page, ".geo-toggle"), _box(page, ".sign-out")
    assert out["y"] >= geo["y"] + geo["height"] + 8, (geo, out)
    expect(page.locator(".account-org")).to_have_text("Harbour Street Shelter")
    page.screenshot(path=str(artifacts / "phone-account-menu.png"))
    page.mouse.click(20, 700)  # a tap elsewhere closes it
    expect(page.locator(".sign-out")).to_be_hidden()

    # The map: labels apart and inside, the note above the tab bar, links out.
    pane.locator(".section-tab[data-tab=map]").click()
    expect(pane.locator(".map-label.incident")).to_be_visible()
    expect(pane.locator(".map-label.person")).to_have_count(3)
    page.wait_for_function(
        "() => document.querySelectorAll("
        "'.pane.active .leaflet-tooltip.map-tip[data-placed]').length === 4"
    )
    assert _labels_apart(page) == 4  # one spot: stacked, none hidden
    note = pane.locator(".map-note")
    expect(note).to_contain_text("No map tiles configured")
    n, tabs = _box(page, ".pane.active .map-note"), _box(page, ".pane.active .section-tabs")
    assert n["y"] + n["height"] <= tabs["y"], (n, tabs)
    links = pane.locator(".incident-map-links")
    expect(links.locator("a.geo")).to_have_attribute(
        "href", "geo:51.5055,-0.0754?q=51.5055,-0.0754(Harbour%20Bridge%2C%20north%20end)"
    )
    expect(links.locator("a.osm")).to_have_attribute(
        "href", "https://www.openstreetmap.org/?mlat=51.5055&mlon=-0.0754#map=17/51.5055/-0.0754"
    )
    expect(links.locator("a.navigate")).to_have_attribute("target", "_blank")
    officer = pane.locator(".responder[data-user=u_officer] a.geo")
    geo_href = "geo:51.50552,-0.07538?q=51.50552,-0.07538(Omar%20Officer)"
    expect(officer).to_have_attribute("href", geo_href)
    page.screenshot(path=str(artifacts / "phone-map-labels.png"))
    pane.locator(".section-tab[data-tab=channel]").click()

    # Back: the phone's Back returns to the list, and opens no keyboard.
    pane.locator(".back").click()
    expect(page.locator(".list-panel")).to_be_visible()
    _not_typing(page)
    page.locator(f".incident-row[data-incident={incident}] .row-open").click()
    expect(page.locator(".pane.active .pane-title")).to_be_visible()
    page.go_back()
    expect(page.locator(".list-panel")).to_be_visible()
    expect(page.locator(".workspace")).to_be_hidden()
    _not_typing(page)
    assert page.url.startswith(web_server.url)
    page.locator(f".incident-row[data-incident={incident}] .row-open").click()

    # Landscape: the composer stays and the channel keeps room.
    page.set_viewport_size({"width": 844, "height": 390})
    expect(pane.locator(".composer-text")).to_be_visible()
    composer = _box(page, ".pane.active .composer-text")
    assert composer["y"] + composer["height"] <= 390, composer
    page.screenshot(path=str(artifacts / "phone-landscape.png"))
    assert _message_room(page) >= 2.5, _message_room(page)
    page.set_viewport_size({"width": 390, "height": 844})

    # A refusal after being offline names who did what and when.
    nia.context.set_offline(True)
    expect(page.locator("#conn")).to_have_attribute("data-state", "offline")
    pane.locator(".composer-text").fill("We are at the steps")
    pane.locator(".composer .send").click()
    dispatch.command(
        {"type": "incident.status", "id": "c-phone-close", "incident": incident, "status": "closed"}
    )
    nia.context.set_offline(False)
    failed = pane.locator(".pending-status.failed")
    expect(failed).to_contain_text(
        "Your message was not posted: Dana Dispatcher closed this incident at"
    )
    expect(page.locator(".toast.error")).to_contain_text("Dana Dispatcher closed this incident at")
    page.screenshot(path=str(artifacts / "phone-refusal.png"))
    assert nia.errors == [], nia.errors


def test_the_desk_walk(people: People, web_server: LiaisonServer, artifacts: Path) -> None:
    _bot_key(web_server)
    dispatch = Rest(web_server, "dispatch")
    incident = dispatch.command(
        {
            "type": "incident.create",
            "id": "c-desk-open",
            "title": "Rough sleeper, hypothermia risk",
            "category": "welfare",
            "orgs": ["harbour-shelter"],
            "description": "Seen under the rail arches at 02:10.",
        }
    )["incident"]
    dispatch.command(
        {
            "type": "message.post",
            "id": "c-desk-urgent",
            "incident": incident,
            "text": "Can the shelter take him tonight?",
            "urgent": True,
            "mentions": {"orgs": ["harbour-shelter"], "users": []},
        }
    )
    sam = people.signed_in("sergeant")
    row = sam.page.locator(f".incident-row[data-incident={incident}]")
    expect(row.locator(".pill.urgent")).to_have_text("1 urgent")
    # The addressee acknowledges: the supervisor's list clears the badge.
    Rest(web_server, "shelter-lead").command(
        {"type": "message.ack", "id": "c-desk-ack", "incident": incident, "message": 2}
    )
    expect(row.locator(".pill.urgent")).to_have_count(0)

    dana = people.signed_in("dispatch", hash=f"#/incident/{incident}")
    page = dana.page
    pane = page.locator(".pane.active")
    expect(pane.locator(".pane-known")).to_have_text(
        "What is known: Seen under the rail arches at 02:10."
    )
    expect(pane.locator(".org-contact[data-org=metro-police]")).to_contain_text("no liaison")
    # Name liaisons and add an organisation after creation.
    pane.locator(".edit-orgs").click()
    dialog = page.locator("dialog.orgs-dialog")
    dialog.locator("select.liaison-pick[data-org=metro-police]").select_option("u_officer")
    dialog.locator("input.add-org[value=river-rescue]").check()
    page.screenshot(path=str(artifacts / "desk-orgs-dialog.png"))
    dialog.locator("button[type=submit]").click()
    liaison = pane.locator(".org-contact[data-org=metro-police] .liaison")
    expect(liaison).to_have_text(" Omar Officer")
    expect(pane.locator(".org-contact[data-org=river-rescue]")).to_contain_text("River Rescue")
    updated = [e for e in dispatch.timeline(incident) if e["type"] == "incident.updated"]
    assert updated[-1]["body"]["add_orgs"] == ["river-rescue"]
    assert updated[-1]["body"]["liaisons"] == {"metro-police": "u_officer"}

    # Edit one's own message: everyone sees "(edited)".
    mine = pane.locator(".msg[data-seq='2']")
    mine.locator(".edit-msg").click()
    mine.locator(".edit-text").fill("Can the shelter take him tonight? He is awake.")
    mine.locator(".save-edit").click()
    expect(mine.locator(".msg-text")).to_have_text(
        "Can the shelter take him tonight? He is awake. (edited)"
    )
    page.screenshot(path=str(artifacts / "desk-edited.png"))
    edited = [e for e in dispatch.timeline(incident) if e["type"] == "message.edited"]
    assert edited[-1]["body"]["text"] == "Can the shelter take him tonight? He is awake."
    assert dana.errors == [], dana.errors
    assert sam.errors == [], sam.errors
