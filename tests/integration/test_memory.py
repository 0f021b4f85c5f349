"""What a node keeps in memory is bounded by its work, not by what clients ask for.

Real servers (in-process where a test must look inside, else subprocesses),
real Redis, real python-socketio clients.
"""

from __future__ import annotations

import asyncio
import gc
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from liaison_client import CommandFailed, LiaisonClient
from server.app import COMPONENTS, Components, create_app
from server.fanout.memory import MemoryBroker
from server.settings import Settings
from tests.conftest import ADMIN_PASSWORD, LiaisonServer, connect, free_port, new_incident
from tests.integration.test_multinode import start_nodes
from tests.redis_server import RedisServer


@dataclass
class InProcess:
    """A server running in the test's own event loop, so the test can look inside."""

    url: str
    parts: Components


@pytest.fixture
async def inproc(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[InProcess]:
    extra: dict[str, Any] = getattr(request, "param", {})
    settings = Settings(
        port=free_port(),
        data_dir=tmp_path,
        admin_password=ADMIN_PASSWORD,
        demo=True,
        sqlite_synchronous="NORMAL",
        **extra,
    )
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.port).start()
    try:
        yield InProcess(f"http://127.0.0.1:{settings.port}", app[COMPONENTS])
    finally:
        await runner.cleanup()


def live_locks() -> int:
    gc.collect()
    return sum(isinstance(o, asyncio.Lock) for o in gc.get_objects())


async def test_unknown_incident_ids_leave_nothing_behind(
    inproc: InProcess, clients: list[LiaisonClient]
) -> None:
    """Following or changing made-up ids used to keep one lock per id forever."""
    srv: Any = inproc  # connect() only needs .url
    dispatcher = await connect(clients, srv, "dispatch")
    before = live_locks()
    for _ in range(20):
        targets = [{"incident": f"inc_{secrets.token_hex(8)}", "after_seq": 0} for _ in range(100)]
        ack = await dispatcher.send({"type": "follow", "incidents": targets})
        assert {r["status"] for r in ack["incidents"]} == {"not_found"}
    for _ in range(200):
        with pytest.raises(CommandFailed):
            await dispatcher.send(
                {
                    "type": "incident.status",
                    "incident": f"inc_{secrets.token_hex(8)}",
                    "status": "active",
                }
            )
    assert live_locks() - before < 10, "a lock per unknown id was kept"
    assert inproc.parts.projections.stats()["locks"] == 0


@pytest.mark.parametrize("inproc", [{"projection_cache": 5}], indirect=True)
async def test_projections_are_evicted_beyond_the_bound_but_followed_ones_stay(
    inproc: InProcess, clients: list[LiaisonClient]
) -> None:
    srv: Any = inproc
    dispatcher = await connect(clients, srv, "dispatch")
    watcher = await connect(clients, srv, "shelter-lead")
    followed = await new_incident(dispatcher, "followed")
    await watcher.follow(followed, after_seq=0)
    others = [await new_incident(dispatcher, f"other {i}") for i in range(15)]
    for incident in others:
        assert (await dispatcher.incident(incident))["title"].startswith("other")
    projections, broker = inproc.parts.projections, inproc.parts.broker
    assert isinstance(broker, MemoryBroker)
    assert broker.subscriptions() <= 5 + 1, "evicted projections are unsubscribed"
    assert projections.stats()["cached"] <= 5
    assert projections.cached(followed), "a followed incident is pinned"
    # An evicted projection comes back current from the log.
    await dispatcher.post(others[0], "after eviction")
    view = await dispatcher.incident(others[0])
    assert [m["text"] for m in view["messages"]] == ["after eviction"]
    await dispatcher.post(followed, "still live")
    await watcher.wait_seq(followed, 2)
    await watcher.unfollow(followed)
    await dispatcher.incident(others[1])  # any later use may now evict it
    assert projections.stats()["pinned"] == 0


@pytest.mark.parametrize("inproc", [{"projection_messages": 8}], indirect=True)
async def test_a_followed_incident_keeps_few_messages_and_the_view_has_them_all(
    inproc: InProcess, clients: list[LiaisonClient]
) -> None:
    """Steady posting to a followed incident used to keep every message in memory."""
    srv: Any = inproc
    dispatcher = await connect(clients, srv, "dispatch")
    watcher = await connect(clients, srv, "shelter-lead")
    incident = await new_incident(dispatcher, "steady")
    await watcher.follow(incident, after_seq=0)
    posted = [(await dispatcher.post(incident, f"post {i}"))["seq"] for i in range(100)]
    await watcher.wait_seq(incident, posted[-1])
    projections = inproc.parts.projections
    assert projections.stats()["messages"] <= 8 + 1 + 1
    view = await dispatcher.incident(incident)  # from the log, past the bound
    assert [m["text"] for m in view["messages"]] == [f"post {i}" for i in range(100)]
    reply = await watcher.post(incident, "re: the first", reply_to=posted[0])
    await dispatcher.send({"type": "message.ack", "incident": incident, "message": posted[0]})
    await watcher.wait_seq(incident, reply["seq"] + 1)
    first = (await watcher.incident(incident))["messages"][0]
    assert first["seq"] == posted[0]
    assert "u_dispatch" in first["acks"]
    assert projections.stats()["messages"] <= 8 + 1 + 1


async def test_incident_list_is_paged_and_filtered(
    fresh_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, fresh_server, "dispatch", live=True)
    created = [await new_incident(dispatcher, f"paged {i}") for i in range(5)]
    await dispatcher.send({"type": "incident.status", "incident": created[0], "status": "active"})
    everything = await dispatcher.incidents()
    first = await dispatcher.request("GET", "/api/v1/incidents?limit=2")
    assert len(first["incidents"]) == 2
    assert first["next"]
    walked = await dispatcher.incidents("limit=2")
    assert [i["id"] for i in walked] == [i["id"] for i in everything]
    assert set(created) <= {i["id"] for i in walked}
    last = await dispatcher.request("GET", "/api/v1/incidents?limit=1000")
    assert last["next"] is None
    opened = await dispatcher.incidents("status=active")
    assert [i["id"] for i in opened if i["id"] in created] == [created[0]]
    assert {i["status"] for i in opened} == {"active"}
    newest = everything[0]["updated"]
    assert await dispatcher.incidents(f"updated_after={newest}") == []
    for bad in ("cursor=nope", "cursor=WzEsMl0", "limit=x", "limit=100000", "updated_after=-1"):
        with pytest.raises(CommandFailed) as err:
            await dispatcher.request("GET", f"/api/v1/incidents?{bad}")
        assert err.value.code == "invalid", bad
    police_only = await dispatcher.send(
        {
            "type": "incident.create",
            "title": "police only",
            "category": "welfare",
            "priority": "normal",
            "orgs": ["metro-police"],
        }
    )
    shelter = await connect(clients, fresh_server, "outreach", live=False)
    seen = {i["id"] for i in await shelter.incidents("limit=1")}
    assert set(created) <= seen
    assert police_only["incident"] not in seen


@pytest.fixture
def two_nodes(own_redis: RedisServer, tmp_path: Path) -> Iterator[list[LiaisonServer]]:
    nodes = start_nodes(own_redis, tmp_path, 2)
    yield nodes
    for node in nodes:
        node.stop()
    for node in nodes:
        assert node.errors_logged() == [], node.log_path.read_text()[-3000:]


async def channels_of(redis_server: RedisServer, node: str) -> int:
    """Pub/sub channels the node's subscriber connection holds (its probe included)."""
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        for entry in await client.client_list():
            if entry.get("name") == f"liaison-sub-{node}":
                return int(entry["sub"])
    finally:
        await client.aclose()
    raise AssertionError(f"no subscriber connection of {node}")


async def test_listing_on_a_redis_node_subscribes_to_nothing(
    two_nodes: list[LiaisonServer], own_redis: RedisServer, clients: list[LiaisonClient]
) -> None:
    a, b = two_nodes
    writer = await connect(clients, a, "dispatch")
    created = [await new_incident(writer, f"listed {i}") for i in range(30)]
    reader = await connect(clients, b, "dispatch", live=False)
    before = await channels_of(own_redis, "node1")
    listed = await reader.incidents()
    assert set(created) <= {i["id"] for i in listed}
    assert listed[0]["id"] == created[-1]
    assert await channels_of(own_redis, "node1") == before, "listing subscribed to incidents"
    assert before <= 2, "a fresh node holds its probe channel (and the demo incident at most)"
