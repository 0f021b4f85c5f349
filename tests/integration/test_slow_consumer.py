"""A phone that stops reading is cut off with a resume hint; nobody else waits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from liaison_client import LiaisonClient
from tests.conftest import LiaisonServer, connect, new_incident
from tests.integration.rawws import RawWebSocket
from tests.redis_server import RedisServer


@pytest.fixture(params=["embedded", "redis"])
def small_buffer_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiaisonServer]:
    env = {"LIAISON_MAX_PENDING_BYTES": "1048576"}
    if request.param == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        redis_server.flush()
        env["LIAISON_REDIS_URL"] = redis_server.url
    srv = LiaisonServer(tmp_path / "data", env=env)
    srv.start()
    yield srv
    srv.stop()


async def test_slow_consumer_is_cut_off_and_catches_up_from_the_log(
    small_buffer_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    srv = small_buffer_server
    dispatcher = await connect(clients, srv, "dispatch")
    incident = await new_incident(dispatcher)
    healthy = await connect(clients, srv, "officer")
    await healthy.follow(incident, after_seq=1)
    slow_login = await connect(clients, srv, "outreach", live=False)

    stalled = RawWebSocket(
        "127.0.0.1", srv.port, "/socket.io/?EIO=4&transport=websocket", rcvbuf=4096
    )
    assert stalled.recv_text().startswith("0")
    stalled.send_text("40" + orjson.dumps({"token": slow_login.token}).decode())
    assert stalled.recv_text().startswith("40")
    stalled.send_text(
        '420["cmd",'
        + orjson.dumps(
            {"type": "follow", "incidents": [{"incident": incident, "after_seq": 1}]}
        ).decode()
        + "]"
    )
    # From here on the phone reads nothing.

    text = "x" * 7000
    last = 0
    for burst in range(20):  # 4.2 MB in bursts of 210 kB: more than the phone's buffers
        acks = await asyncio.gather(
            *(dispatcher.post(incident, f"{burst}.{i} {text}") for i in range(30))
        )
        last = max(last, *(a["seq"] for a in acks))
    await healthy.wait_seq(incident, last, timeout=30)  # never held up by the stalled phone

    received = await asyncio.to_thread(stalled.drain)
    stalled.close()
    assert b'"slow_consumer"' in received, "the server said why it hung up"
    assert f'"resume":{{"{incident}":'.encode() in received, "with a resume hint"

    # The same phone comes back and resumes from what it had: nothing is lost.
    phone = LiaisonClient(srv.url)
    clients.append(phone)
    phone.token = slow_login.token
    await phone.connect()
    await phone.follow(incident, after_seq=1)
    await phone.wait_seq(incident, last, timeout=30)
    seqs = [phone.events.get_nowait()["seq"] for _ in range(phone.events.qsize())]
    assert seqs == list(range(2, last + 1))
