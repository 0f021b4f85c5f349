"""REST routes of retention (SPEC section 25): policies, legal holds, runs, archives.

GET    /api/v1/retention/policies           -> {policies}                      admin
PUT    /api/v1/retention/policies/{id}      {archive_after_days, ...} -> policy admin
DELETE /api/v1/retention/policies/{id}      -> {ok}                            admin
GET    /api/v1/retention/holds              -> {holds}                         admin
PUT    /api/v1/retention/holds/{id}         {reason} -> hold                   admin
DELETE /api/v1/retention/holds/{id}         -> {ok}                            admin
POST   /api/v1/retention/run?dry_run=1      -> {archived, purged, skipped, failed} admin
GET    /api/v1/retention/archived?after=&limit=&state= -> {archived, next}    admin, supervisor

``ArchivedExports.export`` answers ``GET /api/v1/incidents/{id}/export`` for an
archived incident (rest_export.py hands it over): the archive file, shaped
for the reader, for a supervisor or admin of a participating organisation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import TYPE_CHECKING

from aiohttp import web

from protocol.errors import ErrorCode, ProtocolError
from server.backends import node_id
from server.domain.audience import Reader
from server.domain.model import Principal, Role
from server.domain.sharing import AgreementsView
from server.services.archive_file import Shaped, shaped_export
from server.services.archived import archived_for
from server.services.export import Exporter
from server.services.retention import Retention, require_admin
from server.services.retention_job import RetentionJob
from server.transport.rest import int_query, json_response

if TYPE_CHECKING:
    from server.backends import Backends
    from server.services.anchors import Anchorer
    from server.services.projections import Projections
    from server.services.retention import Record
    from server.settings import Settings
    from server.transport.rest import RestApi
    from server.transport.rest_export import ExportRoutes

MAX_PAGE = 500
STATES = ("archived", "purged")


class RetentionRoutes:
    def __init__(self, rest: RestApi, retention: Retention) -> None:
        self.rest, self.retention = rest, retention

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/retention/policies", self.policies),
            web.put("/api/v1/retention/policies/{id}", self.put_policy),
            web.delete("/api/v1/retention/policies/{id}", self.delete_policy),
            web.get("/api/v1/retention/holds", self.holds),
            web.put("/api/v1/retention/holds/{id}", self.set_hold),
            web.delete("/api/v1/retention/holds/{id}", self.clear_hold),
            web.post("/api/v1/retention/run", self.run),
            web.get("/api/v1/retention/archived", self.archived),
        ]

    async def policies(self, request: web.Request) -> web.Response:
        require_admin(self.rest.principal(request))
        policies = await self.retention.policies()
        return json_response({"policies": [p.to_wire() for p in policies]})

    async def put_policy(self, request: web.Request) -> web.Response:
        who = self.rest.principal(request)
        body = await self.rest.body(request)
        policy = await self.retention.put_policy(
            who, request.match_info["id"], body, self.rest.address(request)
        )
        return json_response(policy.to_wire())

    async def delete_policy(self, request: web.Request) -> web.Response:
        who = self.rest.principal(request)
        await self.retention.delete_policy(
            who, request.match_info["id"], self.rest.address(request)
        )
        return json_response({"ok": True})

    async def holds(self, request: web.Request) -> web.Response:
        require_admin(self.rest.principal(request))
        return json_response({"holds": list((await self.retention.holds()).values())})

    async def set_hold(self, request: web.Request) -> web.Response:
        who = self.rest.principal(request)
        body = await self.rest.body(request)
        hold = await self.retention.set_hold(
            who, request.match_info["id"], body, self.rest.address(request)
        )
        return json_response(hold)

    async def clear_hold(self, request: web.Request) -> web.Response:
        who = self.rest.principal(request)
        await self.retention.clear_hold(who, request.match_info["id"], self.rest.address(request))
        return json_response({"ok": True})

    async def run(self, request: web.Request) -> web.Response:
        who = self.rest.principal(request)
        require_admin(who)
        dry = request.query.get("dry_run", "0")
        if dry not in ("0", "1", "true", "false"):
            raise ProtocolError(ErrorCode.INVALID, "dry_run is 1 or 0", {"field": "dry_run"})
        report = await self.retention.run(
            who.user_id, dry in ("1", "true"), self.rest.address(request)
        )
        return json_response(report.to_wire())

    async def archived(self, request: web.Request) -> web.Response:
        who = self.rest.principal(request)
        state = request.query.get("state")
        if state is not None and state not in STATES:
            raise ProtocolError(
                ErrorCode.INVALID, "state is archived or purged", {"field": "state"}
            )
        after = request.query.get("after", "")
        if len(after) > 200:
            raise ProtocolError(ErrorCode.INVALID, "after is an incident id", {"field": "after"})
        limit = int_query(request, "limit", 100, MAX_PAGE) or 1
        page = await self.retention.listed(who, after, limit, state)
        nxt = str(page[-1]["incident"]) if len(page) == limit else None
        return json_response({"archived": page, "next": nxt})


class ArchivedExports:
    """Exports of archived incidents, from their archive files (audited like any export)."""

    def __init__(self, retention: Retention, exporter: Exporter, rules: AgreementsView) -> None:
        self.retention, self.exporter, self.rules = retention, exporter, rules

    async def export(
        self, request: web.Request, who: Principal, fmt: str, address: str
    ) -> web.StreamResponse:
        incident = request.match_info["id"]
        tombstone = await archived_for(self.retention.log, incident, who.org_id)
        if tombstone is None or not who.sees(incident):
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such incident")
        if who.role not in (Role.SUPERVISOR, Role.ADMIN):
            raise ProtocolError(
                ErrorCode.FORBIDDEN, "supervisors and administrators export archived incidents"
            )
        if tombstone.get("state") == "purged":
            raise ProtocolError(
                ErrorCode.ARCHIVED, "the archive of this incident was purged", {"purged": True}
            )
        if fmt != "jsonl":
            raise ProtocolError(
                ErrorCode.INVALID, "an archived incident is exported as jsonl", {"field": "format"}
            )
        path = self.retention.archive_path(tombstone)
        if not await asyncio.to_thread(path.exists):
            raise ProtocolError(
                ErrorCode.UNAVAILABLE, "the archive file is not in the archive directory"
            )
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/x-ndjson",
                "Content-Disposition": f'attachment; filename="incident-{incident}.jsonl"',
                "X-Liaison-Export-Events": str(tombstone["seq"]),
                "Cache-Control": "no-store",
            }
        )
        counts, outcome, started = Shaped(), "aborted", time.monotonic()
        reader = Reader(org=who.org_id, user=who.user_id)
        try:
            await response.prepare(request)
            async for chunk in shaped_export(path, tombstone, reader, self.rules, counts):
                await response.write(chunk)
            await response.write_eof()
            outcome = "ok"
        except ConnectionResetError:
            pass  # the client went away: audited as aborted
        finally:
            detail = {
                "format": fmt,
                "archived": True,
                "file": tombstone["file"],
                "incidents": [incident],
                "events": counts.events,
                "placeholders": counts.placeholders,
                "seconds": round(time.monotonic() - started, 3),
            }
            await self.exporter.audit(who, address, incident, detail, outcome)
        return response


def install_retention(
    app: web.Application,
    settings: Settings,
    backends: Backends,
    rest: RestApi,
    projections: Projections,
    anchorer: Anchorer,
    exports: ExportRoutes,
    rules: AgreementsView,
    record: Record,
) -> Retention:
    """Retention's service, routes, archived exports and job (after the anchorer starts)."""
    assert backends.retention is not None
    retention = Retention(
        log=backends.log,
        store=backends.retention,
        projections=projections,
        anchorer=anchorer,
        record=record,
        archive_dir=settings.archive_path,
        orgs=lambda: list(rest.directory.orgs),
    )
    app.add_routes(RetentionRoutes(rest, retention).routes())
    exports.archived = ArchivedExports(retention, exports.exporter, rules).export
    node = node_id(settings) if settings.redis_url else "embedded"
    job = RetentionJob(
        retention, backends.leases, node, settings.retention_poll_s, settings.retention_lease_s
    )
    app.cleanup_ctx.append(partial(_job_ctx, job))
    return retention


async def _job_ctx(job: RetentionJob, _: web.Application) -> AsyncIterator[None]:
    await job.start()
    try:
        yield
    finally:
        await job.close()
