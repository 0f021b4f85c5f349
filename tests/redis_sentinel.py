"""A real Redis master, replicas and Sentinels on free loopback ports, for failover tests.

Debian's redis-server package ships no ``redis-sentinel`` binary (redis-tools
does, as a link); ``redis-server <conf> --sentinel`` is the same program in
Sentinel mode and is what this uses. Every process is started here and ended
by its pid (tests/processes.py).

Sentinel's timings are set low (down after 1 s, failover timeout 3 s) so a
failover takes a few seconds; every wait is on an observable condition.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import redis

from tests.processes import end_process
from tests.redis_server import RedisServer, _free_port

MASTER_NAME = "mymaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


def _wait(condition: object, timeout: float, what: str) -> None:
    """Poll a callable until it is true (blocking: fixtures run outside the loop)."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (redis.exceptions.RedisError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"not within {timeout} s: {what}")


class SentinelProcess:
    def __init__(self, directory: Path, master_port: int, quorum: int) -> None:
        self.dir = directory
        self.port = _free_port()
        self.master_port = master_port
        self.quorum = quorum
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; `make system-deps` installs it")
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "sentinel.conf"  # Sentinel rewrites it: one per process
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
            f"logfile {self.dir / 'sentinel.log'}\n"
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} {self.quorum}\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        self.proc = subprocess.Popen(
            [binary, str(conf), "--sentinel"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=1)

    def stop(self) -> None:
        end_process(self.proc)
        self.proc = None


class SentinelGroup:
    """One master, ``replicas`` replicas of it, three Sentinels watching them."""

    def __init__(self, base: Path, replicas: int = 2, sentinels: int = 3) -> None:
        self.master = RedisServer(base / "master")
        self.replicas = [
            RedisServer(
                base / f"replica{i}",
                ("--replicaof", "127.0.0.1", str(self.master.port), *_FAST_SYNC),
            )
            for i in range(replicas)
        ]
        self.master.extra_args = _FAST_SYNC
        quorum = sentinels // 2 + 1
        self.sentinels = [
            SentinelProcess(base / f"sentinel{i}", self.master.port, quorum)
            for i in range(sentinels)
        ]

    @property
    def url(self) -> str:
        """The URL a Liaison node is given (LIAISON_REDIS_URL)."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/0"

    def start(self, *, ready: bool = True) -> None:
        """Start everything; with ``ready=False`` call ``wait_ready`` before a failover."""
        self.master.start()
        for replica in self.replicas:
            replica.start()
        _wait(self._replicas_in_sync, 10, "the replicas to sync with the master")
        for sentinel in self.sentinels:
            sentinel.start()
        if ready:
            self.wait_ready()

    def wait_ready(self) -> None:
        """Until every Sentinel knows every replica and the other Sentinels (~2 s)."""
        _wait(self._sentinels_ready, 15, "the Sentinels to know the replicas and each other")

    def master_port(self) -> int:
        """Where the Sentinels say the master is now."""
        return _master_port_by(self.sentinels[0])

    def wait_promoted(self, old_port: int, timeout: float = 20) -> RedisServer:
        """The replica every Sentinel names master once a failover away from ``old_port``."""

        def promoted() -> bool:
            return all(_master_port_by(s) != old_port for s in self.sentinels)

        _wait(promoted, timeout, "the Sentinels to promote a replica")
        port = self.master_port()
        return next(r for r in self.replicas if r.port == port)

    def _replicas_in_sync(self) -> bool:
        for replica in self.replicas:
            client = redis.Redis(port=replica.port, socket_timeout=1)
            try:
                if client.info("replication").get("master_link_status") != "up":
                    return False
            finally:
                client.close()
        return True

    def _sentinels_ready(self) -> bool:
        for sentinel in self.sentinels:
            client = sentinel.client()
            try:
                state: Any = client.sentinel_master(MASTER_NAME)
            finally:
                client.close()
            if int(state["num-slaves"]) < len(self.replicas):
                return False
            if int(state["num-other-sentinels"]) < len(self.sentinels) - 1:
                return False
        return True

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in (self.master, *self.replicas):
            server.stop()


def _master_port_by(sentinel: SentinelProcess) -> int:
    client = sentinel.client()
    try:
        address: Any = client.sentinel_get_master_addr_by_name(MASTER_NAME)
    finally:
        client.close()
    return int(address[1])


#: A replica syncs at once instead of waiting 5 s for more replicas (7.0's default).
_FAST_SYNC = ("--repl-diskless-sync-delay", "0")
