"""Browser tests: the built client (client_web/dist) in Debian's chromium,
driven by Playwright's bundled driver, against a real Liaison server.

No browser is downloaded: Playwright launches /usr/bin/chromium (installed by
``make system-deps``). The tests are skipped, with the reason, only when that
binary is missing.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    ViewportSize,
    sync_playwright,
)

from tests.conftest import DEMO_PASSWORD, ROOT, LiaisonServer

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DIST = ROOT / "client_web" / "dist"
ARTIFACTS = ROOT / "test-artifacts"

DESK: ViewportSize = {"width": 1440, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiaisonServer]:
    """A demo server of the browser tests' own: their incident lists hold only their incidents."""
    if not (DIST / "index.html").exists():
        pytest.fail("client_web/dist is not built: run `make client` (make test does)")
    srv = LiaisonServer(tmp_path_factory.mktemp("liaison-web"))
    srv.start()
    yield srv
    srv.stop()
    assert srv.errors_logged() == [], "the server logged errors"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: `make system-deps` installs Debian's chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@dataclass
class Person:
    """One person's browser: a context (own storage) and its page, with what the page logged."""

    context: BrowserContext
    page: Page
    errors: list[str] = field(default_factory=list)

    def close(self) -> None:
        self.context.close()


class People:
    """Opens browser contexts for a test and closes them afterwards."""

    def __init__(self, browser: Browser, server: LiaisonServer) -> None:
        self.browser = browser
        self.server = server
        self.opened: list[Person] = []

    def open(self, *, phone: bool = False, position: tuple[float, float] | None = None) -> Person:
        """A fresh browser context; ``position`` grants geolocation at that place."""
        extra: dict[str, Any] = {}
        if position is not None:
            extra = {
                "permissions": ["geolocation"],
                "geolocation": {"latitude": position[0], "longitude": position[1], "accuracy": 8},
            }
        if phone:
            context = self.browser.new_context(
                viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2, **extra
            )
        else:
            context = self.browser.new_context(viewport=DESK, **extra)
        context.set_default_timeout(15_000)
        page = context.new_page()
        person = Person(context, page)

        def on_console(msg: ConsoleMessage) -> None:
            if msg.type == "error":
                person.errors.append(msg.text)

        page.on("console", on_console)
        page.on("pageerror", lambda err: person.errors.append(f"page error: {err}"))
        self.opened.append(person)
        return person

    def signed_in(
        self,
        username: str,
        *,
        phone: bool = False,
        hash: str = "",
        position: tuple[float, float] | None = None,
    ) -> Person:
        person = self.open(phone=phone, position=position)
        page = person.page
        page.goto(self.server.url + "/" + hash)
        page.fill("#login-user", username)
        page.fill("#login-password", DEMO_PASSWORD)
        page.click("form.login-form button[type=submit]")
        page.wait_for_selector("#conn[data-state=online]")
        return person

    def close(self) -> None:
        for person in self.opened:
            person.close()


@pytest.fixture
def people(browser: Browser, web_server: LiaisonServer) -> Iterator[People]:
    opened = People(browser, web_server)
    yield opened
    opened.close()


# ---------------------------------------------------------------- REST helpers


class Rest:
    """A user's REST session (stdlib only: these tests are synchronous)."""

    def __init__(self, server: LiaisonServer, username: str) -> None:
        self.server = server
        data = self.call(
            "POST", "/api/v1/auth/login", {"username": username, "password": DEMO_PASSWORD}
        )
        self.token: str = data["token"]
        self.user: dict[str, Any] = data["user"]

    def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if getattr(self, "token", None):
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(  # noqa: S310 - loopback test server
            self.server.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers=headers,
        )
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read()!r}") from None

    def command(self, cmd: dict[str, Any]) -> dict[str, Any]:
        ack: dict[str, Any] = self.call("POST", "/api/v1/commands", cmd)
        return ack

    def timeline(self, incident: str) -> list[dict[str, Any]]:
        page = self.call("GET", f"/api/v1/incidents/{incident}/timeline?after_seq=0&limit=1000")
        events: list[dict[str, Any]] = page["events"]
        return events

    def new_incident(self, title: str, cid: str) -> str:
        ack = self.command(
            {
                "type": "incident.create",
                "id": cid,
                "title": title,
                "category": "welfare",
                "priority": "high",
                "orgs": ["harbour-shelter"],
                "location": {"lat": 51.5055, "lon": -0.0754, "address": "Harbour Bridge"},
            }
        )
        incident: str = ack["incident"]
        return incident
