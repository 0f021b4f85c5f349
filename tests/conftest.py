"""Fixtures that start real Liaison servers on loopback ports.

Servers run as subprocesses (``python -m server.cli serve``) so tests can kill
them with SIGKILL and restart them on the same data directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from liaison_client import CommandFailed, LiaisonClient
from tests.processes import end_process
from tests.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
ADMIN_PASSWORD = "admin-password-for-tests"
DEMO_PASSWORD = "liaison-demo"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_RECORD_START = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def _error_records(log_text: str) -> list[str]:
    """The log's ERROR records and tracebacks, each with its continuation lines."""
    records: list[list[str]] = []
    for line in log_text.splitlines():
        if _RECORD_START.match(line) or not records:
            records.append([line])
        else:
            records[-1].append(line)
    return [
        "\n".join(lines)
        for lines in records
        if " ERROR " in lines[0] or any("Traceback" in line for line in lines)
    ]


class LiaisonServer:
    """A ``liaison serve --demo`` subprocess on its own data directory and port."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "server.log"
        #: How ``liaison`` is run: this checkout's by default (an installed one in test_package).
        self.command = [sys.executable, "-m", "server.cli"]
        self.cwd = ROOT

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> None:
        env = {
            **os.environ,
            "LIAISON_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "LIAISON_LOG_LEVEL": "WARNING",
            **self.env,
        }
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    *self.command,
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                    "--demo",
                ],
                cwd=self.cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:  # noqa: S310
                    if resp.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not become healthy")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing."""
        end_process(self.proc, kill=True)
        self.proc = None

    def stop(self) -> None:
        end_process(self.proc)
        self.proc = None

    def errors_logged(self) -> list[str]:
        """Each ERROR record or traceback, whole: its exception line says what raised."""
        return _error_records(self.log_path.read_text())


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server with AOF on, for the whole session; kill it only in
    tests that restart it (they use their own)."""
    srv = RedisServer(tmp_path_factory.mktemp("redis"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis of the test's own, which the test may kill and restart."""
    srv = RedisServer(tmp_path / "redis")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiaisonServer]:
    """One shared server; tests isolate themselves by creating their own incidents."""
    srv = LiaisonServer(tmp_path_factory.mktemp("liaison-shared"))
    srv.start()
    yield srv
    srv.stop()
    assert srv.errors_logged() == [], "the shared server logged errors"


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[LiaisonServer]:
    """A server of the test's own, for restarts and kills."""
    srv = LiaisonServer(tmp_path / "data")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
async def clients() -> AsyncIterator[list[LiaisonClient]]:
    """Collects clients a test opens and closes them at the end."""
    opened: list[LiaisonClient] = []
    yield opened
    for client in opened:
        await client.close()


async def connect(
    opened: list[LiaisonClient],
    srv: LiaisonServer,
    username: str,
    *,
    encoding: str = "json",
    password: str = DEMO_PASSWORD,
    live: bool = True,
) -> LiaisonClient:
    client = LiaisonClient(srv.url, encoding=encoding)
    opened.append(client)
    await client.login(username, password)
    if live:
        await client.connect()
    return client


async def resume_on(
    opened: list[LiaisonClient], srv: LiaisonServer, device: LiaisonClient
) -> LiaisonClient:
    """The same device (token and stored positions) coming back through ``srv``."""
    client = LiaisonClient(srv.url)
    opened.append(client)
    client.token, client.positions = device.token, device.positions
    await client.connect()
    return client


async def new_incident(dispatcher: LiaisonClient, title: str = "Test incident") -> str:
    ack = await dispatcher.send(
        {
            "type": "incident.create",
            "title": title,
            "category": "welfare",
            "priority": "high",
            "orgs": ["metro-police", "harbour-shelter"],
            "location": {"lat": 51.5, "lon": -0.07, "address": "Harbour Bridge"},
        }
    )
    incident: str = ack["incident"]
    return incident


#: A demo police administrator, made by the tests that need one (API keys are
#: managed by an admin of the bot's own organisation).
POLICE_ADMIN = "police-admin"


async def police_admin(opened: list[LiaisonClient], srv: LiaisonServer) -> LiaisonClient:
    """An admin of metro-police (created by the deployment admin on first use)."""
    root = await connect(opened, srv, "admin", password=ADMIN_PASSWORD, live=False)
    with contextlib.suppress(CommandFailed):  # conflict: made by an earlier test
        await root.request(
            "POST",
            "/api/v1/users",
            {
                "username": POLICE_ADMIN,
                "org": "metro-police",
                "name": "Pat Police Admin",
                "role": "admin",
                "password": ADMIN_PASSWORD,
            },
        )
    return await connect(opened, srv, POLICE_ADMIN, password=ADMIN_PASSWORD, live=False)


async def new_key(
    admin: LiaisonClient, bot: str = "cad-bot", **scope: Any
) -> tuple[dict[str, Any], str]:
    """A new API key of ``bot`` (scope fields as POST /api/v1/keys takes them)."""
    created = await admin.request(
        "POST", "/api/v1/keys", {"user": bot, "name": "test key", **scope}
    )
    return created, str(created["key"])


async def bot_client(
    opened: list[LiaisonClient],
    srv: LiaisonServer,
    bot: str = "cad-bot",
    *,
    live: bool = True,
    **scope: Any,
) -> LiaisonClient:
    """A client of ``bot`` with a new API key of that scope (every incident and command
    if none is given)."""
    _, key = await new_key(await police_admin(opened, srv), bot, **scope)
    client = LiaisonClient(srv.url, api_key=key)
    opened.append(client)
    if live:
        await client.connect()
    return client
