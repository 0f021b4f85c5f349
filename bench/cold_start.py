"""Cold start, first follow of an old incident, and resume of many missed events.

    python -m bench.cold_start [--events 1000000] [--incidents 10000] [--resume 10000]

Builds a data directory with ``--events`` events over ``--incidents``
incidents through the real SQLite writer (hash chain, index, salts; only
``synchronous=OFF`` while building, as nothing here is about durability),
plus one incident with ``--resume`` messages. Then, on a fresh
``liaison serve`` over that directory:

* **ready**: seconds from exec to ``/readyz`` answering 200;
* **first follow**: milliseconds from sending ``follow`` (at the head) of an
  old incident no one touched since the start, to its ack;
* **resume**: milliseconds from ``follow`` with ``after_seq=0`` of the long
  incident to the arrival of its last event, on one WebSocket client;
* **resume on long-polling**: the same with the project's own client
  (``liaison_client``, python-socketio) on HTTP long-polling, the transport
  a phone falls back to behind a proxy that refuses WebSockets: every event
  decoded, checked in order and queued, as an app does.

Issue 13's targets: ready under 5 s, first follow under 100 ms, resume of
10,000 events under 1 s. Not a load test: one client, one request at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson

from bench.load import LoadConfig, Target, open_connections
from bench.servers import Processes, free_port, liaison_spec
from bench.wsclient import SioConnection
from liaison_client import LiaisonClient
from server.domain.events import EventDraft
from server.storage.sqlite import SqliteConfig, _Writer

ORGS = ["metro-police", "harbour-shelter"]
TEXT = "a message of about a hundred and twenty characters, which is what the bench posts " * 1
LONG = "bench-long"
BATCH = 2_000


def _draft(incident: str, n: int, created: bool = False) -> EventDraft:
    body = (
        {"title": f"incident {incident}", "category": "welfare", "priority": "normal", "orgs": ORGS}
        if created
        else {"text": f"{TEXT} {n}"}
    )
    return EventDraft(
        incident=incident,
        type="incident.created" if created else "message.posted",
        actor_user="dispatch",
        actor_org="metro-police",
        actor_name="Dispatch",
        client_id=f"{incident}-{n}",
        visibility=None,
        body=body,
        epoch=f"ep-{incident}" if created else None,
    )


def build(data_dir: Path, events: int, incidents: int, resume: int) -> float:
    """Write the events; returns seconds taken."""
    started = time.perf_counter()
    writer = _Writer(SqliteConfig(data_dir / "events.db", synchronous="OFF"))
    names = [f"bench-old-{i}" for i in range(incidents)]
    for start in range(0, incidents, BATCH):
        writer.commit([_draft(name, 0, created=True) for name in names[start : start + BATCH]])
    writer.commit([_draft(LONG, 0, created=True)])
    per_incident = max(1, (events - incidents) // incidents)
    pending: list[EventDraft] = []

    def add(draft: EventDraft) -> None:
        nonlocal pending
        pending.append(draft)
        if len(pending) == BATCH:
            writer.commit(pending)
            pending = []

    # Incident by incident: a batch then touches one or two logs, as a
    # real busy node's batches do, instead of thousands of heads at once.
    for name in names:
        for n in range(1, per_incident + 1):
            add(_draft(name, n))
    for n in range(1, resume + 1):
        add(_draft(LONG, n))
    if pending:
        writer.commit(pending)
    writer.db.close()
    return time.perf_counter() - started


class LastSeq:
    """Sink that notes when the event with seq ``until`` arrives."""

    def __init__(self) -> None:
        self.until = -1
        self.arrived = asyncio.Event()
        self.count = 0

    def on_ev(self, buf: bytearray, start: int, end: int, arrived_ns: int) -> None:
        # 42["ev",[env, env, ...]] or 42["ev",env]: batched frames hold several.
        payload = orjson.loads(bytes(buf[start + 2 : end]))[1]
        envs = payload if isinstance(payload, list) else [payload]
        self.count += len(envs)
        if any(env.get("seq") == self.until for env in envs):
            self.arrived.set()

    def on_other(self, packet: bytes) -> None:
        pass

    def on_lost(self) -> None:
        pass


async def probe(port: int, pid: int, old: str, resume: int) -> dict[str, float]:
    cfg = LoadConfig(
        kind="liaison", host="127.0.0.1", port=port, server_pids={"server": pid}, run_id="cold"
    )
    target = Target(cfg)
    await target.start()
    sink = LastSeq()
    conns: list[SioConnection] = []
    try:
        conns = await open_connections(target, ["officer"], sink)
        conn = conns[0]
        started = time.perf_counter()
        ack = await conn.call(
            {"type": "follow", "incidents": [{"incident": old, "after_seq": 1}]}, timeout=30
        )
        first_follow_ms = (time.perf_counter() - started) * 1e3
        if ack["incidents"][0]["status"] != "ok":
            raise RuntimeError(f"follow refused: {ack}")
        sink.until = resume + 1  # incident.created is seq 1
        started = time.perf_counter()
        ack = await conn.call(
            {"type": "follow", "incidents": [{"incident": LONG, "after_seq": 0}]}, timeout=30
        )
        if ack["incidents"][0]["status"] != "ok":
            raise RuntimeError(f"follow refused: {ack}")
        await asyncio.wait_for(sink.arrived.wait(), 60)
        resume_ms = (time.perf_counter() - started) * 1e3
    finally:
        for c in conns:
            c.close()
        await target.close()
    return {"first_follow_ms": first_follow_ms, "resume_ms": resume_ms}


async def probe_polling(port: int, resume: int) -> float:
    """Milliseconds to the last event of the long incident, followed from 0 on polling."""
    client = LiaisonClient(f"http://127.0.0.1:{port}", transports=["polling"])
    try:
        await client.login("officer", "liaison-demo")
        await client.connect()
        started = time.perf_counter()
        await client.follow(LONG, after_seq=0)
        last = 0
        while last < resume + 1:  # incident.created is seq 1
            last = (await client.next_event(timeout=60))["seq"]
        return (time.perf_counter() - started) * 1e3
    finally:
        await client.close()


def wait_ready_200(port: int, timeout_s: float) -> float:
    started = time.perf_counter()
    deadline = started + timeout_s
    while time.perf_counter() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1.0) as r:
                if r.status == 200:
                    return time.perf_counter() - started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.02)
    raise RuntimeError("never ready")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cold_start", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--resume", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Processes() as procs:
        data = Path(tmp)
        # The demo seed (users, organisations) first, on an empty directory.
        port = free_port()
        spec = liaison_spec(port, data)
        seed = procs.start(
            spec.argv, cwd=spec.cwd, env=spec.env, cpu=None, stdout=None, stderr=None
        )
        wait_ready_200(port, 120)
        procs.stop(seed)
        built_s = build(data, args.events, args.incidents, args.resume)
        size_mib = sum(p.stat().st_size for p in data.iterdir() if p.is_file()) / 2**20
        print(
            f"built {args.events:,} events over {args.incidents:,} incidents in {built_s:.1f} s"
            f" ({size_mib:.0f} MiB on disk)"
        )
        port = free_port()
        spec = liaison_spec(port, data)
        started = time.perf_counter()
        proc = procs.start(
            spec.argv, cwd=spec.cwd, env=spec.env, cpu=None, stdout=None, stderr=None
        )
        wait_ready_200(port, 300)
        ready_s = time.perf_counter() - started
        result = asyncio.run(probe(port, proc.pid, "bench-old-17", args.resume))
        polling_ms = asyncio.run(probe_polling(port, args.resume))
    print(f"ready (exec to /readyz 200): {ready_s:.2f} s   (target < 5 s)")
    print(
        f"first follow of an old incident: {result['first_follow_ms']:.0f} ms   (target < 100 ms)"
    )
    print(
        f"resume of {args.resume:,} missed events to the last: {result['resume_ms']:.0f} ms"
        "   (target < 1,000 ms)"
    )
    print(f"the same on long-polling, liaison_client: {polling_ms:.0f} ms   (target < 1,000 ms)")


if __name__ == "__main__":
    main()
