"""REST routes of reports: KPIs over a date range, and an incident as of a moment.

GET /api/v1/kpis                  ?from=&to=&format=json|csv  (supervisors, admins)
GET /api/v1/incidents/{id}/view   ?at_seq= | ?at=             (participants)

Both read only what the caller may see (server/domain/kpis.py, as_of.py).
"""

from __future__ import annotations

import csv
import io
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from protocol.errors import ErrorCode, ProtocolError
from server.domain.as_of import view_as_of
from server.domain.audience import Reader
from server.domain.kpis import to_csv_rows
from server.domain.model import Role
from server.services.kpis import FactsCache, kpis_for, read_all
from server.storage.audit import AuditEntry

if TYPE_CHECKING:
    from server.transport.rest import RestApi

#: The range when ``from`` is not given: the 30 days before ``to``.
DEFAULT_DAYS = 30
_DAY_MS = 86_400_000
#: Who may read KPIs: they are figures about how organisations work together.
KPI_ROLES = frozenset({Role.SUPERVISOR, Role.ADMIN})


def parse_time(raw: str, field: str) -> int:
    """Milliseconds (ASCII digits) or ISO 8601 (a date, or a time; naive = UTC)."""
    if raw.isascii() and raw.isdigit() and len(raw) <= 16:
        return int(raw)
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ProtocolError(
            ErrorCode.INVALID,
            f"{field} must be milliseconds or an ISO 8601 date or time",
            {"field": field},
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return int(when.timestamp() * 1000)
    except (OverflowError, ValueError, OSError):
        raise ProtocolError(
            ErrorCode.INVALID, f"{field} is out of range", {"field": field}
        ) from None


def time_range(query: Any, now_ms: int) -> tuple[int, int]:
    to_ms = parse_time(query["to"], "to") if query.get("to") else now_ms
    from_ms = (
        parse_time(query["from"], "from") if query.get("from") else to_ms - DEFAULT_DAYS * _DAY_MS
    )
    if from_ms >= to_ms:
        raise ProtocolError(ErrorCode.INVALID, "from must be before to", {"field": "from"})
    return max(0, from_ms), to_ms


def _seq(raw: str) -> int:
    """``at_seq``: ASCII digits (the SPEC's integers), as the timeline's ``after_seq``."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 16 or int(raw) > 2**53:
        raise ProtocolError(
            ErrorCode.INVALID, "at_seq must be an integer 0..2^53", {"field": "at_seq"}
        )
    return int(raw)


def csv_body(kpis: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(("kpi", "group", "metric", "value"))
    writer.writerows(("" if v is None else v for v in row) for row in to_csv_rows(kpis))
    return out.getvalue()


class ReportRoutes:
    def __init__(self, rest: RestApi) -> None:
        self.rest = rest
        self.facts = FactsCache()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/kpis", self.kpis),
            web.get("/api/v1/incidents/{id}/view", self.view_at),
        ]

    async def kpis(self, request: web.Request) -> web.Response:
        who = self.rest.principal(request)
        if who.role not in KPI_ROLES or who.scope is not None:
            raise ProtocolError(ErrorCode.FORBIDDEN, "supervisors and administrators only")
        fmt = request.query.get("format", "json")
        if fmt not in ("json", "csv"):
            raise ProtocolError(
                ErrorCode.INVALID, "format must be json or csv", {"field": "format"}
            )
        now_ms = int(time.time() * 1000)
        from_ms, to_ms = time_range(request.query, now_ms)
        reader = Reader(org=who.org_id, user=who.user_id)
        exercises = request.query.get("include_exercises", "false")
        if exercises not in ("true", "false"):
            raise ProtocolError(
                ErrorCode.INVALID,
                "include_exercises must be true or false",
                {"field": "include_exercises"},
            )
        kpis = await kpis_for(
            self.rest.log,
            reader,
            self.rest.rules,
            from_ms,
            to_ms,
            now_ms,
            self.facts,
            include_exercises=exercises == "true",
        )
        detail = {"from": from_ms, "to": to_ms, "format": fmt, "incidents": kpis["incidents"]}
        await self.rest.accounts.record(
            AuditEntry(
                who.user_id, "kpis.read", who.org_id, "ok", self.rest.address(request), detail
            )
        )
        if fmt == "csv":
            return web.Response(
                text=csv_body(kpis),
                content_type="text/csv",
                headers={"Content-Disposition": 'attachment; filename="liaison-kpis.csv"'},
            )
        return web.Response(body=orjson.dumps(kpis), content_type="application/json")

    async def view_at(self, request: web.Request) -> web.Response:
        """The incident view at a seq or a time: what the replay shows there."""
        who = self.rest.principal(request)
        state = await self.rest.visible_state(request, who)
        q = request.query
        if ("at_seq" in q) == ("at" in q):
            raise ProtocolError(ErrorCode.INVALID, "give one of at_seq or at", {"field": "at_seq"})
        events = await read_all(self.rest.log, state.id)
        head = events[-1].seq if events else 0
        seq = _seq(q["at_seq"]) if "at_seq" in q else None
        if seq is not None and seq > head:
            raise ProtocolError(ErrorCode.OUT_OF_RANGE, detail={"head_seq": head})
        at_ms = parse_time(q["at"], "at") if "at" in q else None
        current = await self.rest.projections.at_least(state.id, head) or state
        view = view_as_of(
            current,
            events,
            Reader(org=who.org_id, user=who.user_id),
            self.rest.rules,
            int(time.time() * 1000),
            seq=seq,
            at_ms=at_ms,
        )
        return web.Response(body=orjson.dumps(view), content_type="application/json")
