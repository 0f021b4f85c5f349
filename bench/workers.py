"""One process against ``--workers N`` on the same host and Redis, same run (issue 13.6).

    .venv/bin/python -m bench.workers                       # 1 vs 2 workers, C at 3,000/6,000/9,000
    .venv/bin/python -m bench.workers --rates 6000 --workers 2 --duration 8

Workload C (many small incidents: every member follows its incident and
posts, open loop at a fixed offered rate) against Liaison on a private
redis-server, first as one process, then as a worker group of N processes
on one port. Throughput is the acknowledged posts/s at an offered rate above
what the server sustains; every run also reports lost samples, duplicates,
reordered and gaps (per connection and incident), which must all be 0.

Nothing is pinned: the workers, Redis and the load process share the
machine's cores, as they would on a real host (the load process is one
core's worth at most). Connections come from 16 loopback addresses
(127.0.0.2 on), since the group deals connections out by client address.
Each configuration gets a fresh Redis and data directory.
"""

from __future__ import annotations

import argparse
import http.client
import json
import secrets
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.load import LoadConfig
from bench.run import LOAD_TIMEOUT_S, run_load
from bench.servers import (
    Processes,
    free_port,
    liaison_spec,
    redis_argv,
    wait_ready,
    wait_redis,
)

SOURCE_ADDRESSES = 16


def node_answering(port: int, address: str) -> str:
    """The node that answers a connection from ``address``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(address, 0))
    try:
        conn.request("GET", "/healthz")
        node: str = json.loads(conn.getresponse().read())["node"]
        return node
    finally:
        conn.close()


def wait_group(port: int, count: int, timeout_s: float = 60.0) -> None:
    """Until ``count`` workers answer (they start one after another)."""
    addresses = [f"127.0.0.{2 + i}" for i in range(SOURCE_ADDRESSES)]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len({node_answering(port, a) for a in addresses}) >= count:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{count} workers not answering in {timeout_s:.0f} s")


def workers_of(pid: int) -> list[int]:
    """The worker processes of a supervisor."""
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def one_config(
    procs: Processes, args: argparse.Namespace, tmp: Path, workers: int
) -> dict[str, dict[str, Any]]:
    """A fresh Redis and Liaison (``workers`` 1: a plain node), C at each rate."""
    root = tmp / f"w{workers}"
    (root / "redis").mkdir(parents=True)
    redis_port = free_port()
    with (root / "redis.log").open("wb") as log:
        redis = procs.start(
            redis_argv(redis_port, root / "redis"),
            cwd=root,
            env={},
            cpu=None,
            stdout=log,
            stderr=log,
        )
    wait_redis(redis, redis_port)
    port = free_port()
    spec = liaison_spec(port, root / "data", f"redis://127.0.0.1:{redis_port}/0", "bench")
    env = {**spec.env, "LIAISON_WORKERS": str(workers)}
    with (root / "liaison.log").open("wb") as log:
        server = procs.start(spec.argv, cwd=spec.cwd, env=env, cpu=None, stdout=log, stderr=log)
    wait_ready(server, port)
    pids = {"redis": redis.pid}
    if workers > 1:
        wait_group(port, workers)
        pids |= {f"w{i}": pid for i, pid in enumerate(workers_of(server.pid))}
    else:
        pids["server"] = server.pid
    results = {}
    try:
        for rate in args.rates:
            cfg = LoadConfig(
                kind="liaison",
                host="127.0.0.1",
                port=port,
                server_pids=pids,
                run_id=secrets.token_hex(4),
                workloads=("C",),
                warmup_s=args.warmup,
                duration_s=args.duration,
                c_rate=float(rate),
                c_incidents=args.incidents,
                c_members=args.members,
                source_addresses=SOURCE_ADDRESSES,
            )
            figures = run_load(procs, cfg, None, LOAD_TIMEOUT_S)["C"]
            results[str(rate)] = figures
            print(f"   {workers} worker(s), {rate}/s: {summary(figures)}", flush=True)
    finally:
        procs.stop(server)
        procs.stop(redis)
    return results


def summary(c: dict[str, Any]) -> str:
    return (
        f"acked {c['posts_per_s']:,.0f}/s, p50 {c['p50_ms']} ms, p99 {c['p99_ms']} ms,"
        f" missing {c['missing_samples']}, dup {c['duplicates']}, reordered {c['reordered']},"
        f" gaps {c['gaps']}, server CPU {c['server_cpu_pct']} %, load CPU {c['client_cpu_pct']} %"
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.workers", description=__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, default=2, help="processes in the group")
    p.add_argument(
        "--rates", type=lambda v: [int(x) for x in v.split(",")], default=[3000, 6000, 9000]
    )
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--incidents", type=int, default=100)
    p.add_argument("--members", type=int, default=3)
    args = p.parse_args(argv)
    with Processes() as procs, tempfile.TemporaryDirectory(prefix="liaison-workers-") as tmp:
        print(f"-- Liaison, 1 process on Redis: C at {args.rates}", flush=True)
        single = one_config(procs, args, Path(tmp), 1)
        print(f"-- Liaison, --workers {args.workers} on Redis: C at {args.rates}", flush=True)
        group = one_config(procs, args, Path(tmp), args.workers)
    print(f"\nrate/s   1 process acked/s   {args.workers} workers acked/s   ratio   p99 1 / N (ms)")
    for rate in map(str, args.rates):
        a, b = single[rate], group[rate]
        ratio = b["posts_per_s"] / a["posts_per_s"] if a["posts_per_s"] else float("nan")
        print(
            f"{rate:>6}   {a['posts_per_s']:>17,.0f}   {b['posts_per_s']:>17,.0f}"
            f"   {ratio:5.2f}x   {a['p99_ms']} / {b['p99_ms']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
