"""Starting, pinning, waiting for and stopping the servers under test.

Every process the benchmark starts goes through ``Processes``, which stops
them by pid (SIGTERM, then SIGKILL) when the run ends, also on error or
Ctrl-C, so nothing outlives ``python -m bench``.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
VENV_BIN = REPO / ".venv" / "bin"
NODE_DIR = BENCH_DIR / "node"
#: Liaison's connection limits off for benchmark servers: the bench opens
#: thousands of connections for a handful of users from 127.0.0.1 (loopback
#: is already exempt from the per-address limits, not from these).
LIAISON_BENCH_LIMITS = {
    "LIAISON_MAX_CONNECTIONS_PER_USER": "0",
    "LIAISON_MAX_UNAUTHENTICATED_SESSIONS": "0",
}
NPM_TIMEOUT_S = 120
#: What bench/node needs in node_modules (package-lock.json pins them): an older
#: install without the Redis adapter is installed again.
NODE_PACKAGES = ("socket.io", "@socket.io/redis-adapter", "redis")
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """One server under test: how to start it and what the load client should expect."""

    name: str  # key in results: baseline, liaison, node
    title: str  # column header
    kind: str  # "liaison" or "plain" (see bench.load.Target)
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = REPO


def free_port() -> int:
    """A currently unused loopback port (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def python_executable() -> str:
    """The project's virtualenv Python, else the one running us."""
    candidate = VENV_BIN / "python"
    return str(candidate) if candidate.exists() else sys.executable


def baseline_spec(port: int) -> ServerSpec:
    argv = (python_executable(), "-m", "bench.baseline_socketio", "--port", str(port))
    return ServerSpec("baseline", "python-socketio", "plain", argv)


def liaison_spec(
    port: int, data_dir: Path, redis_url: str = "", node_id: str = "", durable: bool = False
) -> ServerSpec:
    """``liaison serve --demo``; on Redis (multi-node mode) when ``redis_url`` is set.

    ``durable``: acknowledge only after a replica confirmed (LIAISON_REDIS_MIN_REPLICAS=1).
    """
    liaison = VENV_BIN / "liaison"
    exe = (str(liaison),) if liaison.exists() else (python_executable(), "-m", "server.cli")
    argv = (*exe, "serve", "--demo", "--host", "127.0.0.1", "--port", str(port))
    argv += ("--data-dir", str(data_dir))
    env = {"LIAISON_LOG_LEVEL": "WARNING", **LIAISON_BENCH_LIMITS}
    if redis_url:
        env |= {"LIAISON_REDIS_URL": redis_url, "LIAISON_NODE_ID": node_id}
    if durable:
        env |= {"LIAISON_REDIS_MIN_REPLICAS": "1"}
    return ServerSpec("liaison", "Liaison", "liaison", argv, env)


def proto_spec(port: int, data_dir: Path) -> ServerSpec:
    """Liaison on the bench-only prototype transport (bench/proto_sio.py), not python-socketio."""
    argv = (
        *(python_executable(), "-m", "bench.proto_server", "serve", "--demo"),
        *("--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data_dir)),
    )
    env = {"LIAISON_LOG_LEVEL": "WARNING", **LIAISON_BENCH_LIMITS}
    return ServerSpec("proto", "Liaison on proto", "liaison", argv, env)


def baseline_redis_spec(port: int, redis_url: str) -> ServerSpec:
    """The python-socketio baseline with ``AsyncRedisManager`` (one node of several)."""
    module = ("-m", "bench.baseline_redis")
    argv = (python_executable(), *module, "--port", str(port), "--redis-url", redis_url)
    return ServerSpec("baseline", "python-socketio", "plain", argv)


def redis_argv(port: int, directory: Path) -> tuple[str, ...]:
    """A private redis-server: loopback only, AOF on with an fsync per write, no RDB saves.

    The same durability settings as deploy/redis/redis.conf and the fault tests:
    Liaison acknowledges only what is stored, so the benchmark pays for it too.
    """
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    return (
        binary,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(directory),
        "--appendonly", "yes",
        "--appendfsync", "always",
        "--save", "",
        "--daemonize", "no",
        "--logfile", str(directory / "redis.log"),
    )  # fmt: skip


def replica_argv(port: int, directory: Path, master_port: int) -> tuple[str, ...]:
    """A replica of the private redis-server, with its durability settings."""
    return (
        *redis_argv(port, directory),
        *("--replicaof", "127.0.0.1", str(master_port), "--repl-diskless-sync-delay", "0"),
    )


def wait_replica_synced(port: int, timeout_s: float = 10.0) -> None:
    """Poll the replica on ``port`` until its link to the master is up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"INFO replication\r\n")
                if b"master_link_status:up" in _read_bulk(s):
                    return
        time.sleep(0.05)
    raise RuntimeError(f"the replica on port {port} did not sync within {timeout_s:.0f} s")


def wait_redis(proc: subprocess.Popen[bytes], port: int, timeout_s: float = 10.0) -> None:
    """Poll until *our* redis-server answers on ``port``.

    ``INFO server`` must report our child's pid: a PONG from some other Redis
    that already held the port (on a shared machine) would otherwise let the
    nodes write into someone else's database.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with code {proc.returncode} at start")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
                s.sendall(b"INFO server\r\n")
                reply = _read_bulk(s)
        except OSError:
            time.sleep(0.05)
            continue
        if f"process_id:{proc.pid}\r\n".encode() in reply:
            return
        raise RuntimeError(f"another Redis answers on port {port}; not ours (pid {proc.pid})")
    raise RuntimeError(f"redis-server not ready on port {port} after {timeout_s:.0f} s")


def _read_bulk(s: socket.socket) -> bytes:
    """One RESP bulk-string reply (``$<n>\\r\\n<n bytes>\\r\\n``), read whole."""
    data = b""
    while b"\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise OSError("redis closed the connection")
        data += chunk
    head, _, rest = data.partition(b"\r\n")
    if not head.startswith(b"$"):
        raise OSError(f"unexpected redis reply {head[:80]!r}")
    size = int(head[1:])
    while len(rest) < size:
        chunk = s.recv(65536)
        if not chunk:
            raise OSError("redis closed the connection")
        rest += chunk
    return rest[:size]


def node_spec(port: int, redis_url: str = "") -> ServerSpec:
    """The Node reference; with ``redis_url``, one node of a cluster on @socket.io/redis-adapter."""
    node = shutil.which("node") or "node"
    env = {"REDIS_URL": redis_url} if redis_url else {}
    return ServerSpec(
        "node", "Node socket.io", "plain", (node, "server.js", str(port)), env, cwd=NODE_DIR
    )


def prepare_node() -> str | None:
    """Install the Node reference's dependencies if needed; None if ready, else why not."""
    if shutil.which("node") is None:
        return "node is not installed"
    modules = NODE_DIR / "node_modules"
    if all((modules / name / "package.json").exists() for name in NODE_PACKAGES):
        return None
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not installed"
    verb = "ci" if (NODE_DIR / "package-lock.json").exists() else "install"
    try:
        done = subprocess.run(
            [npm, verb, "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"npm {verb} failed: {exc}"
    if done.returncode != 0:
        return f"npm {verb} failed: {done.stderr.strip()[-300:]}"
    return None


def child_setup(cpu: int | None) -> Callable[[], None]:
    """A ``preexec_fn``: pin the child to one CPU, and have it die with us.

    Pinning before exec covers every thread the child will start (Node's
    libuv and V8 threads, Liaison's SQLite threads). PR_SET_PDEATHSIG sends
    the child SIGTERM if this process dies without cleaning up (kill -9).
    """

    libc = ctypes.CDLL(None, use_errno=True)  # resolved here: nothing heavy after fork

    def setup() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        with contextlib.suppress(AttributeError):
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return setup


class Processes:
    """Owns every child process of the run; stops them all by pid on exit."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for proc in reversed(self._procs):
            stop(proc)
        self._procs.clear()

    def start(
        self,
        argv: tuple[str, ...] | list[str],
        *,
        cwd: Path,
        env: dict[str, str],
        cpu: int | None,
        stdout: int | IO[bytes] | None,
        stderr: int | IO[bytes] | None,
    ) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            preexec_fn=child_setup(cpu),  # safe: this process starts no threads
        )
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        stop(proc)
        if proc in self._procs:
            self._procs.remove(proc)


def stop(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """SIGTERM by pid, then SIGKILL if it has not exited within ``grace_s``."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(grace_s)


def wait_ready(proc: subprocess.Popen[bytes], port: int, timeout_s: float = 30.0) -> None:
    """Poll until the server answers HTTP on ``port`` (any status will do)."""
    deadline = time.monotonic() + timeout_s
    url = f"http://127.0.0.1:{port}/"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1.0):  # loopback only
                return
        except urllib.error.HTTPError:
            return  # it answered
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"server not ready on port {port} after {timeout_s:.0f} s")
