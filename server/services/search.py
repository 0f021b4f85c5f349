"""Text search over the events a reader may see (``GET /api/v1/search``).

The storage index (``EventLog.text_matches``) knows words, not readers: it
gives the seqs of an incident's events that have every word asked for. Each
candidate is then put through the one audience function
(server/domain/audience.py) and re-checked against the envelope the reader
would be given, so a hit is exactly an event the reader's timeline shows,
with a snippet of what it shows.

**Nothing a reader may not see shapes the answer.** A page walks *positions*
(the reader's incidents in their index order, each from its head down, in
windows of ``WINDOW`` seqs), not candidates: it stops after ``limit`` hits
(the cursor is the last hit, which the reader sees) or after ``SPAN`` seqs
(the cursor is a window boundary, arithmetic on public positions), never
after some number of candidates. So how many hidden events matched changes
neither the hits, their order, the cursor nor whether there is one. There is
no relevance ranking (its statistics would count hidden text) and no total.
Only the time a page takes depends on hidden candidates.

Order: incidents as ``GET /api/v1/incidents`` lists them for the reader
(last update first), within one incident the newest event first. An
incident updated while a client pages may move past its cursor: its new
events are not in the later pages (search again).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from server.domain.audience import Audience, Reader, event_meta
from server.domain.events import StoredEvent
from server.domain.model import Principal
from server.domain.search_text import matches, snippet
from server.domain.sharing import AgreementsView
from server.services.envelope import shaped
from server.services.projections import Projections
from server.storage.base import EventLog, IncidentQuery, IndexCursor

#: Seqs of one incident looked up per index query (and at most read per window).
WINDOW = 1_000
#: Seqs one page walks at most, across incidents: what bounds a request's work.
SPAN = 20_000
#: What walking one incident costs of ``SPAN`` at least: at most 200 incidents
#: per page, however small they are.
INCIDENT_COST = 100
#: Incidents of the reader's list fetched per index page.
INCIDENT_PAGE = 100
#: Hits per page: default and most.
DEFAULT_HITS = 20
MAX_HITS = 100


@dataclass(frozen=True, slots=True)
class SearchPosition:
    """Where a page starts: the incident being walked and the seq to go below.

    ``listed``: the incident's place in the reader's index order, None when
    the search is scoped to one incident. ``before_seq`` 0: that incident is
    done, go on with the next.
    """

    listed: IndexCursor | None
    before_seq: int


@dataclass(slots=True)
class Hit:
    event: StoredEvent
    audience: Audience
    envelope: dict[str, Any]
    snippet: str

    def to_wire(self) -> dict[str, Any]:
        return {
            "incident": self.event.incident,
            "seq": self.event.seq,
            "snippet": self.snippet,
            "event": self.envelope,
        }


@dataclass(slots=True)
class SearchPage:
    hits: list[Hit] = field(default_factory=list)
    #: Where the next page starts, None if the walk reached the end.
    next: SearchPosition | None = None


@dataclass(slots=True)
class _Walk:
    """One page's budget and hits."""

    limit: int
    spent: int = 0
    hits: list[Hit] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return len(self.hits) >= self.limit or self.spent >= SPAN


class Search:
    def __init__(self, log: EventLog, projections: Projections, rules: AgreementsView) -> None:
        self.log, self.projections, self.rules = log, projections, rules

    async def in_incident(
        self,
        who: Principal,
        incident: str,
        head_seq: int,
        terms: Sequence[str],
        before_seq: int | None,
        limit: int,
    ) -> SearchPage:
        """Hits in one incident the caller takes part in (checked by the caller)."""
        walk = _Walk(limit)
        start = min(before_seq or head_seq + 1, head_seq + 1)
        stop = await self._walk_incident(who, incident, terms, start, walk)
        return SearchPage(walk.hits, SearchPosition(None, stop) if stop > 1 else None)

    async def across(
        self, who: Principal, terms: Sequence[str], start: SearchPosition | None, limit: int
    ) -> SearchPage:
        """Hits in every incident the caller takes part in, in its index order."""
        walk = _Walk(limit)
        resume = start
        after = start.listed if start is not None else None
        while True:
            page = await self.log.list_incidents(
                IncidentQuery(org=who.org_id, after=after, limit=INCIDENT_PAGE)
            )
            listed = [(s["updated"], s["id"], s["seq"]) for s in page.incidents]
            if resume is not None and resume.listed is not None and resume.before_seq > 1:
                # The incident the last page stopped in: finish it first. The
                # cursor comes from the client: only an incident it takes
                # part in, from no higher than its head (a forged one would
                # otherwise time the index of an incident it is not in).
                incident = resume.listed[1]
                head = await self.log.head(incident)
                if head is not None and await self.log.participates(incident, who.org_id):
                    listed.insert(0, (*resume.listed, min(resume.before_seq - 1, head.seq)))
            resume = None
            for updated, incident, head_seq in listed:
                if not who.sees(incident):
                    continue
                stop = await self._walk_incident(who, incident, terms, head_seq + 1, walk)
                if walk.done:
                    nxt = SearchPosition((updated, incident), stop)
                    more = stop > 1 or page.next is not None or incident != listed[-1][1]
                    return SearchPage(walk.hits, nxt if more else None)
                after = (updated, incident)
            if page.next is None:
                return SearchPage(walk.hits, None)
            after = page.next

    async def _walk_incident(
        self, who: Principal, incident: str, terms: Sequence[str], before_seq: int, walk: _Walk
    ) -> int:
        """Walk one incident down from ``before_seq`` (exclusive) until the page is
        done; the seq the next page goes below (1 or less: the incident is done)."""
        high = before_seq
        walk.spent += INCIDENT_COST
        while high > 1 and not walk.done:
            low = max(0, high - 1 - WINDOW)  # the window is seqs low+1 .. high-1
            walk.spent += high - 1 - low
            seqs = await self.log.text_matches(incident, terms, low, high)
            for ev in await self._visible_hits(who, incident, terms, seqs):
                walk.hits.append(ev)
                if len(walk.hits) >= walk.limit:
                    return ev.event.seq
            high = low + 1
        return high

    async def _visible_hits(
        self, who: Principal, incident: str, terms: Sequence[str], seqs: list[int]
    ) -> list[Hit]:
        """The candidates the reader may see and that match what it would be shown."""
        if not seqs:
            return []
        low, high = min(seqs), max(seqs)
        wanted = set(seqs)
        events = [
            ev for ev in await self.log.read(incident, low - 1, high - low + 1) if ev.seq in wanted
        ]
        state = await self.projections.at_least(incident, high)
        if state is None or not state.participates(who.org_id):
            return []
        sight = state.sight(Reader(who.org_id, who.user_id), self.rules, int(time.time() * 1000))
        hits: list[Hit] = []
        for ev in reversed(events):
            aud = sight.of(event_meta(ev))
            if not aud.visible:
                continue
            env = shaped(ev, aud)
            if matches(terms, env["body"]):
                hits.append(Hit(ev, aud, env, snippet(terms, env["body"])))
        return hits
