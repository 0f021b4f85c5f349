"""The REST API: login, reads, bot writes, admin, errors."""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

import aiohttp
import pytest

from liaison_client import CommandFailed, LiaisonClient
from tests.conftest import ADMIN_PASSWORD, ROOT, LiaisonServer, bot_client, connect, new_incident


async def http(
    srv: LiaisonServer,
    method: str,
    path: str,
    token: str | None = None,
    body: Any = None,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, srv.url + path, json=body if raw is None else None, data=raw, headers=headers
        ) as resp,
    ):
        return resp.status, await resp.json()


async def test_login_refuses_wrong_passwords_with_a_typed_error(server: LiaisonServer) -> None:
    status, body = await http(
        server, "POST", "/api/v1/auth/login", body={"username": "dispatch", "password": "wrong"}
    )
    assert status == 401
    assert body["error"]["code"] == "unauthenticated"
    status, body = await http(
        server, "POST", "/api/v1/auth/login", body={"username": "nobody", "password": "wrong"}
    )
    assert status == 401
    status, body = await http(server, "GET", "/api/v1/incidents", token="v1.forged.token")
    assert status == 401


async def test_malformed_and_oversized_bodies_are_refused(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    bot = await bot_client(clients, server, live=False)
    status, body = await http(server, "POST", "/api/v1/commands", bot.token, raw=b"{nope")
    assert (status, body["error"]["code"]) == (400, "malformed")
    status, body = await http(
        server,
        "POST",
        "/api/v1/commands",
        bot.token,
        raw=b'{"type":"message.post","text":"' + b"x" * 70_000 + b'"}',
    )
    assert (status, body["error"]["code"]) == (413, "too_large")
    status, body = await http(
        server,
        "POST",
        "/api/v1/commands",
        bot.token,
        body={"type": "follow", "incidents": [{"incident": "x"}]},
    )
    assert (status, body["error"]["code"]) == (400, "unknown_type")


async def test_bot_posts_over_rest_idempotently_and_live_clients_see_it(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    incident = await new_incident(dispatcher)
    await dispatcher.follow(incident, after_seq=1)
    bot = await bot_client(clients, server, live=False)
    command = {
        "type": "message.post",
        "id": "cad-" + uuid.uuid4().hex,
        "incident": incident,
        "text": "Unit 12 on scene",
    }
    status, first = await http(server, "POST", "/api/v1/commands", bot.token, body=command)
    assert status == 200
    assert first["ok"] is True
    status, again = await http(server, "POST", "/api/v1/commands", bot.token, body=command)
    assert (again["seq"], again["duplicate"]) == (first["seq"], True)
    event = await dispatcher.next_event()
    assert (event["seq"], event["actor"]["user"]) == (first["seq"], "u_cad-bot")


async def test_timeline_pages_by_seq(server: LiaisonServer, clients: list[LiaisonClient]) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    incident = await new_incident(dispatcher)
    for i in range(25):
        await dispatcher.post(incident, f"m{i}")
    path = f"/api/v1/incidents/{incident}/timeline"
    status, page = await http(server, "GET", path + "?after_seq=0&limit=10", dispatcher.token)
    assert status == 200
    assert [e["seq"] for e in page["events"]] == list(range(1, 11))
    assert page["next_after_seq"] == 10
    assert page["head_seq"] == 26
    _, page = await http(server, "GET", path + "?after_seq=20&limit=10", dispatcher.token)
    assert [e["seq"] for e in page["events"]] == list(range(21, 27))
    assert page["next_after_seq"] is None
    first = page["events"][0]
    assert set(first) >= {"ts", "actor", "hash", "digest", "type", "body"}
    status, err = await http(server, "GET", path + "?after_seq=99", dispatcher.token)
    assert (status, err["error"]["code"]) == (416, "out_of_range")
    status, err = await http(server, "GET", path + "?limit=abc", dispatcher.token)
    assert (status, err["error"]["code"]) == (400, "invalid")


async def test_incidents_are_listed_and_filtered(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    marker = uuid.uuid4().hex[:8]
    a = await new_incident(dispatcher, f"Flooded underpass {marker}")
    b = await new_incident(dispatcher, f"Missing person {marker}")
    await dispatcher.send({"type": "incident.status", "incident": b, "status": "active"})
    listed = {i["id"]: i for i in await dispatcher.incidents()}
    assert {a, b} <= set(listed)
    assert listed[b]["status"] == "active"
    _, active = await http(
        server, "GET", f"/api/v1/incidents?status=active&q={marker}", dispatcher.token
    )
    assert [i["id"] for i in active["incidents"]] == [b]
    _, found = await http(
        server, "GET", f"/api/v1/incidents?q=underpass+{marker}", dispatcher.token
    )
    assert [i["id"] for i in found["incidents"]] == [a]


async def test_admin_manages_orgs_and_users_and_others_may_not(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    admin = await connect(clients, server, "admin", password=ADMIN_PASSWORD, live=False)
    org = "org-" + uuid.uuid4().hex[:6]
    status, _ = await http(
        server,
        "POST",
        "/api/v1/orgs",
        admin.token,
        body={"id": org, "name": "Wildlife Rangers", "kind": "ngo"},
    )
    assert status == 201
    status, err = await http(
        server,
        "POST",
        "/api/v1/orgs",
        admin.token,
        body={"id": org, "name": "Again", "kind": "ngo"},
    )
    assert (status, err["error"]["code"]) == (409, "conflict")
    username = "ranger" + uuid.uuid4().hex[:6]
    status, user = await http(
        server,
        "POST",
        "/api/v1/users",
        admin.token,
        body={
            "username": username,
            "org": org,
            "name": "Rita Ranger",
            "role": "responder",
            "password": "correct horse battery",
        },
    )
    assert status == 201
    assert user["org"] == org
    ranger = await connect(clients, server, username, password="correct horse battery")
    assert ranger.welcome is not None
    assert ranger.welcome["user"]["org"] == org

    dispatcher = await connect(clients, server, "dispatch", live=False)
    status, err = await http(
        server,
        "POST",
        "/api/v1/orgs",
        dispatcher.token,
        body={"id": "x", "name": "x", "kind": "ngo"},
    )
    assert (status, err["error"]["code"]) == (403, "forbidden")
    status, err = await http(
        server,
        "POST",
        "/api/v1/users",
        admin.token,
        body={
            "username": "weak",
            "org": org,
            "name": "W",
            "role": "responder",
            "password": "short",
        },
    )
    assert (status, err["error"]["code"]) == (400, "invalid")


async def test_incident_view_shows_board_responders_and_acks(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    phone = await connect(clients, server, "outreach")
    incident = await new_incident(dispatcher)
    urgent = await dispatcher.post(incident, "Need a blanket now", urgent=True)
    await phone.send({"type": "message.ack", "incident": incident, "message": urgent["seq"]})
    task = await dispatcher.send(
        {
            "type": "task.create",
            "incident": incident,
            "title": "Blanket",
            "assignee": {"user": "u_outreach"},
        }
    )
    await phone.send({"type": "task.accept", "incident": incident, "task": task["seq"]})
    await phone.send(
        {
            "type": "responder.status",
            "incident": incident,
            "status": "en_route",
            "position": {"lat": 51.5, "lon": -0.08, "accuracy_m": 12},
        }
    )
    view = await dispatcher.incident(incident)
    assert view["messages"][0]["acks"].keys() == {"u_outreach"}
    assert view["tasks"][0]["status"] == "accepted"
    responder = view["responders"][0]
    assert (responder["user"], responder["status"]) == ("u_outreach", "en_route")
    assert responder["position"]["lat"] == 51.5
    assert responder["position_age_s"] is not None
    with pytest.raises(CommandFailed) as twice:
        await phone.send({"type": "message.ack", "incident": incident, "message": urgent["seq"]})
    assert twice.value.code == "conflict"


async def test_user_added_with_the_cli_can_log_in_to_a_running_server(
    fresh_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    run = [sys.executable, "-m", "server.cli"]
    data = ["--data-dir", str(fresh_server.data_dir)]
    subprocess.run(
        [*run, "org", "add", "rangers", "Wildlife Rangers", "--kind", "ngo", *data],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    out = subprocess.run(
        [
            *run,
            "user",
            "add",
            "rita",
            "--org",
            "rangers",
            "--role",
            "responder",
            "--password",
            "correct horse battery",
            *data,
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert "rita" in out.stdout
    listed = subprocess.run(
        [*run, "user", "list", *data], check=True, cwd=ROOT, capture_output=True, text=True
    )
    assert "rita\trangers\tresponder" in listed.stdout
    rita = await connect(clients, fresh_server, "rita", password="correct horse battery")
    assert rita.welcome is not None
    assert rita.welcome["user"]["org"] == "rangers"
