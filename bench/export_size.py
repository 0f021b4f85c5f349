"""Export time and peak RSS for one large incident (SPEC section 22): a measurement, no load test.

    python -m bench.export_size [--events 100000] [--formats jsonl,csv,html,pdf]

Writes one incident of ``--events`` events straight into a SQLite log (the
storage layer, group-committed: a mix of messages, a police-only one in ten,
tasks and their steps, responder positions), then for each format starts a
fresh ``liaison serve --demo`` on that data, exports the incident once over
REST as the demo dispatcher (the body read and dropped as it streams) and
reports the wall time, the bytes, and the server's RSS before and its peak
(``VmHWM``) after. A fresh process per format, so each peak is that export's.
The incident's projection is loaded by the export (it decides who had joined
when), and is part of the peak.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.memory import DEMO_PASSWORD, Node
from bench.servers import REPO, Processes
from server.domain.events import EventDraft
from server.storage.sqlite import SqliteConfig, SqliteEventLog

INCIDENT_CID = "bench-export-incident"
POLICE, SHELTER = "metro-police", "harbour-shelter"


def proc_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def _draft(incident: str, i: int, kind: str, body: dict[str, Any], org: str = POLICE) -> EventDraft:
    user = "u_dispatch" if org == POLICE else "u_outreach"
    visibility = (POLICE,) if kind == "message.posted" and i % 10 == 0 else None
    body = {**body, "tlp": "AMBER"}
    return EventDraft(incident, kind, user, org, user, f"bench-{i}", visibility, body)


async def write_incident(data: Path, events: int) -> str:
    """One incident of ``events`` events in ``data``/events.db; its id."""
    log = SqliteEventLog(
        SqliteConfig(data / "events.db", synchronous="OFF"), deliver=lambda _i, _e: None
    )
    await log.start()
    incident = "inc_bench_export_100k"
    created = {
        "title": "Bench export incident",
        "category": "welfare",
        "priority": "high",
        "description": None,
        "location": {"lat": 51.5, "lon": -0.07, "address": "Harbour Bridge"},
        "orgs": [POLICE, SHELTER],
        "lead_org": POLICE,
        "liaisons": {POLICE: "u_dispatch", SHELTER: "u_shelter-lead"},
        "status": "reported",
    }
    first = EventDraft(
        incident, "incident.created", "u_dispatch", POLICE, "Dana", INCIDENT_CID, None,
        {**created, "tlp": "AMBER"}, epoch="bench0001",
    )  # fmt: skip
    await log.append(first)
    batch: list[asyncio.Future[Any]] = []
    task_seq = 0
    for i in range(2, events + 1):
        match i % 20:
            case 5:
                ev = _draft(incident, i, "task.created", {"title": f"Task {i}", "details": None,
                            "assignee": {"org": SHELTER, "user": None}})  # fmt: skip
                task_seq = i
            case 6 if task_seq:
                ev = _draft(incident, i, "task.accepted", {"task": task_seq, "note": None}, SHELTER)
            case 9 if task_seq:
                ev = _draft(
                    incident, i, "task.completed", {"task": task_seq, "note": "done"}, SHELTER
                )
            case 2 | 12:
                position = {"lat": 51.5 + (i % 997) / 1e5, "lon": -0.07 + (i % 991) / 1e5,
                            "accuracy_m": 8.0}  # fmt: skip
                ev = _draft(incident, i, "responder.position", {"position": position}, SHELTER)
            case _:
                text = f"Update {i}: officers on scene, caller calm, shelter bed held"
                mentions: dict[str, list[str]] = {"users": [], "orgs": []}
                body: dict[str, Any] = {"text": text, "mentions": mentions, "reply_to": None,
                                        "urgent": False}  # fmt: skip
                ev = _draft(incident, i, "message.posted", body)
        batch.append(log.enqueue(ev))
        if len(batch) >= 2000:
            await asyncio.gather(*batch)
            batch.clear()
    await asyncio.gather(*batch)
    await log.close()
    return incident


async def export_once(node: Node, incident: str, fmt: str) -> dict[str, float | int]:
    async with aiohttp.ClientSession() as session:
        login = {"username": "dispatch", "password": DEMO_PASSWORD}
        async with session.post(node.url + "/api/v1/auth/login", json=login) as resp:
            token = (await resp.json())["token"]
        await asyncio.sleep(1.0)  # let start-up settle before the first reading
        pid = node.proc.pid
        before = proc_kib(pid, "VmRSS")
        started = time.perf_counter()
        size = 0
        url = f"{node.url}/api/v1/incidents/{incident}/export?format={fmt}"
        timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
        async with session.get(
            url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        ) as resp:
            assert resp.status == 200, await resp.text()
            async for chunk in resp.content.iter_chunked(1 << 16):
                size += len(chunk)
        seconds = time.perf_counter() - started
        peak = proc_kib(pid, "VmHWM")
    return {
        "seconds": round(seconds, 2),
        "mib": round(size / 2**20, 1),
        "rss_before_mib": round(before / 1024, 1),
        "peak_rss_mib": round(peak / 1024, 1),
    }


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="liaison-export-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir(mode=0o700)
        started = time.perf_counter()
        incident = await write_incident(data, args.events)
        print(f"wrote {args.events} events in {time.perf_counter() - started:.1f} s", flush=True)
        for fmt in args.formats.split(","):
            with Processes() as procs:
                node = Node(procs, REPO, data, "")
                node.start()
                result = await export_once(node, incident, fmt)
            shown = ", ".join(f"{k} {v}" for k, v in result.items())
            print(f"{fmt:6} {args.events} events: {shown}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.export_size", description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--formats", default="jsonl,csv,html,pdf")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
