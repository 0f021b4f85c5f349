"""deploy/nginx/liaison-cluster.conf, run for real in front of two nodes on one Redis.

A real ``nginx`` process (not the system service) runs the deploy file, rewritten
only where a test must differ: the upstream addresses, the listen address and
the paths (pid, logs, temp files in the test's directory). Clients connect
through it from different loopback addresses (127.0.0.x), because the
upstream hashes on the client address: that is how one test puts two clients
on two different nodes behind the same proxy, and how it checks from nginx's
access log (``up=``) that every request of a long-polling client reached one
node.
"""

from __future__ import annotations

import asyncio
import functools
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from liaison_client import LiaisonClient
from protocol.limits import LIMITS
from server.settings import Settings
from tests.conftest import DEMO_PASSWORD, ROOT, LiaisonServer, free_port, new_incident
from tests.integration.test_multinode import start_nodes
from tests.redis_server import RedisServer

DEPLOY_CONF = ROOT / "deploy" / "nginx" / "liaison-cluster.conf"
#: aiohttp's client_max_size in server/app.py: the largest body a node reads.
CLIENT_MAX_SIZE = 1024 * 1024


def _nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"
    return found


NGINX = _nginx_binary()
if NGINX is None:
    pytest.skip(
        "nginx is not installed (`make system-deps` installs it): cannot run the proxy tests",
        allow_module_level=True,
    )


# ---------------------------------------------------------------- the proxy


def derive_config(source: str, *, directory: Path, port: int, upstreams: list[str]) -> str:
    """The deploy file with test upstreams, a loopback listener and private paths.

    Every rewrite must match exactly as often as expected: if the deploy file
    changes shape, this fails with the reason instead of testing something else.
    """
    servers = re.findall(r"(?m)^[ \t]*server 127\.0\.0\.1:808\d\b([^;]*);[ \t]*\n", source)
    assert servers, "no 'server 127.0.0.1:808N ...;' lines in the upstream block"
    params = servers[0]
    first = True

    def upstream_line(match: re.Match[str]) -> str:
        nonlocal first
        if not first:
            return ""
        first = False
        return "".join(f"    server {addr}{params};\n" for addr in upstreams)

    conf = re.sub(r"(?m)^[ \t]*server 127\.0\.0\.1:808\d\b[^;]*;[ \t]*\n", upstream_line, source)

    def rewrite(pattern: str, replacement: str, text: str, what: str) -> str:
        new, count = re.subn(pattern, replacement, text)
        assert count == 1, f"expected one active {what} in {DEPLOY_CONF.name}, found {count}"
        return new

    conf = rewrite(r"(?m)^([ \t]*)listen 80;", rf"\1listen 127.0.0.1:{port};", conf, "'listen 80;'")
    conf = rewrite(r"(?m)^[ \t]*listen \[::\]:80;[ \t]*\n", "", conf, "'listen [::]:80;'")
    conf = rewrite(
        r"(?m)^([ \t]*)access_log \S+ (\w+);",
        rf"\1access_log {directory}/access.log \2;",
        conf,
        "access_log",
    )
    active = [line for line in conf.splitlines() if not line.lstrip().startswith("#")]
    outside = [line for line in active if "/var/" in line or "/etc/" in line]
    assert outside == [], f"paths outside the test directory left in the config: {outside}"

    # Workers of a root master run as "nobody" and could not write the temp
    # directories under the test's private tmp; a normal user needs no "user".
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"    {kind}_temp_path {directory}/{kind}_temp;\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\n"
        f"pid {directory}/nginx.pid;\n"
        f"error_log {directory}/error.log warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        f"{temp}"
        f"{conf}\n"
        "}\n"
    )


@dataclass(frozen=True, slots=True)
class AccessLine:
    remote: str
    method: str
    path: str
    status: int
    #: Every node nginx tried for this request, in order ("-": none).
    upstreams: tuple[str, ...]


_ACCESS = re.compile(r'^(\S+) .*?"(\S+) (\S+) [^"]*" (\d{3}) .* up=(.*) upstatus=.*$')


class Nginx:
    """``nginx -g 'daemon off;'`` on a derived config in its own directory."""

    def __init__(self, directory: Path, upstreams: list[str]) -> None:
        self.dir = directory
        self.port = free_port()
        self.upstreams = upstreams
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        assert NGINX is not None
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "nginx.conf"
        conf.write_text(
            derive_config(
                DEPLOY_CONF.read_text(),
                directory=self.dir,
                port=self.port,
                upstreams=self.upstreams,
            )
        )
        with (self.dir / "stderr.log").open("ab") as stderr:
            self.proc = subprocess.Popen(
                [
                    NGINX,
                    "-p",
                    f"{self.dir}/",
                    "-c",
                    str(conf),
                    "-e",
                    str(self.dir / "error.log"),
                    "-g",
                    "daemon off;",
                ],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                raise RuntimeError(f"nginx exited: {self.errors()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("nginx did not listen in time")

    def stop(self) -> None:
        """SIGTERM to the master by its pid (fast shutdown: open sockets are closed)."""
        if self.proc is None:
            return
        pid_file = self.dir / "nginx.pid"
        if pid_file.exists():
            assert int(pid_file.read_text()) == self.proc.pid
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def errors(self) -> str:
        text = ""
        for name in ("stderr.log", "error.log"):
            path = self.dir / name
            if path.exists():
                text += path.read_text()
        return text[-3000:]

    def serious_errors(self) -> list[str]:
        path = self.dir / "error.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [line for line in lines if re.search(r"\[(emerg|alert|crit)\]", line)]

    def access(self) -> list[AccessLine]:
        path = self.dir / "access.log"
        lines = []
        for raw in path.read_text().splitlines() if path.exists() else []:
            match = _ACCESS.match(raw)
            assert match is not None, f"unexpected access log line: {raw}"
            remote, method, path_, status, up = match.groups()
            # "a, b": tried a, then b; "a : b": an internal redirect to another group.
            upstreams = tuple(re.split(r", | : ", up.strip()))
            lines.append(AccessLine(remote, method, path_, int(status), upstreams))
        return lines


# ---------------------------------------------------------------- clients


def _bound_session(source: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0)))


class BoundClient(LiaisonClient):
    """A LiaisonClient whose REST and Socket.IO traffic leaves from ``source``."""

    def __init__(self, base_url: str, source: str, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self.source = source
        # engine.io calls this for every (re)connection and closes what it made.
        self.sio.eio.http_factory = lambda: _bound_session(source)

    async def _session(self) -> aiohttp.ClientSession:
        if self._http is None:
            self._http = _bound_session(self.source)
        return self._http


async def through(
    proxy: Nginx,
    opened: list[LiaisonClient],
    username: str,
    source: str,
    *,
    transports: list[str] | None = None,
) -> BoundClient:
    """Log in over REST through the proxy, then connect live through it."""
    client = BoundClient(proxy.url, source, transports=transports)
    opened.append(client)
    await client.login(username, DEMO_PASSWORD)
    await client.connect()
    return client


def drain(client: LiaisonClient) -> list[dict[str, Any]]:
    return [client.events.get_nowait() for _ in range(client.events.qsize())]


async def close_all(opened: list[LiaisonClient]) -> None:
    """Close together: a long-polling client's close waits for its open poll."""
    await asyncio.gather(*(client.close() for client in opened))


Lines = list[AccessLine]


async def settled_access(
    proxy: Nginx, until: Callable[[Lines], bool] = lambda _: True, timeout: float = 5.0
) -> Lines:
    """The access log once ``until`` holds and nothing new was logged for 0.2 s.

    nginx logs a request when it ends, which can be just after the client saw
    the response (and, for a WebSocket, only when it closes).
    """
    deadline = time.monotonic() + timeout
    lines = proxy.access()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        again = proxy.access()
        if again == lines and until(lines):
            break
        lines = again
    return lines


def from_source(lines: Lines, source: str, prefix: str = "/socket.io/") -> Lines:
    return [line for line in lines if line.remote == source and line.path.startswith(prefix)]


def _has_health_check(lines: Lines, source: str) -> bool:
    return bool(from_source(lines, source, "/healthz"))


async def sources_per_node(proxy: Nginx, nodes: list[LiaisonServer]) -> list[str]:
    """One loopback source address per node (same order), found through the proxy."""
    wanted = {f"127.0.0.1:{node.port}": i for i, node in enumerate(nodes)}
    found: dict[int, str] = {}
    for last in range(1, 64):
        source = f"127.0.0.{last}"
        async with _bound_session(source) as http, http.get(proxy.url + "/healthz") as resp:
            assert resp.status == 200
        lines = await settled_access(proxy, functools.partial(_has_health_check, source=source))
        served = from_source(lines, source, "/healthz")
        found.setdefault(wanted[served[-1].upstreams[-1]], source)
        if len(found) == len(nodes):
            return [found[i] for i in range(len(nodes))]
    raise AssertionError(f"no client address hashed to some node: {found}")


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def nodes(
    own_redis: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[LiaisonServer]]:
    # A shorter heartbeat than the default 20 s + 15 s, still far below the
    # proxy's 75 s: python-engineio answers a client's close only with the open
    # long-poll, which the server holds until the next heartbeat (the default
    # would add ~25 s to each test with a polling client).
    monkeypatch.setenv("LIAISON_PING_INTERVAL_S", "5")
    monkeypatch.setenv("LIAISON_PING_TIMEOUT_S", "5")
    started = start_nodes(own_redis, tmp_path, 2)
    yield started
    killed = any(node.proc is None for node in started)
    for node in started:
        node.stop()
    for node in started:
        errors = node.errors_logged()
        if killed:
            # Polls of the dead node's sessions, retried by nginx on a survivor
            # (GET is idempotent), are refused there: that 400 is what sends
            # the client to a new session. python-engineio logs it as ERROR.
            errors = [line for line in errors if "engineio.server: Invalid session" not in line]
        assert errors == [], node.log_path.read_text()[-3000:]


@pytest.fixture
def proxy(nodes: list[LiaisonServer], tmp_path: Path) -> Iterator[Nginx]:
    nginx = Nginx(tmp_path / "nginx", [f"127.0.0.1:{node.port}" for node in nodes])
    nginx.start()
    yield nginx
    nginx.stop()
    assert nginx.serious_errors() == [], nginx.errors()


@pytest.fixture
async def routes(proxy: Nginx, nodes: list[LiaisonServer]) -> list[str]:
    """routes[i]: a client address that nginx sends to nodes[i]."""
    return await sources_per_node(proxy, nodes)


# ---------------------------------------------------------------- tests


def test_deploy_conf_agrees_with_the_server_defaults() -> None:
    """Proxy timeouts above the heartbeat, body limit between the server's two."""
    conf = DEPLOY_CONF.read_text()
    socketio = re.search(r"(?s)location /socket\.io/ \{(.*?)\n    \}", conf)
    assert socketio is not None
    block = socketio.group(1)
    heartbeat = Settings().ping_interval_s + Settings().ping_timeout_s
    for directive in ("proxy_read_timeout", "proxy_send_timeout"):
        value = re.search(rf"(?m)^\s*{directive} (\d+)s;", block)
        assert value is not None, directive
        assert int(value.group(1)) > heartbeat + 10, directive
    assert re.search(r"(?m)^\s*proxy_buffering off;", block)
    assert re.search(r"(?m)^\s*proxy_set_header Upgrade \$http_upgrade;", block)
    body = re.search(r"(?m)^\s*client_max_body_size (\d+)m;", conf)
    assert body is not None
    assert LIMITS.max_frame_bytes < int(body.group(1)) * 1024 * 1024 <= CLIENT_MAX_SIZE
    assert re.search(r"(?m)^\s*hash \$remote_addr consistent;", conf)


async def test_health_and_body_limits_through_nginx(proxy: Nginx) -> None:
    async with _bound_session("127.0.0.1") as http:
        async with http.get(proxy.url + "/healthz") as resp:
            health = await resp.json()
        assert resp.status == 200
        assert health["status"] == "ok"
        assert health["subscriber"]["connected"] is True  # Redis mode
        async with http.get(proxy.url + "/readyz") as resp:
            assert resp.status == 200
        async with http.get(proxy.url + "/metrics") as resp:
            assert resp.status == 404, "scraped on the nodes, not through the public side"

        async with http.post(
            proxy.url + "/api/v1/auth/login",
            json={"username": "dispatch", "password": "x" * 80_000},
        ) as resp:
            refused = await resp.json()
        # Passed by nginx (under 1 MiB); refused by Liaison with its typed error.
        assert resp.status == 413
        assert refused["error"]["code"] == "too_large"

        async with http.post(
            proxy.url + "/api/v1/auth/login",
            data=io.BytesIO(b"{" + b" " * (2 * 1024 * 1024) + b"}"),
            headers={"Content-Type": "application/json"},
        ) as resp:
            await resp.read()
        # Stopped by nginx (client_max_body_size 1m) before any node saw it.
        assert resp.status == 413

    def logins(lines: Lines) -> Lines:
        return [line for line in lines if line.path == "/api/v1/auth/login"]

    lines = logins(await settled_access(proxy, lambda ls: len(logins(ls)) == 2))
    assert [(line.status, line.upstreams[0] != "-") for line in lines] == [
        (413, True),
        (413, False),
    ]


async def test_websocket_clients_on_two_nodes_through_nginx(
    proxy: Nginx, nodes: list[LiaisonServer], routes: list[str], clients: list[LiaisonClient]
) -> None:
    source_a, source_b = routes
    dispatcher = await through(proxy, clients, "dispatch", source_a)
    officer = await through(proxy, clients, "officer", source_b)
    assert dispatcher.sio.transport() == officer.sio.transport() == "websocket"
    incident = await new_incident(dispatcher)
    for client in (dispatcher, officer):
        await client.follow(incident, after_seq=1)

    async def burst(client: LiaisonClient, n: int) -> list[int]:
        acks = await asyncio.gather(
            *(client.post(incident, f"{client.user} {i}") for i in range(n))
        )
        return [ack["seq"] for ack in acks]

    seqs = await asyncio.gather(burst(dispatcher, 40), burst(officer, 40))
    assert sorted(s for run in seqs for s in run) == list(range(2, 82))
    orders = []
    for client in (dispatcher, officer):
        await client.wait_seq(incident, 81)
        events = drain(client)
        assert [e["seq"] for e in events] == list(range(2, 82))
        orders.append([e["cid"] for e in events])
    assert orders[0] == orders[1]

    await close_all(clients)
    lines = await settled_access(
        proxy, lambda ls: all(from_source(ls, source) for source in routes)
    )
    # Each client reached one node, a different one each, through the proxy:
    # what one posted reached the other over Redis.
    for source, node in zip(routes, nodes, strict=True):
        mine = from_source(lines, source)
        assert mine, f"no Socket.IO request from {source} in the access log"
        assert {line.upstreams for line in mine} == {(f"127.0.0.1:{node.port}",)}
        assert {line.status for line in mine} == {101}  # WebSocket upgrade


async def test_long_polling_is_sticky_through_nginx(
    proxy: Nginx, nodes: list[LiaisonServer], routes: list[str], clients: list[LiaisonClient]
) -> None:
    source_a, source_b = routes
    dispatcher = await through(proxy, clients, "dispatch", source_a)
    phone = await through(proxy, clients, "outreach", source_b, transports=["polling"])
    assert phone.sio.transport() == "polling"
    incident = await new_incident(dispatcher)
    await dispatcher.follow(incident, after_seq=1)
    await phone.follow(incident, after_seq=1)

    # Bursts from both sides while the phone long-polls node B for what node A
    # stored: every event, once, in seq order.
    last = 1
    for round_ in range(4):
        acks = await asyncio.gather(
            *(dispatcher.post(incident, f"dispatch {round_}.{i}") for i in range(40)),
            *(phone.post(incident, f"phone {round_}.{i}") for i in range(10)),
        )
        last = max(last, *(ack["seq"] for ack in acks))
        await phone.wait_seq(incident, last, timeout=20)  # a burst at a time
    events = drain(phone)
    assert [e["seq"] for e in events] == list(range(2, last + 1))
    assert len({e["cid"] for e in events}) == len(events) == 200
    assert phone.resyncs == []

    # An idle long-poll is answered the moment an event is stored, not at the
    # next heartbeat: nothing in the proxy holds the response back.
    # A deliberate quiet period, not a synchronisation: it is what is under
    # test (the phone's poll has been waiting with nothing to answer).
    await asyncio.sleep(1.5)
    started = time.monotonic()
    ack = await dispatcher.post(incident, "after a quiet moment")
    event = await phone.next_event(timeout=5)
    assert event["seq"] == ack["seq"]
    assert time.monotonic() - started < 2.0

    # Every poll and post so far (the open poll is logged when it ends).
    lines = from_source(await settled_access(proxy), source_b)
    assert len(lines) > 10, "expected many long-polling requests"
    assert {line.method for line in lines} == {"GET", "POST"}
    # Sticky: one node served every request of the session, none was refused
    # with "400 Invalid session".
    assert {line.upstreams for line in lines} == {(f"127.0.0.1:{nodes[1].port}",)}
    assert {line.status for line in lines} == {200}
    await close_all(clients)


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_killed_node_clients_resume_on_the_other_through_nginx(
    transport: str,
    proxy: Nginx,
    nodes: list[LiaisonServer],
    routes: list[str],
    clients: list[LiaisonClient],
) -> None:
    source_a, source_b = routes
    survivor, doomed = nodes
    dispatcher = await through(proxy, clients, "dispatch", source_a)
    phone = await through(proxy, clients, "outreach", source_b, transports=[transport])
    incident = await new_incident(dispatcher)
    await phone.follow(incident, after_seq=1)
    await dispatcher.post(incident, "before")
    await phone.wait_seq(incident, 2)
    before = len(from_source(await settled_access(proxy), source_b))

    doomed.kill()
    acked = [(await dispatcher.post(incident, f"after kill {i}"))["seq"] for i in range(30)]
    # The phone reconnects by itself, through the same proxy address, lands on
    # the surviving node (next on the hash ring) and resumes from its seq.
    await phone.wait_seq(incident, acked[-1], timeout=30)
    got = [e["seq"] for e in drain(phone)]
    assert got == [2, *acked]
    assert phone.resyncs == []

    await close_all(clients)
    moved = f"127.0.0.1:{survivor.port}"

    def reached_survivor(lines: Lines) -> bool:
        return any(line.upstreams[-1] == moved for line in from_source(lines, source_b)[before:])

    after = from_source(await settled_access(proxy, reached_survivor), source_b)[before:]
    assert reached_survivor(after), after
