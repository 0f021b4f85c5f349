"""``liaison serve --workers 2``: two nodes on one port of one host, on a real Redis.

Clients connect from different loopback addresses (127.0.0.0/8 is all this
host's), as phones and desks come from different addresses: the group deals
them out by address, and every connection of one address, long-polling
included, reaches the same worker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from liaison_client import LiaisonClient
from tests.conftest import DEMO_PASSWORD, LiaisonServer, new_incident
from tests.redis_server import RedisServer

ADDRESSES = [f"127.0.0.{i}" for i in range(2, 18)]
#: What the supervisor and python-engineio log when a worker is killed on purpose.
EXPECTED_AFTER_KILL = ("server.workers: worker", "engineio.server: Invalid session")


@pytest.fixture
def group(own_redis: RedisServer, tmp_path: Path) -> Iterator[LiaisonServer]:
    srv = LiaisonServer(
        tmp_path / "data",
        env={
            "LIAISON_REDIS_URL": own_redis.url,
            "LIAISON_WORKERS": "2",
            "LIAISON_NODE_ID": "host",
            "LIAISON_PRESENCE_TTL_S": "1.5",
        },
    )
    srv.start()
    yield srv
    srv.stop()
    assert srv.errors_logged() == [], srv.log_path.read_text()[-3000:]


async def node_of(srv: LiaisonServer, address: str) -> str:
    connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True)
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.get(srv.url + "/healthz") as resp,
    ):
        node: str = (await resp.json())["node"]
        return node


async def deal(srv: LiaisonServer) -> dict[str, str]:
    """Each address's worker, once both workers listen (worker 1 starts after worker 0)."""
    for _ in range(600):
        nodes = {address: await node_of(srv, address) for address in ADDRESSES}
        if len(set(nodes.values())) == 2:  # both listen now: deal again, from the start
            return {address: await node_of(srv, address) for address in ADDRESSES}
        await asyncio.sleep(0.05)
    raise AssertionError(f"one worker answers every address: {nodes}")


def workers_of(srv: LiaisonServer) -> dict[str, int]:
    """The supervisor's children by node id (read from their environment)."""
    assert srv.proc is not None
    found = {}
    children = Path(f"/proc/{srv.proc.pid}/task/{srv.proc.pid}/children").read_text().split()
    for pid in map(int, children):
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        for entry in environ:
            if entry.startswith(b"LIAISON_NODE_ID="):
                found[entry.split(b"=", 1)[1].decode()] = pid
    return found


async def client_from(
    opened: list[LiaisonClient], srv: LiaisonServer, username: str, address: str, **kw: object
) -> LiaisonClient:
    client = LiaisonClient(srv.url, local_addr=address, **kw)  # type: ignore[arg-type]
    opened.append(client)
    await client.login(username, DEMO_PASSWORD)
    await client.connect()
    return client


async def test_one_port_two_workers_one_order_and_sticky_long_polling(
    group: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    nodes = await deal(group)
    for address in ADDRESSES[:6]:  # sticky: every connection of an address, the same worker
        assert {await node_of(group, address) for _ in range(4)} == {nodes[address]}
    a_addr = next(a for a, n in nodes.items() if n == "host-w0")
    b_addr = next(a for a, n in nodes.items() if n == "host-w1")

    dispatcher = await client_from(clients, group, "dispatch", a_addr)
    incident = await new_incident(dispatcher)
    # A phone on long-polling only: each poll is a new request, often a new connection.
    phone = await client_from(clients, group, "outreach", b_addr, transports=["polling"])
    officer = await client_from(clients, group, "officer", b_addr)
    for client in (dispatcher, phone, officer):
        await client.follow(incident, after_seq=1)

    async def burst(client: LiaisonClient, n: int) -> list[int]:
        acks = await asyncio.gather(
            *(client.post(incident, f"{client.user} {i}") for i in range(n))
        )
        return [ack["seq"] for ack in acks]

    seqs = await asyncio.gather(burst(dispatcher, 40), burst(officer, 40), burst(phone, 20))
    assert sorted(s for run in seqs for s in run) == list(range(2, 102))
    orders = []
    for client in (dispatcher, phone, officer):
        await client.wait_seq(incident, 101)
        events = [client.events.get_nowait() for _ in range(client.events.qsize())]
        assert [e["seq"] for e in events] == list(range(2, 102))
        orders.append([e["cid"] for e in events])
    assert orders[0] == orders[1] == orders[2]


async def test_a_killed_worker_is_restarted_and_its_clients_resume(
    group: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    nodes = await deal(group)
    a_addr = next(a for a, n in nodes.items() if n == "host-w0")
    b_addr = next(a for a, n in nodes.items() if n == "host-w1")
    dispatcher = await client_from(clients, group, "dispatch", a_addr)
    incident = await new_incident(dispatcher)
    phone = await client_from(clients, group, "outreach", b_addr)
    await phone.follow(incident, after_seq=1)
    await dispatcher.post(incident, "before")
    await phone.wait_seq(incident, 2)

    os.kill(workers_of(group)["host-w1"], signal.SIGKILL)
    acked = [(await dispatcher.post(incident, f"after kill {i}"))["seq"] for i in range(30)]
    await phone.wait_seq(incident, acked[-1])  # it reconnected by itself and resumed
    got = [phone.events.get_nowait()["seq"] for _ in range(phone.events.qsize())]
    assert got == [2, *acked]

    for _ in range(600):  # the supervisor starts worker 1 again, under a new node id
        if "host-w1.1" in workers_of(group) and await node_of(group, b_addr) == "host-w1.1":
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"worker 1 not restarted: {workers_of(group)}")
    later = await client_from(clients, group, "officer", b_addr)
    await later.follow(incident, after_seq=acked[-1])
    assert (await later.post(incident, "from the new worker"))["seq"] == acked[-1] + 1

    children = set(workers_of(group).values())
    group.stop()
    for pid in children:  # SIGTERM to the supervisor stops every worker
        assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
    log = group.log_path.read_text()
    assert "exited with code -9" in log
    group.log_path.write_text(
        "\n".join(
            line for line in log.splitlines() if not any(e in line for e in EXPECTED_AFTER_KILL)
        )
    )


def _zombie(pid: int) -> bool:
    return " Z " in Path(f"/proc/{pid}/stat").read_text()


def test_workers_need_redis(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--workers", "2", "--port", "1"],
        env={**os.environ, "LIAISON_DATA_DIR": str(tmp_path), "LIAISON_REDIS_URL": ""},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--workers needs Redis" in done.stderr


def test_a_group_whose_worker_cannot_listen_exits_with_an_error(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    """Another program holds the port: worker 0 fails, the supervisor stops, exit 1."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "server.cli", "serve", "--workers", "2", "--port", str(port)],
            env={
                **os.environ,
                "LIAISON_DATA_DIR": str(tmp_path),
                "LIAISON_REDIS_URL": own_redis.url,
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 1, done.stderr[-2000:]
    assert "worker 0 did not start" in done.stderr
