"""The load process: workloads A to D against one server, figures as JSON on stdout.

It runs as its own process (``python -m bench.load CONFIG_JSON``), pinned to
another core than the server when the machine has two, so the server under
test gets a core of its own and the clients' CPU can be measured apart.

A  fan-out throughput: N subscribers follow one incident; publishers post as
   fast as a bounded window of unacknowledged posts allows. Deliveries/s are
   counted across all subscribers during a fixed window after a warm-up.
B  latency: a fixed post rate to the same N subscribers (open loop: the
   schedule does not wait for acks). Each text starts with its send time; the
   subscriber records arrival minus send time for every delivery.
C  many small incidents: M incidents, K members each; every member follows
   its incident and posts, at a fixed aggregate rate. Same latency method.
D  one connection's post rate: A with one publisher and one subscriber.
E  cross-node fan-out: A's closed loop (part "E") and B's fixed rate (part
   "E-lat") with the publishers on one node and the subscribers on another
   node of the same Redis (``sub_port``), so every event crosses Redis.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
import orjson

from bench.measure import (
    CountSink,
    LatencySink,
    QuietSink,
    Snapshot,
    Stats,
    percentiles_ms,
    process_cpu_s,
    stamped_text,
    window_figures,
)
from bench.wsclient import EventSink, SioConnection, connect

#: Demo users (bench/README.md): subscribers rotate over these, publishers over the next.
SUBSCRIBER_USERS = ("officer", "outreach", "sergeant", "shelter-lead", "shelter-super")
#: (Not the demo bot: bots authenticate with an API key, not a password.)
PUBLISHER_USERS = ("dispatch", "sergeant")
DEMO_PASSWORD = "liaison-demo"  # noqa: S105 - published demo credentials
DEMO_ORGS = ("metro-police", "harbour-shelter")
#: Connections opened at once while setting up a workload.
CONNECT_PARALLEL = 20


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """What to run; passed as JSON on the command line by bench.run."""

    kind: str  # "liaison" (login, real incidents) or "plain" (any auth, rooms by name)
    host: str
    port: int  # where publishers connect (and REST calls go)
    #: Processes of the server under test by role, CPU-accounted together; the
    #: first is "the server" (single node) or node A (E). Settle waits for all.
    server_pids: dict[str, int]
    run_id: str
    #: Where subscribers connect; 0: ``port``. E: node B of the same Redis.
    sub_port: int = 0
    workloads: tuple[str, ...] = ("A", "B", "C", "D")
    warmup_s: float = 1.0
    duration_s: float = 5.0
    drain_s: float = 3.0
    subscribers: int = 100
    publishers: int = 8
    window: int = 8
    b_rate: float = 200.0
    b_publishers: int = 10
    c_incidents: int = 100
    c_members: int = 3
    c_rate: float = 3000.0
    text_chars: int = 120
    settle_s: float = 10.0
    #: Connections come from this many loopback addresses (127.0.0.2 on),
    #: in turn, as clients of a real deployment come from many; 0: 127.0.0.1.
    #: A worker group (``--workers``) deals connections out by address.
    source_addresses: int = 0

    @classmethod
    def from_json(cls, raw: str | bytes) -> LoadConfig:
        values = orjson.loads(raw)
        if "workloads" in values:
            values["workloads"] = tuple(values["workloads"])
        values["server_pids"] = {str(k): int(v) for k, v in values["server_pids"].items()}
        return cls(**values)

    def to_json(self) -> str:
        return orjson.dumps(asdict(self)).decode()


# ------------------------------------------------------------------ target


@dataclass(slots=True)
class Target:
    """How to authenticate and where to post on one server.

    Liaison needs real tokens and real incidents (created over REST, so every
    workload starts on an empty log); the plain servers accept any auth and
    treat an incident id as a room name.
    """

    config: LoadConfig
    tokens: dict[str, str] = field(default_factory=dict)
    _http: aiohttp.ClientSession | None = None

    @property
    def base(self) -> str:
        return f"http://{self.config.host}:{self.config.port}"

    @property
    def sub_port(self) -> int:
        """Subscribers' port: another node than the publishers' in E, else the same."""
        return self.config.sub_port or self.config.port

    @property
    def is_liaison(self) -> bool:
        return self.config.kind == "liaison"

    async def start(self) -> None:
        if not self.is_liaison:
            return
        self._http = aiohttp.ClientSession()
        for user in SUBSCRIBER_USERS + PUBLISHER_USERS:
            body = {"username": user, "password": DEMO_PASSWORD}
            self.tokens[user] = (await self._post("/api/v1/auth/login", None, body))["token"]

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def _post(self, path: str, token: str | None, body: dict[str, Any]) -> Any:
        assert self._http is not None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self._http.post(self.base + path, json=body, headers=headers) as r:
            data = await r.json()
            if r.status >= 400:
                raise RuntimeError(f"POST {path}: {r.status} {data}")
            return data

    def auth(self, user: str) -> dict[str, Any]:
        return {"token": self.tokens.get(user, "bench"), "versions": [1], "encoding": "json"}

    async def incidents(self, label: str, count: int) -> list[tuple[str, int]]:
        """``count`` fresh incidents as (id, head seq)."""
        names = [f"bench-{self.config.run_id}-{label}-{i}" for i in range(count)]
        if not self.is_liaison:
            return [(name, 0) for name in names]
        created = await asyncio.gather(*(self._create(name) for name in names))
        return [(c["incident"], int(c["seq"])) for c in created]

    async def _create(self, name: str) -> Any:
        body: dict[str, Any] = {
            "id": name,
            "title": f"benchmark {name}",
            "category": "bench",
            "orgs": list(DEMO_ORGS),
        }
        return await self._post("/api/v1/incidents", self.tokens[PUBLISHER_USERS[0]], body)


# ------------------------------------------------------------- connections


async def open_connections(
    target: Target, users: Sequence[str], sink: EventSink, port: int | None = None
) -> list[SioConnection]:
    """One connection per user entry, ``CONNECT_PARALLEL`` at a time, to ``port``.

    ``port`` defaults to the publishers' port (node A in E).
    """
    gate = asyncio.Semaphore(CONNECT_PARALLEL)
    cfg = target.config
    to_port = cfg.port if port is None else port

    async def one(i: int, user: str) -> SioConnection:
        # A latency sink checks each connection's order on a view of its own.
        own = sink.for_connection() if isinstance(sink, LatencySink) else sink
        async with gate:
            return await connect(
                cfg.host, to_port, target.auth(user), own, local_addr=source_address(cfg, i)
            )

    return list(await asyncio.gather(*(one(i, u) for i, u in enumerate(users))))


def source_address(cfg: LoadConfig, i: int) -> str | None:
    """The ``i``-th connection's source address, if the run spreads them."""
    if cfg.source_addresses <= 0:
        return None
    return f"127.0.0.{2 + i % cfg.source_addresses}"


async def follow(conn: SioConnection, incident: str, after_seq: int) -> None:
    """Follow one incident from ``after_seq`` and insist it worked."""
    ack = await conn.call(
        {"type": "follow", "incidents": [{"incident": incident, "after_seq": after_seq}]}
    )
    status = ack.get("incidents", [{}])[0].get("status") if isinstance(ack, dict) else None
    if status != "ok":
        raise RuntimeError(f"follow {incident} refused: {ack}")


async def open_followers(
    target: Target, incidents: Sequence[tuple[str, int]], sink: EventSink
) -> list[SioConnection]:
    """One connection per entry of ``incidents``, each following that incident.

    They connect to the subscribers' port: the same server as the publishers,
    except in E, where it is the other node.
    """
    users = [SUBSCRIBER_USERS[i % len(SUBSCRIBER_USERS)] for i in range(len(incidents))]
    conns = await open_connections(target, users, sink, target.sub_port)
    await asyncio.gather(
        *(follow(c, inc, head) for c, (inc, head) in zip(conns, incidents, strict=True))
    )
    return conns


def close_all(conns: Sequence[SioConnection]) -> None:
    for conn in conns:
        conn.close()


class Poster:
    """Builds message.post commands with ids unique across the run (idempotency keys)."""

    def __init__(self, run_id: str, label: str, text_chars: int) -> None:
        self._prefix = f"{run_id}-{label}-"
        self._n = 0
        self._filler = "x" * text_chars

    def command(self, incident: str, sent_ns: int | None = None) -> dict[str, Any]:
        """A post to ``incident`` stamped with ``sent_ns`` (default: now)."""
        self._n += 1
        return {
            "type": "message.post",
            "id": f"{self._prefix}{self._n}",
            "incident": incident,
            "text": stamped_text(time.monotonic_ns() if sent_ns is None else sent_ns, self._filler),
        }


# ------------------------------------------------------------------ common


async def drain(stats: Stats, expected: int, timeout: float) -> None:
    """Wait for outstanding acks and ``expected`` deliveries (or samples), bounded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stats.outstanding <= 0 and stats.deliveries >= expected:
            return
        await asyncio.sleep(0.05)


def health(stats: Stats) -> dict[str, Any]:
    """What went wrong, if anything: errors, cut-offs, lost connections."""
    return {
        "posts": stats.posts,
        "acks_ok": stats.acks_ok,
        "ack_errors": stats.acks_err,
        "first_error": stats.first_error,
        "notices": stats.notices,
        "lost_connections": stats.lost_connections,
        "duplicates": stats.duplicates,
        "reordered": stats.reordered,
        "gaps": stats.gaps,
    }


async def measure_window(stats: Stats, cfg: LoadConfig) -> dict[str, float]:
    """Sleep through warm-up, then snapshot around the measured window."""
    await asyncio.sleep(cfg.warmup_s)
    first = Snapshot.take(stats, cfg.server_pids)
    await asyncio.sleep(cfg.duration_s)
    return window_figures(first, Snapshot.take(stats, cfg.server_pids))


# -------------------------------------------------------------- workload A


async def closed_loop(
    conn: SioConnection,
    incident: str,
    poster: Poster,
    window: int,
    stats: Stats,
    stop: asyncio.Event,
) -> None:
    """Post as fast as acks come back, never more than ``window`` unacknowledged."""
    slots = asyncio.Semaphore(window)

    def acked(frame: bytes) -> None:
        stats.on_ack(frame)
        slots.release()

    while not stop.is_set() and conn.connected:
        await slots.acquire()
        conn.send_cmd(poster.command(incident), acked)
        stats.posts += 1


async def closed_loop_fanout(
    target: Target, label: str, subscribers: int, publishers: int, window: int
) -> dict[str, Any]:
    """Subscribers follow one fresh incident; publishers post closed-loop; count deliveries."""
    cfg = target.config
    [(incident, head)] = await target.incidents(label, 1)
    stats = Stats()
    subs = await open_followers(target, [(incident, head)] * subscribers, CountSink(stats))
    pub_users = [PUBLISHER_USERS[i % len(PUBLISHER_USERS)] for i in range(publishers)]
    pubs = await open_connections(target, pub_users, QuietSink(stats))
    stop = asyncio.Event()
    posters = [Poster(cfg.run_id, f"{label}{i}", cfg.text_chars) for i in range(publishers)]
    tasks = [
        asyncio.create_task(closed_loop(p, incident, poster, window, stats, stop))
        for p, poster in zip(pubs, posters, strict=True)
    ]
    try:
        figures = await measure_window(stats, cfg)
        stop.set()
        await drain(stats, -1, cfg.drain_s)  # acks first: they fix the expected count
        expected = stats.acks_ok * subscribers
        await drain(stats, expected, cfg.drain_s)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        close_all(subs + pubs)
    return {
        **figures,
        "subscribers": subscribers,
        "publishers": publishers,
        "window": window,
        "expected_deliveries": expected,
        "missing_deliveries": expected - stats.deliveries,
        **health(stats),
    }


async def workload_a(target: Target) -> dict[str, Any]:
    """Fan-out throughput: many subscribers, several closed-loop publishers."""
    cfg = target.config
    return await closed_loop_fanout(target, "a", cfg.subscribers, cfg.publishers, cfg.window)


async def workload_d(target: Target) -> dict[str, Any]:
    """One connection's post rate: one publisher with a window, one subscriber.

    A server that handles a connection's commands strictly one after the
    other, each waiting for its commit, caps a single bot at
    1 / (round trip) posts per second however large its window is.
    """
    return await closed_loop_fanout(target, "d", 1, 1, target.config.window)


# ---------------------------------------------------------- workloads B, C


async def paced(
    targets: Sequence[tuple[SioConnection, str]],
    poster: Poster,
    rate: float,
    sink: LatencySink,
    cfg: LoadConfig,
) -> None:
    """Open-loop posting at ``rate``/s, round-robin over ``targets``, until the window ends.

    Posts are sent in small bursts every ~2 ms (asyncio cannot sleep 300 µs
    reliably); each carries its actual send time, and the worst lag behind the
    schedule is kept so a saturated client shows up in the figures.
    """
    stats = sink.stats
    start = time.monotonic()
    sink.window_start_ns = int((start + cfg.warmup_s) * 1e9)
    end = start + cfg.warmup_s + cfg.duration_s
    sink.window_end_ns = int(end * 1e9)
    sent = 0
    while (now := time.monotonic()) < end:
        stats.pacer_max_lag_s = max(stats.pacer_max_lag_s, now - (start + sent / rate))
        due = int((now - start) * rate) + 1
        while sent < due:
            conn, incident = targets[sent % len(targets)]
            if conn.connected:
                sent_ns = time.monotonic_ns()
                conn.send_cmd(poster.command(incident, sent_ns), stats.on_ack)
                stats.posts += 1
                # Counted by the same stamp the sink filters on, so they agree exactly.
                if sink.window_start_ns <= sent_ns < sink.window_end_ns:
                    stats.window_posts += 1
            sent += 1
        await asyncio.sleep(0.002)


async def latency_run(
    targets: Sequence[tuple[SioConnection, str]],
    rate: float,
    fanout: int,
    sink: LatencySink,
    cfg: LoadConfig,
    label: str,
) -> dict[str, Any]:
    """Drive ``paced`` posting, measure the window, drain, and summarise latencies."""
    stats = sink.stats
    poster = Poster(cfg.run_id, label, cfg.text_chars)
    pacer = asyncio.create_task(paced(targets, poster, rate, sink, cfg))
    try:
        figures = await measure_window(stats, cfg)
        await pacer
    finally:
        pacer.cancel()
    expected = stats.window_posts * fanout
    deadline = time.monotonic() + cfg.drain_s
    while len(stats.samples_ns) < expected and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await drain(stats, -1, max(0.0, deadline - time.monotonic()))
    return {
        **figures,
        "rate": rate,
        "window_posts": stats.window_posts,
        "samples": len(stats.samples_ns),
        "expected_samples": expected,
        "missing_samples": expected - len(stats.samples_ns),
        "pacer_max_lag_ms": round(stats.pacer_max_lag_s * 1000, 1),
        **percentiles_ms(stats.samples_ns, expected),
        **health(stats),
    }


async def workload_b(target: Target) -> dict[str, Any]:
    """Latency of one busy incident: a fixed rate from a few bots to many followers."""
    return await fixed_rate_fanout(target, "b")


async def fixed_rate_fanout(target: Target, label: str) -> dict[str, Any]:
    """B's shape: ``b_rate`` posts/s from ``b_publishers`` to ``subscribers`` followers."""
    cfg = target.config
    [(incident, head)] = await target.incidents(label, 1)
    sink = LatencySink(Stats())
    subs = await open_followers(target, [(incident, head)] * cfg.subscribers, sink)
    pub_users = [PUBLISHER_USERS[i % len(PUBLISHER_USERS)] for i in range(cfg.b_publishers)]
    pubs = await open_connections(target, pub_users, QuietSink(sink.stats))
    try:
        result = await latency_run(
            [(p, incident) for p in pubs], cfg.b_rate, cfg.subscribers, sink, cfg, label
        )
    finally:
        close_all(subs + pubs)
    return {**result, "subscribers": cfg.subscribers, "publishers": cfg.b_publishers}


async def workload_c(target: Target) -> dict[str, Any]:
    """Latency across many small incidents: the inbound path (decode, store, ack) dominates."""
    cfg = target.config
    incidents = await target.incidents("c", cfg.c_incidents)
    sink = LatencySink(Stats())
    # Member j of every incident before member j+1 of any: consecutive posts
    # land on different incidents, as they would from independent people.
    order = [incidents[i] for _ in range(cfg.c_members) for i in range(len(incidents))]
    members = await open_followers(target, order, sink)
    try:
        result = await latency_run(
            [(conn, inc) for conn, (inc, _) in zip(members, order, strict=True)],
            cfg.c_rate,
            cfg.c_members,
            sink,
            cfg,
            "c",
        )
    finally:
        close_all(members)
    return {**result, "incidents": cfg.c_incidents, "members": cfg.c_members}


async def workload_e_fanout(target: Target) -> dict[str, Any]:
    """E, throughput: A's closed loop, publishers on node A, subscribers on node B."""
    cfg = target.config
    return await closed_loop_fanout(target, "e", cfg.subscribers, cfg.publishers, cfg.window)


async def workload_e_latency(target: Target) -> dict[str, Any]:
    """E, latency: B's fixed rate, publishers on node A, subscribers on node B."""
    return await fixed_rate_fanout(target, "el")


Workload = Callable[[Target], Awaitable[dict[str, Any]]]
#: Each selectable workload and the parts it runs, by the key its figures get.
WORKLOADS: dict[str, tuple[tuple[str, Workload], ...]] = {
    "A": (("A", workload_a),),
    "B": (("B", workload_b),),
    "C": (("C", workload_c),),
    "D": (("D", workload_d),),
    "E": (("E", workload_e_fanout), ("E-lat", workload_e_latency)),
}


async def settle(server_pids: dict[str, int], limit_s: float) -> float:
    """Wait until the server is idle (< 10 % of a core over 250 ms); seconds waited.

    "The server" is every process in ``server_pids`` together (E: both nodes
    and Redis).

    An overloaded server keeps working through its backlog after the clients
    have gone; starting the next workload before that would charge it to the
    next workload's figures.
    """
    start = time.monotonic()
    while time.monotonic() - start < limit_s:
        before = sum(process_cpu_s(pid) for pid in server_pids.values())
        await asyncio.sleep(0.25)
        if sum(process_cpu_s(pid) for pid in server_pids.values()) - before < 0.025:
            break
    return round(time.monotonic() - start, 2)


async def run(cfg: LoadConfig) -> dict[str, Any]:
    """Every configured workload in turn, each on an idle server."""
    target = Target(cfg)
    await target.start()
    results: dict[str, Any] = {}
    try:
        for name in cfg.workloads:
            for key, workload in WORKLOADS[name]:
                await settle(cfg.server_pids, cfg.settle_s)
                results[key] = await workload(target)
                results[key]["settle_after_s"] = await settle(cfg.server_pids, cfg.settle_s)
    finally:
        await target.close()
    return results


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    cfg = LoadConfig.from_json(args[0])
    results = asyncio.run(run(cfg))
    sys.stdout.write(orjson.dumps(results).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
