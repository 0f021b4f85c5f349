"""REST routes of expertise and the capacity board (SPEC section 27)."""

from __future__ import annotations

import time
from dataclasses import replace

from aiohttp import web

from protocol.capacity import parse_change
from protocol.errors import ErrorCode, ProtocolError
from protocol.fields import Fields
from server.domain.audience import Reader
from server.domain.expertise import LANG_PREFIX, MAX_TAGS, VOCABULARY, check_tags
from server.services.capacity import MAX_WAIT_S, CapacityService
from server.services.suggestions import suggest
from server.storage.audit import AuditEntry
from server.transport.rest import RestApi, int_query, json_response
from server.transport.rest_agreements import org_wire

#: Suggestions one request returns at most.
MAX_SUGGESTIONS = 100


class CapacityRoutes:
    def __init__(self, rest: RestApi, capacity: CapacityService) -> None:
        self.rest, self.capacity = rest, capacity

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/expertise", self.vocabulary),
            web.put("/api/v1/orgs/{id}/tags", self.org_tags),
            web.put("/api/v1/users/{id}/tags", self.user_tags),
            web.get("/api/v1/incidents/{id}/suggestions", self.suggestions),
            web.get("/api/v1/capacity", self.board),
            web.get("/api/v1/capacity/changes", self.changes),
            web.get("/api/v1/orgs/{id}/capacity", self.history),
            web.post("/api/v1/orgs/{id}/capacity", self.publish),
        ]

    # ---------------------------------------------------------------- expertise

    async def vocabulary(self, request: web.Request) -> web.Response:
        self.rest.principal(request)
        body = {
            "vocabulary": list(VOCABULARY),
            "languages": LANG_PREFIX + "xx",
            "max_tags": MAX_TAGS,
        }
        return json_response(body)

    async def _tags(self, request: web.Request) -> tuple[AuditEntry, tuple[str, ...]]:
        who = self.rest.admin(request)
        f = Fields(await self.rest.body(request), "", self.rest.limits)
        raw = f.obj.get("tags")
        if not isinstance(raw, list):
            raise ProtocolError(ErrorCode.INVALID, "tags: must be a list", {"field": "tags"})
        target = request.match_info["id"]
        audit = AuditEntry(who.user_id, "", target, "ok", self.rest.address(request))
        try:
            tags = check_tags(raw)
        except ProtocolError as err:
            await self.rest.accounts.record(replace(audit, outcome=err.code.code))
            raise
        return replace(audit, detail={"tags": list(tags)}), tags

    async def org_tags(self, request: web.Request) -> web.Response:
        audit, tags = await self._tags(request)
        audit = replace(audit, action="org.tags")
        org = self.rest.directory.org(audit.target)
        if org is None:
            await self.rest.accounts.record(replace(audit, outcome=ErrorCode.NOT_FOUND.code))
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such organisation")
        org = await self.rest.directory.update_org(replace(org, tags=tags))
        await self.rest.accounts.record(audit)
        return json_response(org_wire(org))

    async def user_tags(self, request: web.Request) -> web.Response:
        audit, tags = await self._tags(request)
        audit = replace(audit, action="user.tags")
        user = self.rest.directory.users.get(audit.target)
        if user is None or user.deleted:
            await self.rest.accounts.record(replace(audit, outcome=ErrorCode.NOT_FOUND.code))
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such user")
        user = await self.rest.directory.update_user(replace(user, tags=tags))
        await self.rest.accounts.record(audit)
        return json_response(user.to_wire())

    async def suggestions(self, request: web.Request) -> web.Response:
        who = self.rest.principal(request)
        state = await self.rest.visible_state(request, who)
        q = request.query
        task = int_query(request, "task", 0, 2**53) or None if "task" in q else None
        needs = None
        if "needs" in q:
            raw = q["needs"]
            if len(raw) > 400:
                raise ProtocolError(ErrorCode.INVALID, "needs: too long", {"field": "needs"})
            needs = check_tags([n for n in raw.split(",") if n], "needs")
        limit = int_query(request, "limit", 20, MAX_SUGGESTIONS) or 1
        sight = state.sight(Reader(who.org_id, who.user_id), self.rest.rules, _now_ms())
        online = await self.rest.presence.online(state.id)
        body = suggest(state, who, sight, self.rest.directory, online, task, needs, limit)
        return json_response(body)

    # ----------------------------------------------------------------- capacity

    async def board(self, request: web.Request) -> web.Response:
        who = self.rest.principal(request)
        return json_response(await self.capacity.board(who))

    async def changes(self, request: web.Request) -> web.Response:
        who = self.rest.principal(request)
        after = int_query(request, "after", 0, 2**53)
        wait_s = int_query(request, "wait_s", 0, MAX_WAIT_S)
        return json_response(await self.capacity.changes(who, after, wait_s))

    async def history(self, request: web.Request) -> web.Response:
        who = self.rest.principal(request)
        after = int_query(request, "after_seq", 0, 2**53)
        limit = int_query(request, "limit", 200, 1000) or 1
        body = await self.capacity.history(who, request.match_info["id"], after, limit)
        return json_response(body)

    async def publish(self, request: web.Request) -> web.Response:
        who = self.rest.principal(request)
        f = Fields(await self.rest.body(request), "", self.rest.limits)
        client_id, items = f.ident("id"), parse_change(f)
        entry, duplicate = await self.capacity.publish(
            who, request.match_info["id"], client_id, items
        )
        return json_response({**entry.to_wire(), "duplicate": duplicate})


def _now_ms() -> int:
    return int(time.time() * 1000)
