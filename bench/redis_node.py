"""One Liaison node on Redis under workload C: where its time goes (issue 13).

    .venv/bin/python -m bench.redis_node                    # C at 3,000/s, 10 s
    .venv/bin/python -m bench.redis_node --pool 256 --fsync everysec --rate 6000

One node on a private redis-server (the bench's AOF settings, or
``--fsync``), the node on cpu0 and the load process on cpu1 (Redis is not
pinned). It prints acked posts/s, the CPU of the node, of Redis and of the
load process, and the node's commit batches from ``/metrics`` (commits,
events per batch, mean commit latency from the oldest append of a batch).
Measured 2026-12-03 on a quiet machine: 750 acked/s (pool 64) and 1,000
(pool 256), the node at 99.5 % of its core, Redis at 7 %: the node's CPU is
the bound. (Runs taken while other work shared the core showed the node at
60 % and looked latency-bound: run this alone.)
"""

from __future__ import annotations

import argparse
import secrets
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from bench.load import LoadConfig
from bench.run import LOAD_TIMEOUT_S, run_load
from bench.servers import Processes, free_port, liaison_spec, redis_argv, wait_ready, wait_redis

METRICS = (
    "liaison_commits_total",
    "liaison_commit_batch_size_sum",
    "liaison_commit_latency_seconds_sum",
)


def commit_metrics(port: int) -> dict[str, float]:
    """The node's commit counters, from its ``/metrics``."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in METRICS:
            found[name] = float(value)
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.redis_node", description=__doc__.split("\n")[0]
    )
    p.add_argument("--rate", type=float, default=3000.0, help="offered posts/s")
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--pool", type=int, default=64, help="LIAISON_REDIS_MAX_CONNECTIONS")
    p.add_argument("--fsync", default="always", choices=["always", "everysec", "no"])
    args = p.parse_args(argv)
    with Processes() as procs, tempfile.TemporaryDirectory(prefix="liaison-redis-node-") as tmp:
        root = Path(tmp)
        (root / "redis").mkdir()
        redis_port = free_port()
        argv_redis = tuple(
            args.fsync if a == "always" else a for a in redis_argv(redis_port, root / "redis")
        )
        redis = procs.start(
            argv_redis, cwd=root, env={}, cpu=None, stdout=subprocess.DEVNULL, stderr=None
        )
        wait_redis(redis, redis_port)
        port = free_port()
        spec = liaison_spec(port, root / "data", f"redis://127.0.0.1:{redis_port}/0", "bench")
        env = {**spec.env, "LIAISON_REDIS_MAX_CONNECTIONS": str(args.pool)}
        node = procs.start(
            spec.argv, cwd=spec.cwd, env=env, cpu=0, stdout=subprocess.DEVNULL, stderr=None
        )
        wait_ready(node, port)
        cfg = LoadConfig(
            kind="liaison",
            host="127.0.0.1",
            port=port,
            server_pids={"node": node.pid, "redis": redis.pid},
            run_id=secrets.token_hex(4),
            workloads=("C",),
            duration_s=args.duration,
            c_rate=args.rate,
        )
        c: dict[str, Any] = run_load(procs, cfg, 1, LOAD_TIMEOUT_S)["C"]
        metrics = commit_metrics(port)
    commits = metrics.get("liaison_commits_total", 0.0)
    per_batch = metrics.get("liaison_commit_batch_size_sum", 0.0) / commits if commits else 0.0
    latency = metrics.get("liaison_commit_latency_seconds_sum", 0.0) / commits if commits else 0.0
    print(
        f"C at {args.rate:,.0f}/s, pool {args.pool}, appendfsync {args.fsync}:"
        f" acked {c['posts_per_s']:,.0f}/s of {c['posts']:,} posts sent,"
        f" missing {c['missing_samples']}, dup {c['duplicates']}, reordered {c['reordered']},"
        f" gaps {c['gaps']}\n"
        f"CPU: node {c.get('node_cpu_pct')} %, redis {c.get('redis_cpu_pct')} %,"
        f" load {c['client_cpu_pct']} %\n"
        f"commits {commits:,.0f}, {per_batch:,.0f} events per batch,"
        f" mean commit latency {latency:.2f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
