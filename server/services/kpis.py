"""KPIs over a date range, for one reader: which incidents, read how (SPEC 18.2).

The incidents counted are those the reader's organisation takes part in
that were **created** in ``[from_ms, to_ms)``; all of each one's events are
folded (a resolution after ``to_ms`` still counts for an incident opened in
the range). The incident index gives the candidates (only incidents updated
since ``from_ms`` can have been created since), the logs the events, and
server/domain/kpis.py the figures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from server.domain.audience import Reader
from server.domain.events import StoredEvent
from server.domain.incident import IncidentState, Sight
from server.domain.kpis import IncidentFacts, aggregate, incident_facts
from server.domain.sharing import AgreementsView
from server.storage.base import EventLog, IncidentQuery, IndexCursor

_PAGE = 1_000


async def incidents_created(
    log: EventLog, org: str, from_ms: int, to_ms: int
) -> AsyncIterator[str]:
    """Ids of the incidents ``org`` takes part in, created in ``[from_ms, to_ms)``."""
    cursor: IndexCursor | None = None
    while True:
        page = await log.list_incidents(
            IncidentQuery(org=org, updated_after=from_ms - 1, after=cursor, limit=_PAGE)
        )
        for summary in page.incidents:
            if from_ms <= summary["created"] < to_ms:
                yield summary["id"]
        if page.next is None:
            return
        cursor = page.next


async def read_all(log: EventLog, incident: str) -> list[StoredEvent]:
    events: list[StoredEvent] = []
    while True:
        page = await log.read(incident, events[-1].seq if events else 0, _PAGE)
        events += page
        if len(page) < _PAGE:
            return events


def facts_for(
    events: list[StoredEvent], reader: Reader, rules: AgreementsView, now_ms: int
) -> IncidentFacts:
    """One incident's facts as ``reader`` sees it (the timeline's audiences)."""
    state = IncidentState(id=events[0].incident, epoch=events[0].epoch)
    for ev in events:
        state.apply(ev)
    return incident_facts(events, Sight(reader, state.sharing(), rules, now_ms).of)


async def kpis_for(
    log: EventLog,
    reader: Reader,
    rules: AgreementsView,
    from_ms: int,
    to_ms: int,
    now_ms: int,
) -> dict[str, Any]:
    facts = []
    async for incident in incidents_created(log, reader.org, from_ms, to_ms):
        events = await read_all(log, incident)
        if events:
            facts.append(facts_for(events, reader, rules, now_ms))
    return {"from": from_ms, "to": to_ms, "org": reader.org, **aggregate(facts)}
