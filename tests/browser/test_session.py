"""The browser's session clock against a real server with short lifetimes.

Access tokens live 62 s (refreshed 60 s before expiry, so about 2 s after
sign-in) and the idle timeout is 130 s (warned 2 min before its end, so 10 s
after the last action): the whole cycle fits in a test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import DIST, People
from tests.conftest import LiaisonServer


@pytest.fixture(scope="module")
def short_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiaisonServer]:
    if not (DIST / "index.html").exists():
        pytest.fail("client_web/dist is not built: run `make client` (make test does)")
    srv = LiaisonServer(
        tmp_path_factory.mktemp("liaison-session"),
        env={"LIAISON_TOKEN_TTL_S": "62", "LIAISON_IDLE_TIMEOUT_S": "130"},
    )
    srv.start()
    yield srv
    srv.stop()
    assert srv.errors_logged() == [], "the server logged errors"


def test_silent_refresh_and_the_idle_warning(browser: Browser, short_server: LiaisonServer) -> None:
    people = People(browser, short_server)
    try:
        person = people.signed_in("outreach", phone=True)
        page = person.page
        first = page.evaluate("window.__liaison.session.token")
        page.wait_for_function(
            "(first) => window.__liaison.session.token !== first", arg=first, timeout=15_000
        )
        assert page.get_attribute("#conn", "data-state") == "online"
        status = page.evaluate(
            """fetch('/api/v1/me', {headers: {Authorization:
                 'Bearer ' + window.__liaison.session.token}}).then((r) => r.status)"""
        )
        assert status == 200, "the refreshed token works"
        warning = page.locator("[data-session-warning]")
        warning.wait_for(timeout=20_000)
        assert "ends in 2 minutes" in warning.inner_text()
        warning.get_by_role("button", name="Stay signed in").click()
        page.wait_for_selector("[data-session-warning]", state="detached", timeout=5_000)
        assert page.get_attribute("#conn", "data-state") == "online"
        assert person.errors == []
    finally:
        people.close()
