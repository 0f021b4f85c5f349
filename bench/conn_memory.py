"""Memory per connection: RSS of a real server per idle and per following socket.

    python -m bench.conn_memory [--connections 1000] [--servers liaison,node]

For each server in turn (a fresh ``liaison serve --demo``, and the Node
socket.io reference of bench/node): open ``--connections`` authenticated
Socket.IO connections over WebSocket (bench/wsclient.py, so the clients cost
little), measure the server's RSS; then make each follow one of 10 incidents
and measure again. It prints KB per idle connection and per following one,
each against the server's RSS before the connections opened. Issue 13's
targets: at most 20 KB idle and 25 KB following, Node about 26 KB idle.

Not a load test (nothing is posted); it is steady enough on a busy machine,
as RSS does not depend on the CPU left over.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import secrets
import tempfile
from pathlib import Path

from bench.load import (
    SUBSCRIBER_USERS,
    LoadConfig,
    Target,
    close_all,
    follow,
    open_connections,
)
from bench.memory import rss_mib
from bench.servers import (
    Processes,
    free_port,
    liaison_spec,
    node_spec,
    prepare_node,
    wait_ready,
)
from bench.wsclient import SioConnection

INCIDENTS = 10
#: Follows in flight at once.
FOLLOW_PARALLEL = 10


class Ignore:
    """An event sink that drops everything (nothing is posted anyway)."""

    def on_ev(self, buf: bytearray, start: int, end: int, arrived_ns: int) -> None:
        pass

    def on_other(self, packet: bytes) -> None:
        pass

    def on_lost(self) -> None:
        pass


async def settle_rss(pid: int, quiet_s: float = 1.0, limit_s: float = 15.0) -> float:
    """RSS once it stopped moving for ``quiet_s`` (the server settled its work)."""
    last = rss_mib(pid)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    still_since = loop.time()
    while loop.time() < deadline:
        await asyncio.sleep(0.2)
        now = rss_mib(pid)
        if abs(now - last) > 0.05:
            still_since = loop.time()
        last = now
        if loop.time() - still_since >= quiet_s:
            break
    return last


async def measure(kind: str, port: int, pid: int, connections: int) -> dict[str, float]:
    cfg = LoadConfig(
        kind=kind, host="127.0.0.1", port=port, server_pids={"server": pid}, run_id="mem"
    )
    target = Target(cfg)
    await target.start()
    conns: list[SioConnection] = []
    try:
        incidents = await target.incidents(secrets.token_hex(3), INCIDENTS)
        # One warm-up connection so that the first connection's one-off costs
        # (imports, caches) are not charged to the others.
        warm = await open_connections(target, [SUBSCRIBER_USERS[0]], Ignore())
        await follow(warm[0], *incidents[0])
        before = await settle_rss(pid)
        users = [SUBSCRIBER_USERS[i % len(SUBSCRIBER_USERS)] for i in range(connections)]
        conns = await open_connections(target, users, Ignore())
        idle = await settle_rss(pid)
        # A few follows at a time, as people open incidents: a thousand at
        # once measured the high-water mark of a thousand requests in flight
        # (tracemalloc: the Python heap after them grew ~0 KB per connection).
        gate = asyncio.Semaphore(FOLLOW_PARALLEL)

        async def follow_one(i: int, conn: SioConnection) -> None:
            async with gate:
                await follow(conn, *incidents[i % INCIDENTS])

        await asyncio.gather(*(follow_one(i, c) for i, c in enumerate(conns)))
        following = await settle_rss(pid)
        close_all(warm)
    finally:
        close_all(conns)
        await target.close()
    per = 1024 / connections
    return {
        "rss_before_mib": before,
        "idle_kb_per_connection": (idle - before) * per,
        "following_kb_per_connection": (following - before) * per,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.conn_memory", description=__doc__)
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--servers", default="liaison,node")
    args = parser.parse_args()
    gc.collect()
    for name in args.servers.split(","):
        port = free_port()
        with tempfile.TemporaryDirectory() as tmp, Processes() as procs:
            if name == "liaison":
                spec = liaison_spec(port, Path(tmp))
            elif name == "node":
                why = prepare_node()
                if why is not None:
                    print(f"node: skipped ({why})")
                    continue
                spec = node_spec(port)
            else:
                raise SystemExit(f"unknown server {name!r}")
            proc = procs.start(
                spec.argv, cwd=spec.cwd, env=spec.env, cpu=None, stdout=None, stderr=None
            )
            wait_ready(proc, port)
            result = asyncio.run(measure(spec.kind, port, proc.pid, args.connections))
        print(
            f"{spec.title:>16}: {result['idle_kb_per_connection']:5.1f} KB idle, "
            f"{result['following_kb_per_connection']:5.1f} KB following one incident "
            f"(RSS before {result['rss_before_mib']:.1f} MiB, {args.connections} connections)"
        )


if __name__ == "__main__":
    main()
