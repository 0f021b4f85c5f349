"""Three server processes on one Redis: one log, one order, resume anywhere."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from liaison_client import CommandFailed, LiaisonClient
from tests.conftest import LiaisonServer, connect, new_incident, resume_on
from tests.integration.ref_race import one_of_each_pair_is_stored
from tests.redis_server import RedisServer


def start_nodes(
    redis: RedisServer, base: Path, count: int, env: dict[str, str] | None = None
) -> list[LiaisonServer]:
    nodes = []
    for i in range(count):
        node = LiaisonServer(
            base / f"node{i}",
            env={
                "LIAISON_REDIS_URL": redis.url,
                "LIAISON_NODE_ID": f"node{i}",
                "LIAISON_PRESENCE_TTL_S": "1.5",  # a dead node's presence goes quickly
                **(env or {}),
            },
        )
        node.start()
        nodes.append(node)
    return nodes


@pytest.fixture
def cluster(own_redis: RedisServer, tmp_path: Path) -> Iterator[list[LiaisonServer]]:
    nodes = start_nodes(own_redis, tmp_path, 3)
    yield nodes
    for node in nodes:
        node.stop()
    for node in nodes:
        assert node.errors_logged() == [], node.log_path.read_text()[-3000:]


async def test_clients_on_different_nodes_see_one_order(
    cluster: list[LiaisonServer], clients: list[LiaisonClient]
) -> None:
    a, b, c = cluster
    dispatcher = await connect(clients, a, "dispatch")
    incident = await new_incident(dispatcher)
    officer = await connect(clients, c, "officer")
    phone = await connect(clients, b, "outreach")
    watcher = await connect(clients, c, "shelter-lead")
    for client in (dispatcher, officer, phone, watcher):
        await client.follow(incident, after_seq=1)

    async def burst(client: LiaisonClient, n: int) -> list[int]:
        acks = await asyncio.gather(
            *(client.post(incident, f"{client.user} {i}") for i in range(n))
        )
        return [ack["seq"] for ack in acks]

    seqs = await asyncio.gather(burst(dispatcher, 60), burst(officer, 60), burst(phone, 30))
    assert sorted(s for run in seqs for s in run) == list(range(2, 152))
    orders = []
    for client in (dispatcher, officer, phone, watcher):
        await client.wait_seq(incident, 151)
        events = [client.events.get_nowait() for _ in range(client.events.qsize())]
        assert [e["seq"] for e in events] == list(range(2, 152))
        orders.append([e["cid"] for e in events])
    assert all(order == orders[0] for order in orders)


async def test_reconnecting_to_another_node_resumes_without_loss(
    cluster: list[LiaisonServer], clients: list[LiaisonClient]
) -> None:
    a, b, c = cluster
    dispatcher = await connect(clients, a, "dispatch")
    incident = await new_incident(dispatcher)
    phone = await connect(clients, b, "outreach")
    await phone.follow(incident, after_seq=1)
    await dispatcher.post(incident, "first")
    await phone.wait_seq(incident, 2)
    await phone.sio.disconnect()
    missed = [(await dispatcher.post(incident, f"while away {i}"))["seq"] for i in range(20)]

    moved = await resume_on(clients, c, phone)
    await moved.follow(incident)
    await moved.wait_seq(incident, missed[-1])
    got = [moved.events.get_nowait()["seq"] for _ in range(moved.events.qsize())]
    assert got == missed


async def test_killed_node_clients_resume_elsewhere(
    cluster: list[LiaisonServer], clients: list[LiaisonClient]
) -> None:
    a, b, c = cluster
    dispatcher = await connect(clients, a, "dispatch")
    incident = await new_incident(dispatcher)
    phone = await connect(clients, b, "outreach")
    await phone.follow(incident, after_seq=1)
    await dispatcher.post(incident, "before")
    await phone.wait_seq(incident, 2)

    b.kill()
    acked = [(await dispatcher.post(incident, f"after kill {i}"))["seq"] for i in range(30)]
    await phone.sio.disconnect()

    survivor = await resume_on(clients, c, phone)
    await survivor.follow(incident)
    await survivor.wait_seq(incident, acked[-1])
    got = [survivor.events.get_nowait()["seq"] for _ in range(survivor.events.qsize())]
    assert got == acked
    b.start()  # so the fixture's teardown finds it running


async def test_user_added_on_one_node_logs_in_on_another(
    cluster: list[LiaisonServer], clients: list[LiaisonClient]
) -> None:
    a, _, c = cluster
    admin = await connect(clients, a, "admin", password="admin-password-for-tests", live=False)
    await admin.request(
        "POST",
        "/api/v1/users",
        {
            "username": "late-joiner",
            "org": "harbour-shelter",
            "name": "Late Joiner",
            "role": "responder",
            "password": "correct horse battery",
        },
    )
    joiner = await connect(clients, c, "late-joiner", password="correct horse battery")
    assert joiner.welcome is not None
    assert joiner.welcome["user"]["id"] == "u_late-joiner"


async def test_presence_is_shared_and_expires_with_a_dead_node(
    cluster: list[LiaisonServer], clients: list[LiaisonClient]
) -> None:
    a, b, c = cluster
    dispatcher = await connect(clients, a, "dispatch")
    incident = await new_incident(dispatcher)
    await dispatcher.follow(incident)
    phone = await connect(clients, b, "officer")
    await phone.follow(incident)
    sergeant = await connect(clients, c, "sergeant")
    await sergeant.follow(incident)
    # Another organisation's user (not a liaison) is online too, but police
    # readers do not see it (SPEC 18, ``online``).
    outreach = await connect(clients, c, "outreach")
    await outreach.follow(incident)
    everyone = ["u_dispatch", "u_officer", "u_sergeant"]
    assert (await dispatcher.incident(incident))["online"] == everyone
    assert (await outreach.incident(incident))["online"] == ["u_outreach"]

    await sergeant.unfollow(incident)  # leaving is immediate
    async with asyncio.timeout(5):
        while (await dispatcher.incident(incident))["online"] != ["u_dispatch", "u_officer"]:
            await asyncio.sleep(0.05)

    b.kill()  # nobody tells Redis: the claims expire on their own
    async with asyncio.timeout(10):
        while (await dispatcher.incident(incident))["online"] != ["u_dispatch"]:
            await asyncio.sleep(0.2)
    await phone.close()
    b.start()


async def test_organisation_added_on_one_node_is_known_on_another(
    cluster: list[LiaisonServer], clients: list[LiaisonClient]
) -> None:
    a, _, c = cluster
    admin = await connect(clients, a, "admin", password="admin-password-for-tests", live=False)
    await admin.request("POST", "/api/v1/orgs", {"id": "rangers", "name": "Rangers", "kind": "ngo"})
    dispatcher = await connect(clients, c, "dispatch")
    async with asyncio.timeout(15):  # nodes re-read the shared directory every 5 s
        while True:
            try:
                await dispatcher.send(
                    {
                        "type": "incident.create",
                        "title": "Injured deer",
                        "category": "wildlife",
                        "orgs": ["rangers"],
                    }
                )
                break
            except CommandFailed as refused:
                if refused.code != "invalid":  # only "unknown organisation" is expected
                    raise
                await asyncio.sleep(0.5)


async def test_a_live_incident_and_a_drill_created_at_once_on_two_nodes_never_share_a_reference(
    cluster: list[LiaisonServer], clients: list[LiaisonClient]
) -> None:
    """Each node checked the reference before the other's creation was stored;
    the nodes' claim of the reference (a lease in Redis) now orders them."""
    live_desk = await connect(clients, cluster[0], "dispatch")
    drill_desk = await connect(clients, cluster[1], "dispatch")
    await one_of_each_pair_is_stored(live_desk, drill_desk)
