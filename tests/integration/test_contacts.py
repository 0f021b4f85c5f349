"""Contacts: a liaison's phone number for participants only, bots named (SPEC 18.6)."""

from __future__ import annotations

import pytest

from liaison_client import CommandFailed, LiaisonClient
from tests.conftest import ADMIN_PASSWORD, LiaisonServer, bot_client, connect


async def test_participants_get_liaisons_with_phones_and_the_bots_they_see(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatch = await connect(clients, server, "dispatch")
    shelter = await connect(clients, server, "shelter-lead", live=False)
    ack = await dispatch.send(
        {
            "type": "incident.create",
            "title": "Contacts",
            "category": "welfare",
            "orgs": ["harbour-shelter"],
            "liaisons": {"metro-police": "u_dispatch", "harbour-shelter": "u_shelter-lead"},
        }
    )
    incident = ack["incident"]
    bot = await bot_client(clients, server, live=False)
    await bot.request(
        "POST",
        "/api/v1/commands",
        {"type": "message.post", "id": "c-bot-1", "incident": incident, "text": "CAD 4711"},
    )
    got = await shelter.request("GET", f"/api/v1/incidents/{incident}/contacts")
    assert got["liaisons"] == [
        {"org": "metro-police", "user": "u_dispatch", "name": "Dana Dispatcher",
         "phone": "+44 20 7946 0101"},
        {"org": "harbour-shelter", "user": "u_shelter-lead", "name": "Lee Coordinator",
         "phone": "+44 20 7946 0202"},
    ]  # fmt: skip
    assert got["bots"] == ["u_cad-bot"]
    # An incident the shelter does not take part in: the same refusal as none at all.
    solo = (
        await dispatch.send({"type": "incident.create", "title": "Police only", "category": "x"})
    )["incident"]
    for path in (f"/api/v1/incidents/{solo}/contacts", "/api/v1/incidents/inc_none/contacts"):
        with pytest.raises(CommandFailed) as refused:
            await shelter.request("GET", path)
        assert refused.value.code == "not_found"


async def test_an_admin_sets_and_removes_a_phone_number(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    root = await connect(clients, server, "admin", password=ADMIN_PASSWORD, live=False)
    user = await root.request("POST", "/api/v1/users/u_officer/phone", {"phone": " 112 "})
    assert user["phone"] == "112"
    with pytest.raises(CommandFailed) as bad:
        await root.request("POST", "/api/v1/users/u_officer/phone", {"phone": "call me"})
    assert (bad.value.code, bad.value.error["detail"]["field"]) == ("invalid", "phone")
    assert (await root.request("POST", "/api/v1/users/u_officer/phone", {"phone": None}))[
        "phone"
    ] is None
    officer = await connect(clients, server, "officer", live=False)
    with pytest.raises(CommandFailed) as refused:
        await officer.request("POST", "/api/v1/users/u_officer/phone", {"phone": "112"})
    assert refused.value.code == "forbidden"
