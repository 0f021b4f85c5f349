"""What LIAISON_REDIS_MIN_REPLICAS=1 costs an append, measured in under 20 s.

    .venv/bin/python -m bench.replica_wait [--seconds 3]

Starts a private master and one replica (redis-server, loopback, AOF with an
fsync per write as deploy/ recommends), then drives the real Redis event log
(server/storage/redis_log.py: group commit, append script, and with the
setting on, the one INCR+WAIT per batch) in this process, twice: without and
with the replica wait. For each it reports append->ack latency (p50/p99) of

* ``serial``: one append at a time (every append is its own batch: the
  full price of the extra round trip and the replica's acknowledgement);
* ``concurrent``: 64 appenders over 16 incidents, closed loop (batches form,
  one WAIT is shared by a batch), and the appends acknowledged per second.

Not the benchmark: no Socket.IO, no fan-out, one process; it isolates the
storage step the setting changes. The end-to-end figure is
``python -m bench --workloads E --redis-durable`` (the lead runs that).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis

from bench.servers import free_port, redis_argv, stop, wait_redis
from server.domain.events import EventDraft
from server.storage.redis_log import RedisConfig, RedisEventLog, connect

CONCURRENCY = 64
INCIDENTS = 16


def _draft(incident: str, kind: str = "message.posted") -> EventDraft:
    creating = kind == "incident.created"
    body: dict[str, Any] = (
        {"title": "t", "category": "c", "priority": "normal", "orgs": ["o1"]}
        if creating
        else {"text": "a message of about the usual size for a field report"}
    )
    return EventDraft(
        incident=incident,
        type=kind,
        actor_user="bench",
        actor_org="o1",
        actor_name="Bench",
        client_id=uuid.uuid4().hex,
        visibility=None,
        body=body,
        epoch="ep-" + incident if creating else None,
    )


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1e3:.2f} ms, p99 {p99 * 1e3:.2f} ms"


async def _measure(url: str, replicas: int, seconds: float) -> dict[str, str]:
    config = RedisConfig(url=url, node_id=f"bench-{replicas}", min_replicas=replicas)
    client = connect(config)
    log = RedisEventLog(config, client, deliver=lambda incident, events: None)
    await log.start()
    try:
        run = uuid.uuid4().hex[:8]
        incidents = [f"wait-{run}-{i}" for i in range(INCIDENTS)]
        for incident in incidents:
            await log.append(_draft(incident, "incident.created"))
        serial: list[float] = []
        deadline = time.monotonic() + seconds / 2
        while time.monotonic() < deadline:
            started = time.perf_counter()
            await log.append(_draft(incidents[0]))
            serial.append(time.perf_counter() - started)
        concurrent: list[float] = []
        deadline = time.monotonic() + seconds / 2

        async def appender(i: int) -> None:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                await log.append(_draft(incidents[i % INCIDENTS]))
                concurrent.append(time.perf_counter() - started)

        began = time.monotonic()
        await asyncio.gather(*(appender(i) for i in range(CONCURRENCY)))
        rate = len(concurrent) / (time.monotonic() - began)
        return {
            "serial": f"{_percentiles(serial)} ({len(serial)} appends)",
            "concurrent": f"{_percentiles(concurrent)}, {rate:,.0f} appends/s acked",
        }
    finally:
        await log.close()
        await client.aclose()


def _wait_in_sync(port: int, timeout_s: float = 10.0) -> None:
    client = redis.Redis(port=port, socket_timeout=1)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if client.info("replication").get("master_link_status") == "up":
                return
            time.sleep(0.05)
    finally:
        client.close()
    raise RuntimeError("the replica did not sync")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0, help="measured seconds per mode")
    args = p.parse_args(argv)
    if shutil.which("redis-server") is None:
        raise SystemExit("redis-server is not installed (make system-deps)")
    with tempfile.TemporaryDirectory() as tmp:
        ports = free_port(), free_port()
        procs: list[subprocess.Popen[bytes]] = []
        try:
            for role, port in zip(("master", "replica"), ports, strict=True):
                directory = Path(tmp) / role
                directory.mkdir()
                extra: tuple[str, ...] = ("--repl-diskless-sync-delay", "0")
                if role == "replica":
                    extra += ("--replicaof", "127.0.0.1", str(ports[0]))
                proc = subprocess.Popen(
                    (*redis_argv(port, directory), *extra),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                procs.append(proc)
                wait_redis(proc, port)
            _wait_in_sync(ports[1])
            url = f"redis://127.0.0.1:{ports[0]}/0"
            for replicas in (0, 1):
                figures = asyncio.run(_measure(url, replicas, args.seconds))
                label = "WAIT 1 per batch" if replicas else "no WAIT"
                for shape, figure in figures.items():
                    print(f"{label:<16}  {shape:<10}  {figure}")
        finally:
            for proc in reversed(procs):
                stop(proc)


if __name__ == "__main__":
    main()
