"""Memory a client can make a node hold: RSS of a real server process.

    python -m bench.memory [--backend sqlite|redis|both] [--source DIR]

Two scenarios, each on a fresh server (and a fresh redis-server in Redis mode):

* **follows**: one socket follows ``--follows`` random, non-existent incident
  ids (100 per ``follow`` command); RSS before and after.
* **list**: ``--incidents`` incidents are created, the node is restarted (a
  fresh node on the same data), and one user lists every incident (all pages);
  RSS of the fresh node before and after.
* **post**: steady posting. ``--live`` incidents, each followed by one socket;
  another socket posts ``--text`` characters per message to them in turn,
  ``--in-flight`` unacknowledged at most, for ``--seconds``. RSS is sampled every
  second; the growth rate is the least-squares slope over the second half (the
  first half is warm-up: caches filling, allocator arenas), in MiB/s.

``--source`` runs the server from another checkout (for example the main
branch, to compare before/after a change): ``python -m server.cli`` is run
with that directory as its working directory, so its ``server`` package is
the one imported. Not part of the timed benchmark (``python -m bench``).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
from pathlib import Path
from typing import Any

from bench.servers import (
    LIAISON_BENCH_LIMITS,
    REPO,
    Processes,
    free_port,
    python_executable,
    redis_argv,
    wait_ready,
    wait_redis,
)
from liaison_client import LiaisonClient

DEMO_PASSWORD = "liaison-demo"  # noqa: S105 - published demo credentials


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class Node:
    """One ``liaison serve --demo`` process, restartable on the same data."""

    def __init__(self, procs: Processes, source: Path, data: Path, redis_url: str) -> None:
        self.procs, self.source, self.data, self.redis_url = procs, source, data, redis_url
        self.port = free_port()
        self.proc: Any = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.starts += 1
        env = {"LIAISON_LOG_LEVEL": "WARNING", "LIAISON_ADMIN_PASSWORD": "bench-admin-pw"}
        env |= LIAISON_BENCH_LIMITS
        if self.redis_url:
            env |= {"LIAISON_REDIS_URL": self.redis_url, "LIAISON_NODE_ID": f"mem{self.starts}"}
        argv = [python_executable(), "-m", "server.cli", "serve", "--demo"]
        argv += ["--host", "127.0.0.1", "--port", str(self.port), "--data-dir", str(self.data)]
        log = (self.data.parent / f"server{self.starts}.log").open("ab")
        self.proc = self.procs.start(
            argv, cwd=self.source, env=env, cpu=None, stdout=log, stderr=log
        )
        wait_ready(self.proc, self.port)

    def restart(self) -> None:
        self.procs.stop(self.proc)
        self.port = free_port()
        self.start()

    def rss(self) -> float:
        return rss_mib(self.proc.pid)


async def client(node: Node, live: bool = True) -> LiaisonClient:
    c = LiaisonClient(node.url)
    await c.login("dispatch", DEMO_PASSWORD)
    if live:
        await c.connect()
    return c


async def follows(node: Node, count: int) -> dict[str, float | int]:
    c = await client(node)
    try:
        await asyncio.sleep(1.0)  # let start-up settle before the first reading
        before = node.rss()
        for _ in range(count // 100):
            targets = [
                {"incident": f"inc_{secrets.token_hex(8)}", "after_seq": 0} for _ in range(100)
            ]
            await c.send({"type": "follow", "incidents": targets})
        after = node.rss()
    finally:
        await c.close()
    return {"rss_before_mib": before, "rss_after_mib": after, "growth_mib": after - before}


async def create_incidents(node: Node, count: int, concurrency: int = 32) -> None:
    c = await client(node)
    todo = iter(range(count))

    async def worker() -> None:
        for i in todo:
            await c.send(
                {
                    "type": "incident.create",
                    "title": f"Bench incident {i}",
                    "category": "welfare",
                    "priority": "normal",
                    "orgs": ["metro-police", "harbour-shelter"],
                }
            )

    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await c.close()


async def listing(node: Node, count: int) -> dict[str, float | int]:
    await create_incidents(node, count)
    node.restart()
    c = await client(node, live=False)
    try:
        await asyncio.sleep(1.0)
        before = node.rss()
        listed = await c.incidents()
        after = node.rss()
    finally:
        await c.close()
    return {
        "listed": len(listed),
        "rss_before_mib": before,
        "rss_after_mib": after,
        "growth_mib": after - before,
    }


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, rss) points: RSS growth per second."""
    n = len(points)
    mt = sum(t for t, _ in points) / n
    mr = sum(r for _, r in points) / n
    var = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (r - mr) for t, r in points) / var if var else 0.0


async def posting(node: Node, args: argparse.Namespace) -> dict[str, float | int]:
    poster, follower = await client(node), await client(node)
    try:
        incidents = []
        for i in range(args.live):
            incidents.append(
                await poster.open_incident(
                    f"Steady {i}", "welfare", priority="normal",
                    orgs=["metro-police", "harbour-shelter"],
                )
            )  # fmt: skip
        for incident in incidents:
            await follower.follow(incident)
        filler = "x" * args.text
        posted = 0
        stop = asyncio.get_running_loop().time() + args.seconds

        async def worker(k: int) -> None:
            nonlocal posted
            loop = asyncio.get_running_loop()
            while loop.time() < stop:
                await poster.post(incidents[(posted + k) % len(incidents)], f"{posted} {filler}")
                posted += 1
                while not follower.events.empty():
                    follower.events.get_nowait()  # keep the client's own memory flat

        async def sample(points: list[tuple[float, float]]) -> None:
            loop = asyncio.get_running_loop()
            start = loop.time()
            while loop.time() < stop:
                points.append((loop.time() - start, node.rss()))
                await asyncio.sleep(1.0)

        await asyncio.sleep(1.0)
        points: list[tuple[float, float]] = []
        await asyncio.gather(sample(points), *(worker(k) for k in range(args.in_flight)))
    finally:
        await poster.close()
        await follower.close()
    half = points[len(points) // 2 :]
    return {
        "posts": posted,
        "posts_per_s": posted / args.seconds,
        "rss_start_mib": points[0][1],
        "rss_end_mib": points[-1][1],
        "growth_mib_per_s_2nd_half": slope(half),
        "growth_kib_per_post": slope(half) * 1024 / (posted / args.seconds) if posted else 0.0,
    }


async def scenario(backend: str, name: str, args: argparse.Namespace) -> dict[str, float | int]:
    with Processes() as procs, tempfile.TemporaryDirectory(prefix="liaison-mem-") as tmp:
        base = Path(tmp)
        redis_url = ""
        if backend == "redis":
            port = free_port()
            (base / "redis").mkdir()
            rproc = procs.start(
                redis_argv(port, base / "redis"), cwd=base, env={}, cpu=None,
                stdout=None, stderr=None,
            )  # fmt: skip
            wait_redis(rproc, port)
            redis_url = f"redis://127.0.0.1:{port}/0"
        node = Node(procs, args.source, base / "data", redis_url)
        node.start()
        if name == "follows":
            return await follows(node, args.follows)
        if name == "post":
            return await posting(node, args)
        return await listing(node, args.incidents)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.memory", description=__doc__)
    parser.add_argument("--backend", choices=("sqlite", "redis", "both"), default="both")
    parser.add_argument("--scenario", choices=("follows", "list", "post", "both"), default="both")
    parser.add_argument("--follows", type=int, default=200_000)
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--live", type=int, default=20, help="post: incidents posted to")
    parser.add_argument("--text", type=int, default=200, help="post: characters per message")
    parser.add_argument("--in-flight", type=int, default=16, help="post: unacked posts at most")
    parser.add_argument("--seconds", type=float, default=60.0, help="post: how long")
    parser.add_argument("--source", type=Path, default=REPO, help="checkout to run the server from")
    args = parser.parse_args()
    backends = ("sqlite", "redis") if args.backend == "both" else (args.backend,)
    names = ("follows", "list") if args.scenario == "both" else (args.scenario,)
    print(f"source: {args.source}")
    for backend in backends:
        for name in names:
            result = asyncio.run(scenario(backend, name, args))
            shown = ", ".join(
                f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()
            )
            print(f"{backend:6} {name:8} {shown}", flush=True)


if __name__ == "__main__":
    main()
