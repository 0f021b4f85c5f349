"""REST routes of Web Push (SPEC section 26): the key, subscribe, unsubscribe.

GET    /api/v1/push/key                      -> {public_key}: the VAPID key to subscribe with
POST   /api/v1/push/subscriptions            {endpoint, keys: {p256dh, auth}} -> 201
DELETE /api/v1/push/subscriptions?endpoint=  -> {deleted}: only one's own
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from protocol.errors import ErrorCode, ProtocolError
from server.services.push_runtime import PushRuntime

if TYPE_CHECKING:
    from server.transport.rest import RestApi


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


class PushRoutes:
    def __init__(self, rest: RestApi, push: PushRuntime) -> None:
        self.rest, self.push = rest, push

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/push/key", self.key),
            web.post("/api/v1/push/subscriptions", self.subscribe),
            web.delete("/api/v1/push/subscriptions", self.unsubscribe),
        ]

    async def key(self, request: web.Request) -> web.Response:
        self.rest.principal(request)
        if not self.push.public_key:
            raise ProtocolError(ErrorCode.UNAVAILABLE, "push is starting; retry")
        return _json({"public_key": self.push.public_key})

    async def subscribe(self, request: web.Request) -> web.Response:
        who, claims = self.rest.session(request)
        if claims.key:
            raise ProtocolError(ErrorCode.FORBIDDEN, "push subscriptions are for people's browsers")
        sub = await self.push.subscribe(who, claims, await self.rest.body(request))
        return _json({"endpoint": sub.endpoint, "expires": sub.expires_ms}, 201)

    async def unsubscribe(self, request: web.Request) -> web.Response:
        who = self.rest.principal(request)
        endpoint = request.query.get("endpoint", "")
        if not endpoint:
            raise ProtocolError(ErrorCode.INVALID, "endpoint is required", {"field": "endpoint"})
        return _json({"deleted": await self.push.unsubscribe(who, endpoint)})
