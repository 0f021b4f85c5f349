"""Web Push (SPEC section 26) on a real server, against a local push service that
checks each request's VAPID JWT and decrypts its body as the browser would
(tests/integration/push_service.py): what a phone gets, and what it never gets."""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from liaison_client import CommandFailed, LiaisonClient
from tests.conftest import LiaisonServer, connect, new_incident
from tests.integration.push_service import PushService
from tests.waiting import until


@pytest.fixture
async def push() -> AsyncIterator[PushService]:
    service = PushService()
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
def push_server(tmp_path: Path, push: PushService) -> Iterator[LiaisonServer]:
    srv = LiaisonServer(tmp_path / "data", env={"LIAISON_PUSH_SERVICES": push.origin})
    srv.start()
    yield srv
    srv.stop()
    assert srv.errors_logged() == []


def _metric(srv: LiaisonServer, name: str) -> float:
    with urllib.request.urlopen(srv.url + "/metrics", timeout=5) as resp:  # noqa: S310
        for line in resp.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


async def test_pushes_carry_only_what_each_recipient_may_see(
    push_server: LiaisonServer, push: PushService, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, push_server, "dispatch")
    phone = await connect(clients, push_server, "outreach", live=False)
    officer = await connect(clients, push_server, "officer", live=False)
    push.server_key = (await phone.request("GET", "/api/v1/push/key"))["public_key"]
    assert (push_server.data_dir / "vapid-private.pem").stat().st_mode & 0o777 == 0o600
    shelter_browser, police_browser = push.subscribe(), push.subscribe()
    await phone.request("POST", "/api/v1/push/subscriptions", shelter_browser.to_json())
    await officer.request("POST", "/api/v1/push/subscriptions", police_browser.to_json())
    elsewhere = {**shelter_browser.to_json(), "endpoint": "http://10.0.0.5/admin"}
    with pytest.raises(CommandFailed) as refused:  # not a push service this server allows
        await phone.request("POST", "/api/v1/push/subscriptions", elsewhere)
    assert refused.value.code == "invalid"

    incident = await new_incident(dispatcher, "Bridge welfare check")
    await dispatcher.post(
        incident,
        "police only: suspect named Quentin",
        visibility=["metro-police"],
        urgent=True,
        mentions={"users": ["u_officer"]},
    )
    await dispatcher.post(incident, "Need a bed tonight", urgent=True)
    await dispatcher.send(
        {
            "type": "task.create",
            "incident": incident,
            "title": "Bring blankets",
            "assignee": {"org": "harbour-shelter"},
        }
    )
    # A capacity request to the shelter: its push names who asks, not what.
    await dispatcher.request_capacity(incident, "harbour-shelter", {"beds": 3}, note="Tonight")
    await until(lambda: len(push.of(shelter_browser)) >= 3, 10, "the shelter's three pushes")
    await until(lambda: len(push.of(police_browser)) >= 2, 10, "the officer's two pushes")
    assert push.refused == []
    # Sent by several workers at once: they may arrive in any order.
    shelter = sorted(push.of(shelter_browser), key=lambda p: int(p["seq"]))
    assert [(p["reason"], p["title"], p["body"]) for p in shelter] == [
        ("urgent", "Urgent message", "Dana Dispatcher: Need a bed tonight"),
        ("task", "Task for you", "Bring blankets"),
        ("capacity", "Capacity request", "Dana Dispatcher: asks your organisation for capacity"),
    ]
    assert "Tonight" not in str(shelter)
    assert "beds" not in str(shelter)
    assert "Quentin" not in str(shelter), "police-only text reached an NGO phone"
    assert all(p["incident"] == incident and p["url"].endswith(incident) for p in shelter)
    urgent = next(
        d
        for d in push.delivered
        if d.browser == shelter_browser.id and d.payload["reason"] == "urgent"
    )
    assert urgent.headers["Urgency"] == "high"
    assert int(urgent.headers["TTL"]) == 3600
    assert any("Quentin" in p["body"] for p in push.of(police_browser))  # police may read it

    # The browser's subscription is gone (410): the server deletes it.
    push.answers[shelter_browser.id] = [410]
    await dispatcher.post(incident, "Second urgent", urgent=True)
    await until(lambda: _metric(push_server, "liaison_push_gone_total") == 1, 10, "the 410")
    gone = await phone.request(
        "DELETE", "/api/v1/push/subscriptions?endpoint=" + shelter_browser.endpoint
    )
    assert gone == {"deleted": False}

    # 429: retried after the back-off; then a restart pushes nothing again.
    push.answers[police_browser.id] = [429]
    await until(lambda: len(push.of(police_browser)) == 3, 10, "the retried push")
    push_server.stop()
    push_server.start()
    again = await connect(clients, push_server, "dispatch")
    await again.post(incident, "After the restart", urgent=True)
    await until(lambda: len(push.of(police_browser)) == 4, 10, "the push after the restart")
    bodies = [p["body"] for p in push.of(police_browser)]
    assert bodies[2:] == ["Dana Dispatcher: Second urgent", "Dana Dispatcher: After the restart"]
