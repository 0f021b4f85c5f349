"""Presence and mentions across organisations (issue 9, item 6), on a real server."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from liaison_client import CommandFailed, LiaisonClient
from tests.conftest import ADMIN_PASSWORD, LiaisonServer, connect

POLICE, SHELTER = "metro-police", "harbour-shelter"


async def joint_incident(dispatcher: LiaisonClient) -> str:
    ack = await dispatcher.send(
        {
            "type": "incident.create",
            "title": "Person on the bridge",
            "category": "welfare",
            "orgs": [POLICE, SHELTER],
            "liaisons": {SHELTER: "u_shelter-lead"},
        }
    )
    incident: str = ack["incident"]
    return incident


async def test_a_restricted_message_cannot_mention_an_organisation_outside_it(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    incident = await joint_incident(dispatcher)
    urgent = {
        "type": "message.post",
        "incident": incident,
        "text": "Can the shelter take one adult tonight?",
        "visibility": [POLICE],
        "urgent": True,
    }
    for mentions in ({"orgs": [SHELTER]}, {"users": ["u_shelter-lead"]}):
        with pytest.raises(CommandFailed) as refused:
            await dispatcher.send({**urgent, "mentions": mentions})
        assert refused.value.code == "invalid"
        assert refused.value.error["detail"]["field"] == "mentions"
        assert refused.value.error["detail"]["orgs"] == [SHELTER]
    # Nothing was stored: the shelter's timeline holds no placeholder for it.
    lead = await connect(clients, server, "shelter-lead", live=False)
    assert [ev["type"] for ev in await lead.timeline(incident)] == ["incident.created"]
    await dispatcher.send(
        {**urgent, "visibility": [POLICE, SHELTER], "mentions": {"orgs": [SHELTER]}}
    )


async def online_as(client: LiaisonClient, incident: str, expected: int) -> list[str]:
    """The incident view's ``online`` once it lists ``expected`` users (presence is async)."""
    deadline = time.monotonic() + 10
    while len(online := (await client.incident(incident))["online"]) < expected:
        assert time.monotonic() < deadline, online
        await asyncio.sleep(0.05)
    return sorted(online)


async def test_presence_shows_own_organisation_and_liaisons_only(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    incident = await joint_incident(dispatcher)
    await dispatcher.follow(incident)
    for username in ("officer", "outreach", "shelter-lead"):
        await (await connect(clients, server, username)).follow(incident)
    police_view = await online_as(dispatcher, incident, 3)
    assert police_view == ["u_dispatch", "u_officer", "u_shelter-lead"]
    outreach = await connect(clients, server, "outreach", live=False)
    assert await online_as(outreach, incident, 2) == ["u_outreach", "u_shelter-lead"]


def delivered(client: LiaisonClient, incident: str) -> dict[int, dict[str, Any]]:
    """Every envelope of ``incident`` the client was handed live, by seq (once each)."""
    out: dict[int, dict[str, Any]] = {}
    while not client.events.empty():
        env = client.events.get_nowait()
        if env["incident"] == incident:
            assert env["seq"] not in out, "delivered twice"
            out[env["seq"]] = env
    return out


async def test_red_reaches_its_recipient_only_live_and_in_the_timeline(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    incident = await joint_incident(dispatcher)
    readers = {
        name: await connect(clients, server, name)
        for name in ("outreach", "shelter-lead", "officer")
    }
    for reader in (dispatcher, *readers.values()):
        await reader.follow(incident)
    red = await dispatcher.post(
        incident, "The caller is my informant", tlp="RED", recipients=["u_outreach"]
    )
    for reader in (dispatcher, *readers.values()):
        await reader.wait_seq(incident, red["seq"])
    got = {name: delivered(c, incident)[red["seq"]] for name, c in readers.items()}
    assert got["outreach"]["body"]["text"] == "The caller is my informant"
    assert got["outreach"]["body"]["tlp"] == "RED"
    assert got["outreach"]["body"]["recipients"] == ["u_outreach"]
    # Not the shelter's coordinator, not even another police officer.
    for name in ("shelter-lead", "officer"):
        assert got[name] == {k: got[name][k] for k in RESTRICTED_KEYS}, name
        timeline = {e["seq"]: e for e in await readers[name].timeline(incident)}
        assert timeline[red["seq"]]["type"] == "restricted"
        assert (await readers[name].incident(incident))["messages"] == []
    view = await readers["outreach"].incident(incident)
    assert [(m["text"], m["tlp"]) for m in view["messages"]] == [
        ("The caller is my informant", "RED")
    ]


RESTRICTED_KEYS = ("v", "type", "incident", "seq", "epoch", "digest", "hash")


async def test_a_subject_is_redacted_for_another_organisation_without_an_agreement(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    """Category "crime": no demo agreement covers it, so nothing protected is shared."""
    dispatcher = await connect(clients, server, "dispatch")
    ack = await dispatcher.send(
        {
            "type": "incident.create",
            "title": "Missing person",
            "category": "crime",
            "orgs": [POLICE, SHELTER],
            "subject": {"name": "A. Person", "dob": "1980-02-29", "phone": "+44 7700 900123"},
        }
    )
    incident = ack["incident"]
    lead = await connect(clients, server, "shelter-lead")
    await lead.follow(incident)
    await dispatcher.send(
        {
            "type": "responder.position",
            "incident": incident,
            "lat": 51.505512,
            "lon": -0.075413,
        }
    )
    created = (await lead.timeline(incident))[0]
    marker = {"redacted": True}
    assert created["body"]["subject"] == {
        "name": marker,
        "dob": marker,
        "phone": marker,
        "address": None,
    }
    assert created["redacted"] == ["dob", "name", "phone"]
    assert "salt" not in created
    view = await lead.incident(incident)
    assert view["subject"]["name"] == marker
    assert view["tlp"] == "AMBER"
    assert view["responders"][0]["position"] == marker
    await lead.wait_seq(incident, 2)
    live = delivered(lead, incident)
    assert live[1]["body"]["subject"]["dob"] == marker
    assert live[2]["body"]["position"] == marker
    # The police see it all, with the salt that lets them verify the content.
    mine = (await dispatcher.timeline(incident))[0]
    assert mine["body"]["subject"]["name"] == "A. Person"
    assert "salt" in mine
    assert "redacted" not in mine


async def test_a_newcomer_sees_amber_history_as_placeholders_and_green_in_full(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    ack = await dispatcher.send(
        {"type": "incident.create", "title": "Before the shelter", "category": "crime"}
    )
    incident = ack["incident"]
    amber = await dispatcher.post(incident, "police working notes")
    green = await dispatcher.post(incident, "road closed at the bridge", tlp="GREEN")
    await dispatcher.send({"type": "incident.update", "incident": incident, "add_orgs": [SHELTER]})
    after = await dispatcher.post(incident, "shelter, welcome")
    lead = await connect(clients, server, "shelter-lead")
    await lead.follow(incident)
    await lead.wait_seq(incident, after["seq"])
    for got in (delivered(lead, incident), {e["seq"]: e for e in await lead.timeline(incident)}):
        assert got[amber["seq"]]["type"] == "restricted"
        assert got[green["seq"]]["body"]["text"] == "road closed at the bridge"
        assert got[after["seq"]]["body"]["text"] == "shelter, welcome"
        assert got[1]["type"] == "incident.created"
    texts = [m["text"] for m in (await lead.incident(incident))["messages"]]
    assert texts == ["road closed at the bridge", "shelter, welcome"]


async def test_a_partner_coordinator_cannot_close_or_widen_a_police_led_incident(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    incident = await joint_incident(dispatcher)
    lead = await connect(clients, server, "shelter-lead")
    for command in (
        {"type": "incident.status", "status": "closed"},
        {"type": "incident.update", "lead_org": SHELTER},
        {"type": "task.create", "title": "Police, go", "assignee": {"org": POLICE}},
    ):
        with pytest.raises(CommandFailed) as refused:
            await lead.send({"incident": incident, **command})
        assert refused.value.code == "forbidden"
    await lead.send(
        {"type": "task.create", "incident": incident, "title": "Ours", "assignee": {"org": SHELTER}}
    )


async def test_live_reads_of_restricted_content_are_audited(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    incident = await joint_incident(dispatcher)
    officer = await connect(clients, server, "officer")
    await officer.follow(incident)
    note = await dispatcher.post(incident, "police only", visibility=[POLICE])
    await officer.wait_seq(incident, note["seq"])
    admin = await connect(clients, server, "admin", password=ADMIN_PASSWORD, live=False)
    await admin.request(
        "POST",
        "/api/v1/users",
        {
            "username": "live-auditor",
            "org": POLICE,
            "name": "Ada Auditor",
            "role": "auditor",
            "password": "auditor-password",
        },
    )
    auditor = await connect(
        clients, server, "live-auditor", password="auditor-password", live=False
    )

    async def live_reads() -> list[dict[str, Any]]:
        page = await auditor.request("GET", "/api/v1/audit?limit=1000")
        return [
            r
            for r in page["records"]
            if r["action"] == "incident.read_restricted"
            and r["target"] == incident
            and r["detail"]["path"] == "live"
        ]

    deadline = time.monotonic() + 15  # records are written every FLUSH_S (5 s)
    while not (reads := await live_reads()):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    # The officer follows and got it; the author, not following, did not.
    assert [(r["actor"], r["detail"]["seqs"]) for r in reads] == [("u_officer", [note["seq"]])]


async def test_an_agreement_in_force_shares_and_its_revocation_bites_on_every_path(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    """Category "intake": only the agreement made here covers it."""
    from tests.integration.test_agreements import org_user

    police_admin = await org_user(clients, server, "police-admin-sr", POLICE, "admin")
    dispatcher = await connect(clients, server, "dispatch")
    ack = await dispatcher.send(
        {
            "type": "incident.create",
            "title": "Intake",
            "category": "intake",
            "orgs": [POLICE, SHELTER],
            "subject": {"name": "B. Person", "phone": "+44 7700 900456"},
        }
    )
    incident = ack["incident"]
    lead = await connect(clients, server, "shelter-lead")
    await lead.follow(incident)
    agreement = await police_admin.request(
        "POST",
        "/api/v1/agreements",
        {
            "recipients": [SHELTER],
            "fields": ["name", "position"],
            "position": "coarse",
            "categories": ["intake"],
        },
    )

    async def position(lat: float) -> dict[str, Any]:
        seq = (
            await dispatcher.send(
                {"type": "responder.position", "incident": incident, "lat": lat, "lon": 0.1234}
            )
        )["seq"]
        await lead.wait_seq(incident, seq)
        env: dict[str, Any] = delivered(lead, incident)[seq]
        return env

    shared = await position(51.50551)
    assert shared["body"]["position"]["precision"] == "coarse"
    assert shared["body"]["position"]["lat"] == 51.506
    view = await lead.incident(incident)
    assert view["subject"]["name"] == "B. Person"  # granted
    assert view["subject"]["phone"] == {"redacted": True}  # not granted
    await police_admin.request("POST", f"/api/v1/agreements/{agreement['id']}/revoke")
    # In force at once on this node: the next delivery, and every read, is redacted.
    assert (await position(51.6))["body"]["position"] == {"redacted": True}
    view = await lead.incident(incident)
    assert view["subject"]["name"] == {"redacted": True}
    assert view["responders"][0]["position"] == {"redacted": True}
    timeline = await lead.timeline(incident)
    assert timeline[0]["body"]["subject"]["name"] == {"redacted": True}
    assert all(
        e["body"]["position"] == {"redacted": True}
        for e in timeline
        if e["type"] == "responder.position"
    )
