"""Presence and mentions across organisations (issue 9, item 6), on a real server."""

from __future__ import annotations

import asyncio
import time

import pytest

from liaison_client import CommandFailed, LiaisonClient
from tests.conftest import LiaisonServer, connect

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
