"""KPI query time over 10,000 incidents (issue 12): run once, not a load test.

    .venv/bin/python -m bench.kpi_query [--incidents 10000]

Fills a fresh SQLite log (in a temporary directory) with joint incidents of
12 events each (an urgent message and its acknowledgement, a task assigned,
accepted and completed, messages, resolved, closed), then times
``server.services.kpis.kpis_for`` for the police's supervisor over all of
them, as ``GET /api/v1/kpis`` runs it, and prints the split between reading
the index and logs and folding the figures. Nothing listens on a port.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from server.domain.audience import Reader
from server.domain.events import EventDraft
from server.domain.sharing import NoAgreements
from server.services import kpis as kpi_service
from server.storage.sqlite import SqliteConfig, SqliteEventLog

POLICE, NGO = "metro-police", "harbour-shelter"


def _draft(
    inc: str, n: int, kind: str, org: str, body: dict[str, Any], epoch: str | None = None
) -> EventDraft:
    user = "u_dispatch" if org == POLICE else "u_outreach"
    return EventDraft(
        inc, kind, user, org, user, f"{inc}-{n}", None, {**body, "tlp": "AMBER"}, epoch
    )


def script(i: int) -> list[EventDraft]:
    inc = f"inc_bench{i:08d}"
    header: dict[str, Any] = {
        "title": f"Incident {i}",
        "category": ("welfare", "theft")[i % 2],
        "priority": ("normal", "high")[i % 2],
        "description": None,
        "location": None,
        "orgs": [POLICE, NGO],
        "lead_org": POLICE,
        "liaisons": {},
        "status": "reported",
    }
    steps: list[tuple[str, str, dict[str, Any]]] = [
        (
            "message.posted",
            POLICE,
            {
                "text": "Need you",
                "mentions": {"users": [], "orgs": [NGO]},
                "reply_to": None,
                "urgent": True,
            },
        ),
        ("message.acknowledged", NGO, {"message": 2}),
        (
            "task.created",
            POLICE,
            {"title": "Go", "details": None, "assignee": {"org": NGO, "user": None}},
        ),
        ("task.accepted", NGO, {"task": 4, "note": None}),
        *[
            (
                "message.posted",
                org,
                {
                    "text": "update",
                    "mentions": {"users": [], "orgs": []},
                    "reply_to": None,
                    "urgent": False,
                },
            )
            for org in (POLICE, NGO) * 2
        ],
        ("task.completed", NGO, {"task": 4, "note": None}),
        (
            "incident.status_changed",
            POLICE,
            {"status": "resolved", "previous": "reported", "note": None},
        ),
        (
            "incident.status_changed",
            POLICE,
            {"status": "closed", "previous": "resolved", "note": None},
        ),
    ]
    drafts = [_draft(inc, 0, "incident.created", POLICE, header, epoch=f"e{i:011d}")]
    drafts += [_draft(inc, n, kind, org, body) for n, (kind, org, body) in enumerate(steps, 1)]
    return drafts


async def fill(log: SqliteEventLog, incidents: int) -> int:
    stored = 0
    for start in range(0, incidents, 200):
        firsts = [script(i) for i in range(start, min(incidents, start + 200))]
        await asyncio.gather(*(log.enqueue(d[0]) for d in firsts))
        await asyncio.gather(*(log.enqueue(x) for d in firsts for x in d[1:]))
        stored += sum(len(d) for d in firsts)
    return stored


async def main(incidents: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = SqliteEventLog(
            SqliteConfig(Path(tmp) / "bench.db", synchronous="OFF"), lambda i, e: None
        )
        await log.start()
        try:
            t0 = time.perf_counter()
            events = await fill(log, incidents)
            print(
                f"filled {incidents} incidents, {events} events in {time.perf_counter() - t0:.1f} s"
            )
            reader, now = Reader(POLICE, "u_sergeant"), int(time.time() * 1000)
            t1 = time.perf_counter()
            ids = [
                i
                async for i in kpi_service.incidents_created(log, POLICE, now - 86_400_000, now + 1)
            ]
            t2 = time.perf_counter()
            logs = [await kpi_service.read_all(log, i) for i, _head in ids]
            t3 = time.perf_counter()
            facts = [kpi_service.facts_for(e, reader, NoAgreements(), now) for e in logs]
            t4 = time.perf_counter()
            cache = kpi_service.FactsCache()
            span = (now - 86_400_000, now + 1, now)
            whole = await kpi_service.kpis_for(log, reader, NoAgreements(), *span, cache)
            t5 = time.perf_counter()
            again = await kpi_service.kpis_for(log, reader, NoAgreements(), *span, cache)
            t6 = time.perf_counter()
            assert whole["incidents"] == incidents == len(facts)
            assert again == whole
            print(
                f"kpis_for over {incidents} incidents: {t5 - t4:.2f} s"
                f" (index {t2 - t1:.2f} s, logs {t3 - t2:.2f} s, fold {t4 - t3:.2f} s)"
            )
            print(f"again, every incident's facts cached: {t6 - t5:.2f} s ({cache.hits} hits)")
        finally:
            await log.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=10_000)
    asyncio.run(main(parser.parse_args().incidents))
