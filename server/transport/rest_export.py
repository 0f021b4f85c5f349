"""REST routes of exports, signed heads and the anchor log (SPEC section 23).

GET /api/v1/incidents/{id}/export  ?format=jsonl|csv|html|pdf  -> the export, streamed
GET /api/v1/export                 ?format=jsonl|csv&from=ms&to=ms -> every incident created then
GET /api/v1/incidents/{id}/head    -> the signed chain head now (also anchored)
GET /api/v1/node-key               -> {algorithm, public_key}: what auditors pin (no login)
GET /api/v1/anchors                ?after_seq=&limit= -> {records, next_after_seq}

Exports answer ``X-Liaison-Export-Events`` (the events to expect, for a
progress bar) before the body, which is written as the log pages are read.
Each export is one audit record (``incident.export``) once it ends: who,
what, the format, how many events, and how it ended.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from protocol.errors import ErrorCode, ProtocolError
from server.domain.model import Principal, Role
from server.services.anchors import ANCHOR_ACTION, Anchorer
from server.services.export import FORMATS, RANGE_FORMATS, Exporter, Scope
from server.services.export_formats import csv_chunks, jsonl
from server.services.export_report import html_chunks, pdf_bytes

if TYPE_CHECKING:
    from server.transport.rest import RestApi

log = logging.getLogger(__name__)

#: (request, principal, format, address) -> the streamed export of an archived incident.
ArchivedExport = Callable[[web.Request, Principal, str, str], Awaitable[web.StreamResponse]]

CONTENT_TYPES = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
}


EVENTS_HEADER = "X-Liaison-Export-Events"
#: A PDF up to this size is kept in memory while it is drawn; beyond, on disk.
PDF_SPOOL_BYTES = 8 * 1024 * 1024
CHUNK = 64 * 1024
MAX_ANCHORS_PAGE = 1000


async def exports_ctx(anchorer: Anchorer, _: web.Application) -> AsyncIterator[None]:
    """The node key loaded and the anchor sweep running while the app runs."""
    await anchorer.start()
    try:
        yield
    finally:
        await anchorer.close()


def _json(data: Any) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


def _int(request: web.Request, name: str, default: int, high: int) -> int:
    """An ASCII-digits query integer 0..high, as the timeline reads its own (rest.py)."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 16 or int(raw) > high:
        raise ProtocolError(
            ErrorCode.INVALID, f"{name} must be an integer 0..{high}", {"field": name}
        )
    return int(raw)


def _format(request: web.Request, allowed: tuple[str, ...]) -> str:
    fmt = request.query.get("format", "jsonl")
    if fmt not in allowed:
        raise ProtocolError(
            ErrorCode.INVALID, f"format must be one of {', '.join(allowed)}", {"field": "format"}
        )
    return fmt


class ExportRoutes:
    def __init__(self, rest: RestApi, exporter: Exporter, anchorer: Anchorer) -> None:
        self.rest, self.exporter, self.anchorer = rest, exporter, anchorer
        #: Exports of archived incidents (rest_retention.ArchivedExports.export).
        self.archived: ArchivedExport | None = None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/incidents/{id}/export", self.export_incident),
            web.get("/api/v1/export", self.export_range),
            web.get("/api/v1/incidents/{id}/head", self.head),
            web.get("/api/v1/node-key", self.node_key),
            web.get("/api/v1/anchors", self.anchors),
        ]

    # ------------------------------------------------------------- exports

    async def export_incident(self, request: web.Request) -> web.StreamResponse:
        who = self.rest.principal(request)
        fmt = _format(request, FORMATS)
        try:
            scope = await self.exporter.open(who, request.match_info["id"])
        except ProtocolError as exc:
            if exc.code is ErrorCode.ARCHIVED and self.archived is not None:
                return await self.archived(request, who, fmt, self.rest.address(request))
            raise

        async def scopes() -> AsyncIterator[Scope]:
            yield scope

        name = f"incident-{scope.incident}.{fmt}"
        return await self._stream(
            request, who, fmt, scope.incident, name, scope.head_seq, scopes(), scope
        )

    async def export_range(self, request: web.Request) -> web.StreamResponse:
        who = self.rest.principal(request)
        fmt = _format(request, RANGE_FORMATS)
        start = _int(request, "from", 0, 2**53)
        end = _int(request, "to", 2**53, 2**53)
        if end <= start:
            raise ProtocolError(ErrorCode.INVALID, "to must be after from", {"field": "to"})
        incidents = await self.exporter.in_range(who, start, end)
        total = 0
        for incident in incidents:
            head = await self.rest.log.head(incident)
            total += head.seq if head else 0

        async def scopes() -> AsyncIterator[Scope]:
            for incident in incidents:
                with contextlib.suppress(ProtocolError):  # left since the listing: skipped
                    yield await self.exporter.open(who, incident)

        name = f"incidents-{start}-{end}.{fmt}"
        return await self._stream(request, who, fmt, f"range:{start}-{end}", name, total, scopes())

    async def _stream(
        self,
        request: web.Request,
        who: Principal,
        fmt: str,
        target: str,
        filename: str,
        total: int,
        scopes: AsyncIterator[Scope],
        single: Scope | None = None,
    ) -> web.StreamResponse:
        seen: list[Scope] = []

        async def tracked() -> AsyncIterator[Scope]:
            async for scope in scopes:
                seen.append(scope)
                yield scope

        response = web.StreamResponse(
            headers={
                "Content-Type": CONTENT_TYPES[fmt],
                "Content-Disposition": f'attachment; filename="{filename}"',
                EVENTS_HEADER: str(total),
                "Cache-Control": "no-store",
            }
        )
        outcome = "aborted"
        started = time.monotonic()
        try:
            if fmt == "pdf":
                assert single is not None
                seen.append(single)
                with tempfile.SpooledTemporaryFile(PDF_SPOOL_BYTES) as spool:
                    await pdf_bytes(self.exporter, single, spool)  # type: ignore[arg-type]
                    await response.prepare(request)
                    spool.seek(0)
                    while chunk := spool.read(CHUNK):
                        await response.write(chunk)
            else:
                await response.prepare(request)
                async for chunk in self._chunks(fmt, tracked(), single):
                    await response.write(chunk)
            await response.write_eof()
            outcome = "ok"
        except ProtocolError as exc:
            outcome = exc.code.code
            if not response.prepared:
                raise
        except ConnectionResetError:  # the client went away mid-stream: audited as aborted
            log.info("export of %s to %s aborted by the client", target, who.user_id)
        finally:
            detail = {
                "format": fmt,
                "incidents": [s.incident for s in seen][:100],
                "events": sum(s.count for s in seen),
                "placeholders": sum(s.placeholders for s in seen),
                "restricted": sum(s.restricted_seen for s in seen),
                "seconds": round(time.monotonic() - started, 3),
            }
            await self.exporter.audit(who, self.rest.address(request), target, detail, outcome)
        return response

    def _chunks(
        self, fmt: str, scopes: AsyncIterator[Scope], single: Scope | None
    ) -> AsyncIterator[bytes]:
        if fmt == "jsonl":
            return jsonl(self.exporter, scopes)
        if fmt == "csv":
            return csv_chunks(self.exporter, scopes)
        assert single is not None
        return self._html(scopes, single)

    async def _html(self, scopes: AsyncIterator[Scope], single: Scope) -> AsyncIterator[bytes]:
        async for _ in scopes:  # registers the scope with the audit tracking
            pass
        async for chunk in html_chunks(self.exporter, single):
            yield chunk

    # ------------------------------------------------------- heads, anchors

    async def head(self, request: web.Request) -> web.Response:
        """The signed head now, for a participant; anchored, so the auditor's copy matches."""
        who = self.rest.principal(request)
        scope = await self.exporter.open(who, request.match_info["id"])
        found = await self.anchorer.head_of(scope.incident)
        if found is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such incident")
        signed, _ = found
        await self.anchorer.anchor(signed, "request")
        return _json(signed.to_wire())

    async def node_key(self, request: web.Request) -> web.Response:
        return _json({"algorithm": "Ed25519", "public_key": self.anchorer.signer.public_hex})

    async def anchors(self, request: web.Request) -> web.Response:
        """A page of the anchor log: all of it for admins and auditors, else one's incidents'.

        A filtered page has gaps in ``seq``; it still verifies per record (each
        record's signature). Only the whole log checks as a chain.
        """
        who = self.rest.principal(request)
        after = _int(request, "after_seq", 0, 2**53)
        limit = _int(request, "limit", 200, MAX_ANCHORS_PAGE) or 1
        records = await self.anchorer.anchors.read(after, limit)
        everything = who.role in (Role.ADMIN, Role.AUDITOR)
        shown = []
        allowed: dict[str, bool] = {}
        for record in records:
            if record.action != ANCHOR_ACTION:
                continue
            if not everything:
                if record.target not in allowed:
                    allowed[record.target] = who.sees(
                        record.target
                    ) and await self.rest.log.participates(record.target, who.org_id)
                if not allowed[record.target]:
                    continue
            shown.append(record.to_wire())
        nxt = records[-1].seq if len(records) == limit else None
        return _json({"records": shown, "next_after_seq": nxt})
