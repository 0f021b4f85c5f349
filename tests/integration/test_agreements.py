"""Sharing agreements and default labels over REST and the CLI (SPEC section 9.4), on
real servers: who may do what, typed validation errors, the audit trail, and how
fast a change made elsewhere (the CLI, another node) is in force.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from liaison_client import CommandFailed, LiaisonClient
from tests.conftest import ADMIN_PASSWORD, LiaisonServer, connect, police_admin
from tests.integration.test_cli import liaison
from tests.integration.test_multinode import start_nodes
from tests.redis_server import RedisServer

POLICE, SHELTER = "metro-police", "harbour-shelter"
PASSWORD = "org-admin-password"
#: A create or revoke on one node is in force on another within this.
TARGET_S = 1.0


async def org_user(
    clients: list[LiaisonClient], srv: LiaisonServer, username: str, org: str, role: str
) -> LiaisonClient:
    """Log in ``username`` (created by the deployment admin if it does not exist yet)."""
    admin = await connect(clients, srv, "admin", password=ADMIN_PASSWORD, live=False)
    body = {"username": username, "org": org, "role": role, "name": username, "password": PASSWORD}
    try:
        await admin.request("POST", "/api/v1/users", body)
    except CommandFailed as err:
        if err.code != "conflict":  # created by an earlier test on this server
            raise
    return await connect(clients, srv, username, password=PASSWORD, live=False)


async def refusal(client: LiaisonClient, method: str, path: str, body: Any = None) -> Any:
    with pytest.raises(CommandFailed) as refused:
        await client.request(method, path, body)
    return refused.value.error


WELFARE = {
    "recipients": [SHELTER],
    "fields": ["name", "phone", "position"],
    "position": "exact",
    "categories": ["welfare"],
    "history": True,
    "note": "joint welfare work",
}


async def test_an_org_admin_creates_and_both_sides_see_and_revoke_it(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    police = await police_admin(clients, server)
    shelter = await org_user(clients, server, "shelter-admin", SHELTER, "admin")
    made = await police.request("POST", "/api/v1/agreements", WELFARE)
    assert made["owner"] == POLICE
    assert made["recipients"] == [SHELTER]
    assert made["fields"] == ["name", "phone", "position"]
    assert (made["in_force"], made["revoked_ms"], made["created_by"]) == (
        True,
        None,
        "u_police-admin",
    )
    for reader in (police, shelter, await connect(clients, server, "shelter-super", live=False)):
        listed = await reader.request("GET", "/api/v1/agreements")
        assert made["id"] in [a["id"] for a in listed["agreements"]]
        assert (await reader.request("GET", f"/api/v1/agreements/{made['id']}")) == made
    revoked = await shelter.request("POST", f"/api/v1/agreements/{made['id']}/revoke")
    assert (revoked["in_force"], revoked["revoked_by"]) == (False, "u_shelter-admin")
    assert revoked["revoked_ms"] >= made["valid_from_ms"]
    again = await police.request("POST", f"/api/v1/agreements/{made['id']}/revoke")
    assert again == revoked, "a second revoke changes nothing"
    assert (await police.request("GET", f"/api/v1/agreements/{made['id']}")) == revoked


async def test_who_may_not(server: LiaisonServer, clients: list[LiaisonClient]) -> None:
    police = await police_admin(clients, server)
    shelter = await org_user(clients, server, "shelter-admin", SHELTER, "admin")
    made = await police.request("POST", "/api/v1/agreements", WELFARE)
    # An NGO admin cannot create an agreement owned by the police.
    owned = {**WELFARE, "owner": POLICE, "recipients": [SHELTER]}
    assert (await refusal(shelter, "POST", "/api/v1/agreements", owned))["code"] == "forbidden"
    # Nor can anyone but an admin create one; a dispatcher cannot even read them.
    dispatcher = await connect(clients, server, "dispatch", live=False)
    sergeant = await connect(clients, server, "sergeant", live=False)
    for who in (dispatcher, sergeant):
        error = await refusal(who, "POST", "/api/v1/agreements", WELFARE)
        assert error["code"] == "forbidden"
        error = await refusal(who, "POST", f"/api/v1/agreements/{made['id']}/revoke")
        assert error["code"] == "forbidden"
    assert (await refusal(dispatcher, "GET", "/api/v1/agreements"))["code"] == "forbidden"
    # An organisation that is neither owner nor recipient (the deployment admin's) sees nothing.
    outsider = await org_user(clients, server, "admin-of-admin", "admin", "admin")
    listed = await outsider.request("GET", "/api/v1/agreements")
    assert made["id"] not in [a["id"] for a in listed["agreements"]]
    for method, path in (
        ("GET", f"/api/v1/agreements/{made['id']}"),
        ("POST", f"/api/v1/agreements/{made['id']}/revoke"),
    ):
        assert (await refusal(outsider, method, path))["code"] == "not_found"
    assert (await police.request("GET", f"/api/v1/agreements/{made['id']}"))["in_force"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"recipients": None}, "recipients"),
        ({"recipients": []}, "recipients"),
        ({"recipients": ["no-such-org"]}, "recipients"),
        ({"recipients": [POLICE]}, "recipients"),
        ({"recipients": "harbour-shelter"}, "recipients"),
        ({"fields": ["name", "shoe-size"]}, "fields"),
        ({"fields": [], "history": False}, "fields"),
        ({"kinds": ["mesage"]}, "kinds"),
        ({"position": "roughly"}, "position"),
        ({"categories": []}, "categories"),
        ({"history": "yes"}, "history"),
        ({"valid_until_ms": 1}, "valid_until_ms"),
        ({"valid_until_ms": "tomorrow"}, "valid_until_ms"),
        ({"note": "x" * 501}, "note"),
        ({"owner": 5}, "owner"),
        ("not an object", "message"),
    ],
    ids=lambda v: str(v)[:40],
)
async def test_invalid_agreements_are_refused_with_the_field(
    server: LiaisonServer, clients: list[LiaisonClient], change: Any, field: str
) -> None:
    police = await police_admin(clients, server)
    body = {**WELFARE, **change} if isinstance(change, dict) else change
    error = await refusal(police, "POST", "/api/v1/agreements", body)
    assert (error["code"], error["detail"]["field"]) == ("invalid", field)


async def test_default_label_set_by_the_orgs_admin_only(
    fresh_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    shelter = await org_user(clients, fresh_server, "shelter-admin", SHELTER, "admin")
    police = await police_admin(clients, fresh_server)
    outreach = await connect(clients, fresh_server, "outreach", live=False)
    assert (await outreach.request("GET", "/api/v1/me"))["org_default_label"] == "AMBER"
    done = await shelter.request("PATCH", f"/api/v1/orgs/{SHELTER}", {"default_label": "GREEN"})
    assert done == {
        "id": SHELTER,
        "name": "Harbour Street Shelter",
        "kind": "ngo",
        "default_label": "GREEN",
        "tags": ["shelter", "homelessness", "lang:ar"],  # the demo's tags, kept
    }
    orgs = {o["id"]: o for o in (await outreach.request("GET", "/api/v1/orgs"))["orgs"]}
    assert (orgs[SHELTER]["default_label"], orgs[POLICE]["default_label"]) == ("GREEN", "AMBER")
    assert (await outreach.request("GET", "/api/v1/me"))["org_default_label"] == "GREEN"
    path = f"/api/v1/orgs/{SHELTER}"
    assert (await refusal(police, "PATCH", path, {"default_label": "RED"}))["code"] == "forbidden"
    assert (await refusal(outreach, "PATCH", path, {"default_label": "RED"}))["code"] == "forbidden"
    for bad in ({"default_label": "amber"}, {"default_label": None}, {}):
        error = await refusal(shelter, "PATCH", path, bad)
        assert (error["code"], error["detail"]["field"]) == ("invalid", "default_label")
    # Kept across a restart (the directory's column).
    fresh_server.stop()
    fresh_server.start()
    again = await connect(clients, fresh_server, "outreach", live=False)
    assert (await again.request("GET", "/api/v1/me"))["org_default_label"] == "GREEN"


async def test_every_change_and_refusal_is_audited(
    fresh_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    police = await police_admin(clients, fresh_server)
    shelter = await org_user(clients, fresh_server, "shelter-admin", SHELTER, "admin")
    auditor = await org_user(clients, fresh_server, "auditor", "admin", "auditor")
    made = await police.request("POST", "/api/v1/agreements", WELFARE)
    await refusal(shelter, "POST", "/api/v1/agreements", {**WELFARE, "owner": POLICE})
    await refusal(police, "POST", "/api/v1/agreements", {**WELFARE, "fields": ["shoe"]})
    await police.request("POST", f"/api/v1/agreements/{made['id']}/revoke")
    await police.request("PATCH", f"/api/v1/orgs/{POLICE}", {"default_label": "AMBER+STRICT"})
    data = ["--data-dir", str(fresh_server.data_dir)]
    cli = liaison("agreement", "add", POLICE, "--to", SHELTER, "--fields", "name", *data)
    assert cli.returncode == 0, cli.stderr
    records = (await auditor.request("GET", "/api/v1/audit?limit=1000"))["records"]
    sharing = [
        (r["actor"], r["action"], r["target"], r["outcome"], bool(r["address"]))
        for r in records
        if r["action"].startswith("agreement.") or r["action"] == "org.default_label"
    ]
    demo = [
        ("system:demo", "agreement.create", seeded, "ok", False)
        for seeded in ("demo-police-to-shelter", "demo-shelter-to-police")
    ]
    cli_id = cli.stdout.split()[1]
    assert sharing[:2] == demo
    assert sharing[2:6] == [
        ("u_police-admin", "agreement.create", made["id"], "ok", True),
        ("u_shelter-admin", "agreement.create", sharing[3][2], "forbidden", True),
        ("u_police-admin", "agreement.create", sharing[4][2], "invalid", True),
        ("u_police-admin", "agreement.revoke", made["id"], "ok", True),
    ]
    assert sharing[6] == ("u_police-admin", "org.default_label", POLICE, "ok", True)
    assert sharing[7][0].startswith("cli:")
    assert sharing[7][1:] == ("agreement.create", cli_id, "ok", False)
    created = next(r for r in records if r["target"] == made["id"])
    assert created["detail"]["fields"] == ["name", "phone", "position"]
    label = next(r for r in records if r["action"] == "org.default_label")
    assert label["detail"] == {"from": "AMBER", "to": "AMBER+STRICT"}


async def _latency(reader: LiaisonClient, agreement: str, revoked: bool) -> float:
    """Seconds from the record's own timestamp (``valid_from_ms`` or ``revoked_ms``,
    taken by the writer just before it stored) until ``reader``'s node shows it.

    Writer and reader share this machine's clock, so the figure includes the
    write itself and the REST round trips, not the writer's start-up.
    """
    async with asyncio.timeout(5):
        while True:
            listed = (await reader.request("GET", "/api/v1/agreements"))["agreements"]
            found = [a for a in listed if a["id"] == agreement]
            if found and (found[0]["revoked_ms"] is not None) == revoked:
                stamp = found[0]["revoked_ms" if revoked else "valid_from_ms"]
                return time.time() - float(stamp) / 1000
            await asyncio.sleep(0.01)


def _ms(figures: list[float]) -> str:
    return ", ".join(f"{s * 1000:.0f}" for s in figures) + " ms"


async def test_cli_changes_reach_a_running_embedded_server_within_a_second(
    fresh_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    reader = await org_user(clients, fresh_server, "shelter-admin", SHELTER, "admin")
    data = ["--data-dir", str(fresh_server.data_dir)]
    added_at, revoked_at = [], []
    for _ in range(3):
        done = liaison("agreement", "add", POLICE, "--to", SHELTER, "--fields", "position", *data)
        assert done.returncode == 0, done.stderr
        agreement = done.stdout.split()[1]
        added_at.append(await _latency(reader, agreement, False))
        done = liaison("agreement", "revoke", agreement, *data)
        assert done.returncode == 0, done.stderr
        revoked_at.append(await _latency(reader, agreement, True))
    listed = liaison("agreement", "list", "--org", SHELTER, *data)
    assert listed.stdout.count("revoked by cli:") == 3
    print(
        "\nCLI -> running embedded server (from the record's timestamp to visible over REST):"
        f" create {_ms(added_at)}; revoke {_ms(revoked_at)}"
    )
    assert max(added_at + revoked_at) < TARGET_S
    label = liaison("org", "set-label", SHELTER, "RED", *data)
    assert label.returncode == 0, label.stderr
    bad = liaison("org", "set-label", SHELTER, "red", *data)
    assert bad.returncode == 2
    refused = liaison("agreement", "add", POLICE, "--to", "nowhere", "--fields", "name", *data)
    assert (refused.returncode, "Traceback" in refused.stderr) == (1, False)
    assert "--to" in refused.stderr


@pytest.fixture
def pair(own_redis: RedisServer, tmp_path: Path) -> Iterator[list[LiaisonServer]]:
    nodes = start_nodes(own_redis, tmp_path, 2)
    yield nodes
    for node in nodes:
        node.stop()
    for node in nodes:
        assert node.errors_logged() == [], node.log_path.read_text()[-3000:]


async def test_a_change_on_one_redis_node_is_in_force_on_the_other_within_a_second(
    pair: list[LiaisonServer], clients: list[LiaisonClient]
) -> None:
    a, b = pair
    writer = await org_user(clients, a, "police-admin", POLICE, "admin")
    reader = await org_user(clients, b, "shelter-admin", SHELTER, "admin")
    added_at, revoked_at = [], []
    for _ in range(5):
        made = await writer.request("POST", "/api/v1/agreements", WELFARE)
        added_at.append(await _latency(reader, made["id"], False))
        await writer.request("POST", f"/api/v1/agreements/{made['id']}/revoke")
        revoked_at.append(await _latency(reader, made["id"], True))
    print(
        "\nRedis, 2 nodes (from the record's timestamp on node0 to visible on node1):"
        f" create {_ms(added_at)}; revoke {_ms(revoked_at)}"
    )
    assert max(added_at + revoked_at) < TARGET_S
    demo = {x["id"] for x in (await reader.request("GET", "/api/v1/agreements"))["agreements"]}
    assert {"demo-police-to-shelter", "demo-shelter-to-police"} <= demo, "seeded once, both nodes"
