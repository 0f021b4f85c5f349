"""A phone that stops reading is cut off with a resume hint; nobody else waits."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from liaison_client import LiaisonClient
from tests.conftest import DEMO_PASSWORD, LiaisonServer, connect, new_incident
from tests.integration.rawws import RawWebSocket
from tests.redis_server import RedisServer
from tests.waiting import until


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


class PausableProxy:
    """A TCP proxy whose server → client direction can be paused and resumed.

    While paused it reads nothing from the server, and its upstream socket has
    a tiny receive buffer: the client looks like a phone that stopped reading.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        up.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        up.setblocking(False)
        await asyncio.get_running_loop().sock_connect(up, ("127.0.0.1", self.upstream_port))
        up_reader, up_writer = await asyncio.open_connection(sock=up, limit=4096)
        self._writers += [writer, up_writer]
        for src, dst, gate in ((reader, up_writer, None), (up_reader, writer, self.flowing)):
            task = asyncio.create_task(self._pump(src, dst, gate))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pump(
        src: asyncio.StreamReader, dst: asyncio.StreamWriter, gate: asyncio.Event | None
    ) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while True:
                if gate is not None:
                    await gate.wait()
                data = await src.read(4096)
                if not data:
                    break
                dst.write(data)
                await dst.drain()
        dst.close()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


async def test_a_python_client_that_is_cut_off_reconnects_and_resumes_by_itself(
    small_buffer_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    """SPEC §15: after ``slow_consumer`` the transport ends without an Engine.IO
    CLOSE, so python-engineio's client (which does not retry after a CLOSE)
    reconnects and re-follows from its last seq. It stayed disconnected."""
    srv = small_buffer_server
    dispatcher = await connect(clients, srv, "dispatch")
    incident = await new_incident(dispatcher)
    proxy = PausableProxy(srv.port)
    await proxy.start()
    try:
        phone = LiaisonClient(f"http://127.0.0.1:{proxy.port}")
        clients.append(phone)
        await phone.login("outreach", DEMO_PASSWORD)
        await phone.connect()
        await phone.follow(incident, after_seq=1)

        proxy.flowing.clear()  # the phone stops reading
        flooding = asyncio.create_task(flood(dispatcher, incident))
        await asyncio.to_thread(wait_for_log, srv, "cut off slow consumer")
        proxy.flowing.set()  # and reads again, within the grace period
        last = await flooding

        await until(
            lambda: any(n.get("code") == "slow_consumer" for n in phone.notices),
            10,
            "the phone read the notice",
        )
        await until(lambda: phone.sio.connected, 10, "the phone reconnected by itself")
        await phone.wait_seq(incident, last, timeout=30)
        seqs = [phone.events.get_nowait()["seq"] for _ in range(phone.events.qsize())]
        assert seqs == list(range(2, last + 1)), "resumed without loss or duplicate"
    finally:
        await proxy.close()
