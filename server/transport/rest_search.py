"""REST routes for bots that look things up: text search and the filtered timeline.

GET /api/v1/search?q=&incident=&limit=&cursor=  -> {hits: [...], next}
GET /api/v1/incidents/{id}/timeline?types=&since=  (rest.py's route; the
    filtered read is here: ``filtered_timeline``)

Both decide what a reader gets of each event through the one audience
function, as every read path does (SPEC sections 9.4, 18.3 and 18.4). Search
terms are never logged: the access log has no query strings
(server/transport/http_log.py) and nothing here logs ``q``.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from protocol import v1
from protocol.errors import ErrorCode, ProtocolError
from server.domain.audience import Audience, Reader, event_meta
from server.domain.events import StoredEvent
from server.domain.model import Principal
from server.domain.search_text import parse_query
from server.services.archived import refusal
from server.services.envelope import shaped
from server.services.search import DEFAULT_HITS, MAX_HITS, Search, SearchPosition
from server.storage.base import LogHead

if TYPE_CHECKING:
    from server.transport.rest import RestApi

#: Seqs a filtered timeline page examines at most: a filter that matches
#: rarely gives short (even empty) pages with a ``next_after_seq``.
FILTER_SCAN = 5_000
#: Entries of ``types`` at most.
MAX_TYPES = 32
#: Event families ``types`` may name with ``<family>.*``.
FAMILIES = frozenset(t.split(".", 1)[0] for t in v1.EVENT_TYPES)


def _json(data: Any) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


def _invalid(field: str, why: str, reason: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID, f"{field}: {why}", {"field": field, "reason": reason})


# ------------------------------------------------------------ timeline filter


@dataclass(frozen=True, slots=True)
class TimelineFilter:
    """``types`` and ``since`` of a filtered timeline read (SPEC section 18.3)."""

    #: Exact event types, and families given as ``family.*``; both empty: any type.
    types: frozenset[str] = frozenset()
    families: frozenset[str] = frozenset()
    #: Only events stored strictly after this server time (ms).
    since: int | None = None

    def admits(self, ev: StoredEvent) -> bool:
        typed = not (self.types or self.families) or (
            ev.type in self.types or ev.type.split(".", 1)[0] in self.families
        )
        return typed and (self.since is None or ev.ts_ms > self.since)


def timeline_filter(query: Mapping[str, str]) -> TimelineFilter | None:
    """The filter a timeline request asks for, None for a plain (unfiltered) read."""
    if "types" not in query and "since" not in query:
        return None
    types: set[str] = set()
    families: set[str] = set()
    if "types" in query:
        names = [n.strip() for n in query["types"].split(",") if n.strip()]
        if not names or len(names) > MAX_TYPES:
            raise _invalid("types", f"1 to {MAX_TYPES} event types, comma-separated", "count")
        for name in names:
            if name.endswith(".*") and name[:-2] in FAMILIES:
                families.add(name[:-2])
            elif name in v1.EVENT_TYPES:
                types.add(name)
            else:
                raise _invalid(
                    "types", f"{name[:80]!r} is not an event type or family.*", "unknown_type"
                )
    since = None
    if "since" in query:
        raw = query["since"]
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 16:
            raise _invalid("since", "must be a server time in ms (an integer)", "not_integer")
        since = int(raw)
    return TimelineFilter(frozenset(types), frozenset(families), since)


async def filtered_timeline(
    api: RestApi,
    request: web.Request,
    who: Principal,
    incident: str,
    head: LogHead,
    after: int,
    limit: int,
    flt: TimelineFilter,
) -> web.Response:
    """A timeline page of the events the reader may see that pass ``flt``.

    Never a placeholder: the real type and time of an event the reader may
    not see are not its to filter on, so restricted events are skipped like
    any other that does not match. ``scanned_to_seq`` says how far the page
    looked: every event in ``(after_seq, scanned_to_seq]`` not in the page was
    skipped. Such a page cannot be chain-verified (its links skip); read
    the range unfiltered to verify (SPEC section 18.3).
    """
    events: list[StoredEvent] = []
    audiences: list[Audience] = []
    position, end = after, min(head.seq, after + FILTER_SCAN)
    while position < end and len(events) < limit:
        batch = await api.log.read(incident, position, min(end - position, api.limits.max_page))
        if not batch:
            break
        state = await api.projections.at_least(incident, batch[-1].seq)
        if state is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such incident")
        sight = state.sight(Reader(who.org_id, who.user_id), api.rules, int(time.time() * 1000))
        for ev in batch:
            position = ev.seq
            aud = sight.of(event_meta(ev))
            if aud.visible and flt.admits(ev):
                events.append(ev)
                audiences.append(aud)
                if len(events) >= limit:
                    break
    await api.audit_restricted_read(request, who, incident, events, audiences)
    return _json(
        {
            "incident": incident,
            "epoch": head.epoch,
            "head_seq": head.seq,
            "events": [shaped(ev, aud) for ev, aud in zip(events, audiences, strict=True)],
            "scanned_to_seq": position,
            "next_after_seq": position if position < head.seq else None,
        }
    )


# ---------------------------------------------------------------------- search


def _limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_HITS
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 4 or not 1 <= int(raw) <= MAX_HITS:
        raise _invalid("limit", f"must be an integer 1..{MAX_HITS}", "out_of_range")
    return int(raw)


def _encode(position: SearchPosition) -> str:
    raw = [position.before_seq, *(position.listed or ())]
    return base64.urlsafe_b64encode(orjson.dumps(raw)).decode().rstrip("=")


def _decode(raw: str, scoped: bool) -> SearchPosition:
    bad = _invalid("cursor", "must be a `next` value of the same search", "bad_cursor")
    try:
        value = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        raise bad from exc
    ints = isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**53 for v in value[:2]
    )
    if scoped and ints and len(value) == 1:
        return SearchPosition(None, value[0])
    if not scoped and ints and len(value) == 3 and isinstance(value[2], str):
        return SearchPosition((value[1], value[2]), value[0])
    raise bad


class SearchRoutes:
    def __init__(self, api: RestApi) -> None:
        self.api = api
        self.search = Search(api.log, api.projections, api.rules)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/v1/search", self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        api = self.api
        who = api.principal(request)
        q = request.query
        terms = parse_query(q.get("q"))
        limit = _limit(q.get("limit"))
        incident = q.get("incident")
        cursor = _decode(q["cursor"], incident is not None) if q.get("cursor") else None
        if incident is not None:
            head = await self._participating(who, incident)
            before = cursor.before_seq if cursor else None
            page = await self.search.in_incident(who, incident, head.seq, terms, before, limit)
        else:
            page = await self.search.across(who, terms, cursor, limit)
        by_incident: dict[str, list[Any]] = {}
        for hit in page.hits:
            by_incident.setdefault(hit.event.incident, []).append(hit)
        for inc, hits in by_incident.items():
            await api.audit_restricted_read(
                request, who, inc, [h.event for h in hits], [h.audience for h in hits], "search"
            )
        return _json(
            {
                "hits": [h.to_wire() for h in page.hits],
                "next": _encode(page.next) if page.next is not None else None,
            }
        )

    async def _participating(self, who: Principal, incident: str) -> LogHead:
        """The head of an incident the caller takes part in; one refusal otherwise."""
        if len(incident) > 200:
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such incident")
        if not await self.api.log.participates(incident, who.org_id) or not who.sees(incident):
            raise await refusal(self.api.log, incident, who.org_id, who.sees(incident))
        head = await self.api.log.head(incident)
        if head is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such incident")
        return head
