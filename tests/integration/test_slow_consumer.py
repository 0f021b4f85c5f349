"""A phone that stops reading is cut off with a resume hint; nobody else waits."""

from __future__ import annotations

import asyncio
import time
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
    # INFO: a test waits for the server's own account of a cut-off.
    env = {"LIAISON_MAX_PENDING_BYTES": "1048576", "LIAISON_LOG_LEVEL": "INFO"}
    if request.param == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        redis_server.flush()
        env["LIAISON_REDIS_URL"] = redis_server.url
    srv = LiaisonServer(tmp_path / "data", env=env)
    srv.start()
    yield srv
    srv.stop()


def wait_for_log(srv: LiaisonServer, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in srv.log_path.read_text():
        assert time.monotonic() < deadline, f"the server never logged {text!r}"
        time.sleep(0.02)


async def stalled_follower(srv: LiaisonServer, token: str, incident: str) -> RawWebSocket:
    """A phone that follows ``incident`` and then reads nothing."""
    stalled = RawWebSocket(
        "127.0.0.1", srv.port, "/socket.io/?EIO=4&transport=websocket", rcvbuf=4096
    )
    assert stalled.recv_text().startswith("0")
    stalled.send_text("40" + orjson.dumps({"token": token}).decode())
    assert stalled.recv_text().startswith("40")
    follow = {"type": "follow", "incidents": [{"incident": incident, "after_seq": 1}]}
    stalled.send_text('420["cmd",' + orjson.dumps(follow).decode() + "]")
    return stalled


async def flood(dispatcher: LiaisonClient, incident: str) -> int:
    """4.2 MB in bursts of 210 kB: more than a stalled phone's buffers. The last seq."""
    text = "x" * 7000
    last = 0
    for burst in range(20):
        acks = await asyncio.gather(
            *(dispatcher.post(incident, f"{burst}.{i} {text}") for i in range(30))
        )
        last = max(last, *(a["seq"] for a in acks))
    return last


async def test_slow_consumer_is_cut_off_and_catches_up_from_the_log(
    small_buffer_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    srv = small_buffer_server
    dispatcher = await connect(clients, srv, "dispatch")
    incident = await new_incident(dispatcher)
    healthy = await connect(clients, srv, "officer")
    await healthy.follow(incident, after_seq=1)
    slow_login = await connect(clients, srv, "outreach", live=False)

    assert slow_login.token is not None
    stalled = await stalled_follower(srv, slow_login.token, incident)

    def read_when_cut_off() -> bytes:
        """The notice is best effort (SPEC §15): it reaches a phone that reads
        again within the grace period, not one that never reads again."""
        wait_for_log(srv, "cut off slow consumer")
        return stalled.drain()

    # From here on the phone reads nothing, until the server cuts it off.
    received_later = asyncio.create_task(asyncio.to_thread(read_when_cut_off))
    last = await flood(dispatcher, incident)
    await healthy.wait_seq(incident, last, timeout=30)  # never held up by the stalled phone

    received = await received_later
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


async def test_a_phone_that_drops_during_the_grace_period_is_cut_off_cleanly(
    small_buffer_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    """Its TCP connection is gone before the server aborts it (it was an AttributeError)."""
    srv = small_buffer_server
    dispatcher = await connect(clients, srv, "dispatch")
    incident = await new_incident(dispatcher)
    slow_login = await connect(clients, srv, "outreach", live=False)
    assert slow_login.token is not None
    stalled = await stalled_follower(srv, slow_login.token, incident)

    def drop_when_cut_off() -> None:
        wait_for_log(srv, "cut off slow consumer")
        stalled.reset()  # the phone lost its connection: the notice never reaches it

    dropped = asyncio.create_task(asyncio.to_thread(drop_when_cut_off))
    last = await flood(dispatcher, incident)
    await dropped
    # The grace period is 2 s; then the cut-off finishes, and says so.
    await asyncio.to_thread(wait_for_log, srv, "closed the connection of slow consumer", 15.0)
    assert srv.errors_logged() == []

    phone = LiaisonClient(srv.url)
    clients.append(phone)
    phone.token = slow_login.token
    await phone.connect()
    await phone.follow(incident, after_seq=1)
    await phone.wait_seq(incident, last, timeout=30)
