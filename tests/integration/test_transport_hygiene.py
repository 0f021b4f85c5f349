"""Transport hygiene (issue 9, item 5): logs without credentials, header
timeouts, API security headers, private data files. Real server processes."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.conftest import DEMO_PASSWORD, LiaisonServer

POLLING = "/socket.io/?EIO=4&transport=polling"


@pytest.fixture
def info_server(tmp_path: Path) -> Iterator[LiaisonServer]:
    """A server that logs at INFO, access lines included."""
    srv = LiaisonServer(tmp_path / "data", env={"LIAISON_LOG_LEVEL": "INFO"})
    srv.start()
    yield srv
    srv.stop()


async def wait_logged(srv: LiaisonServer, needle: str, deadline_s: float = 10.0) -> str:
    deadline = time.monotonic() + deadline_s
    while needle not in (text := srv.log_path.read_text()):
        assert time.monotonic() < deadline, f"{needle!r} never logged"
        await asyncio.sleep(0.05)
    return text


async def test_logs_carry_no_session_id_token_or_query(info_server: LiaisonServer) -> None:
    base = info_server.url
    async with aiohttp.ClientSession() as http:
        async with http.post(
            base + "/api/v1/auth/login", json={"username": "outreach", "password": DEMO_PASSWORD}
        ) as resp:
            token = (await resp.json())["token"]
        async with http.get(base + POLLING) as resp:
            opened = orjson.loads((await resp.read())[1:])
        sid = opened["sid"]
        auth = orjson.dumps({"token": token}).decode()
        async with http.post(f"{base}{POLLING}&sid={sid}", data="40" + auth) as resp:
            assert resp.status == 200
        async with http.get(f"{base}{POLLING}&sid={sid}") as resp:
            assert resp.status == 200
        # A session id this node does not know: engineio logs it as an error.
        stranger = secrets.token_urlsafe(15)
        async with http.get(f"{base}{POLLING}&sid={stranger}") as resp:
            assert resp.status == 400
        async with http.get(
            f"{base}/api/v1/incidents?q=secret-search&token={token}",
            headers={"Authorization": f"Bearer {token}", "Referer": f"{base}/?sid={sid}"},
        ) as resp:
            assert resp.status == 200
    text = await wait_logged(info_server, "/api/v1/incidents")
    for secret in (sid, stranger, token, token.split(".")[1], "secret-search"):
        assert secret not in text
    assert "sid=" not in text
    assert "transport=polling" not in text
    # Successful polls are noise (one per message and heartbeat): left out.
    # A refused one is logged, by path.
    assert '"POST /socket.io/" 200' not in text
    assert '"GET /socket.io/" 400' in text, "refused polling requests are logged, by path"


def _half_open(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    sock.setblocking(False)
    return sock


async def _closed_by_server(sock: socket.socket, within_s: float) -> bool:
    try:
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 1024), within_s)
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return data == b""


async def test_connections_with_partial_headers_are_hung_up(tmp_path: Path) -> None:
    srv = LiaisonServer(tmp_path / "data", env={"LIAISON_HTTP_HEADER_TIMEOUT_S": "1"})
    srv.start()
    socks = [_half_open(srv.port) for _ in range(200)]
    try:
        closed = await asyncio.gather(*(_closed_by_server(s, 10.0) for s in socks))
        assert all(closed), "a connection with partial headers was held for 10 s"
        async with aiohttp.ClientSession() as http, http.get(srv.url + "/healthz") as resp:
            assert resp.status == 200, "the server still serves"
    finally:
        for sock in socks:
            sock.close()
        srv.stop()


async def test_api_responses_carry_security_headers(server: LiaisonServer) -> None:
    async with aiohttp.ClientSession() as http:
        answers = [
            await http.get(server.url + "/api/v1/me"),
            await http.post(server.url + "/api/v1/auth/login", data=b"{"),
            await http.post(
                server.url + "/api/v1/auth/login",
                json={"username": "dispatch", "password": DEMO_PASSWORD},
            ),
            await http.get(server.url + "/api/v1/nowhere"),
            await http.get(server.url + "/healthz"),
        ]
        for resp in answers:
            resp.release()
            assert resp.headers["X-Content-Type-Options"] == "nosniff", resp.url
            assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
            assert resp.headers["Cache-Control"] == "no-store"
        assert [r.status for r in answers] == [401, 400, 200, 404, 200]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_data_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    data = tmp_path / "fresh" / "data"
    srv = LiaisonServer(data, env={"LIAISON_ADMIN_PASSWORD": ""})
    data.parent.mkdir()
    previous = os.umask(0o000)
    try:
        srv.start()
    finally:
        os.umask(previous)
    try:
        assert _mode(data) == 0o700
        files = sorted(p for p in data.iterdir() if p.name != "server.log")
        names = {p.name for p in files}
        expected = {"events.db", "directory.db", "sessions.db", "audit.db", "secret"}
        assert expected | {"initial-admin-password"} <= names
        assert any(name.endswith("-wal") for name in names)
        assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}
    finally:
        srv.stop()
