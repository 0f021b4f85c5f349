"""REST routes of outbound webhooks (admins of the subscription's organisation only).

POST   /api/v1/webhooks                  {url, incidents?, categories?, types?, description?}
                                         -> 201 {..., secret: "whsec_..."}: shown this once
GET    /api/v1/webhooks                  -> {webhooks: [...]}   (the admin's organisation)
GET    /api/v1/webhooks/{id}             -> the subscription, with its delivery state
DELETE /api/v1/webhooks/{id}             -> {id, deleted: true}
POST   /api/v1/webhooks/{id}/rotate      {window_s?} -> {..., secret}: both secrets sign
GET    /api/v1/webhooks/{id}/deliveries  ?limit= -> {deliveries: [...]} newest first
POST   /api/v1/webhooks/{id}/replay      {incident, from_seq} -> deliver again from there
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from protocol.errors import ErrorCode, ProtocolError
from server.services.webhooks import Webhooks, parse_request

if TYPE_CHECKING:
    from server.transport.rest import RestApi

#: Delivery log lines per page at most.
MAX_DELIVERIES = 500


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ProtocolError(ErrorCode.INVALID, "the body must be an object")
    return body


def _limit(raw: str | None) -> int:
    """``?limit=``: ASCII digits 1..MAX_DELIVERIES (100 when absent), as the timeline's."""
    if raw is None:
        return 100
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 4 or int(raw) > MAX_DELIVERIES:
        raise ProtocolError(
            ErrorCode.INVALID, f"limit must be an integer 0..{MAX_DELIVERIES}", {"field": "limit"}
        )
    return int(raw) or 1


class WebhookRoutes:
    def __init__(self, rest: RestApi, webhooks: Webhooks) -> None:
        self.rest, self.webhooks = rest, webhooks

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/v1/webhooks", self.create),
            web.get("/api/v1/webhooks", self.list),
            web.get("/api/v1/webhooks/{id}", self.get),
            web.delete("/api/v1/webhooks/{id}", self.delete),
            web.post("/api/v1/webhooks/{id}/rotate", self.rotate),
            web.get("/api/v1/webhooks/{id}/deliveries", self.deliveries),
            web.post("/api/v1/webhooks/{id}/replay", self.replay),
        ]

    async def create(self, request: web.Request) -> web.Response:
        who = self.rest.admin(request)
        ask = parse_request(await self.rest.body(request))
        sub, secret = await self.webhooks.create(
            who.user_id, who.org_id, ask, self.rest.address(request)
        )
        return _json({**sub.to_wire(), "secret": secret}, 201)

    async def list(self, request: web.Request) -> web.Response:
        who = self.rest.admin(request)
        subs = await self.webhooks.listed(who.org_id)
        return _json({"webhooks": [s.to_wire() for s in subs]})

    async def get(self, request: web.Request) -> web.Response:
        who = self.rest.admin(request)
        return _json((await self.webhooks.get(who.org_id, request.match_info["id"])).to_wire())

    async def delete(self, request: web.Request) -> web.Response:
        who = self.rest.admin(request)
        await self.webhooks.delete(
            who.user_id, who.org_id, request.match_info["id"], self.rest.address(request)
        )
        return _json({"id": request.match_info["id"], "deleted": True})

    async def rotate(self, request: web.Request) -> web.Response:
        who = self.rest.admin(request)
        body = _object(await self.rest.body(request) if request.can_read_body else {})
        window = body.get("window_s")
        if window is not None and (isinstance(window, bool) or not isinstance(window, int | float)):
            raise ProtocolError(
                ErrorCode.INVALID, "window_s must be a number", {"field": "window_s"}
            )
        sub, secret = await self.webhooks.rotate(
            who.user_id, who.org_id, request.match_info["id"], window, self.rest.address(request)
        )
        return _json({**sub.to_wire(), "secret": secret})

    async def deliveries(self, request: web.Request) -> web.Response:
        who = self.rest.admin(request)
        limit = _limit(request.query.get("limit"))
        sub_id = request.match_info["id"]
        records = await self.webhooks.deliveries(who.org_id, sub_id, limit)
        sub = await self.webhooks.get(who.org_id, sub_id)
        return _json(
            {
                "webhook": sub.id,
                "enabled": sub.state.enabled,
                "next_retry": sub.state.next_attempt_ms or None,
                "deliveries": [r.to_wire() for r in records],
            }
        )

    async def replay(self, request: web.Request) -> web.Response:
        who = self.rest.admin(request)
        body = _object(await self.rest.body(request))
        incident, from_seq = body.get("incident"), body.get("from_seq")
        if not isinstance(incident, str) or not 0 < len(incident) <= 128:
            raise ProtocolError(
                ErrorCode.INVALID, "incident must be an incident id", {"field": "incident"}
            )
        if isinstance(from_seq, bool) or not isinstance(from_seq, int):
            raise ProtocolError(
                ErrorCode.INVALID, "from_seq must be an integer", {"field": "from_seq"}
            )
        sub = await self.webhooks.replay(
            who.user_id,
            who.org_id,
            request.match_info["id"],
            incident,
            from_seq,
            self.rest.address(request),
        )
        return _json(sub.to_wire())
