"""REST routes of API keys (admins of the key's organisation only).

POST   /api/v1/keys        {user, name, incidents?, commands?, coordinator?}
                           -> 201 {key: "lk_...", ...}: the only time the key is shown
GET    /api/v1/keys        -> {keys: [...]}   (the admin's organisation)
GET    /api/v1/keys/{id}   -> the key, with ``last_used``
DELETE /api/v1/keys/{id}   -> revoked: refused everywhere, its sockets close
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from protocol.fields import Fields
from server.services.api_keys import ApiKeys, KeyRequest

if TYPE_CHECKING:
    from server.transport.rest import RestApi


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


class KeyRoutes:
    def __init__(self, rest: RestApi, keys: ApiKeys) -> None:
        self.rest, self.keys = rest, keys

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/v1/keys", self.create),
            web.get("/api/v1/keys", self.list),
            web.get("/api/v1/keys/{id}", self.get),
            web.delete("/api/v1/keys/{id}", self.revoke),
        ]

    async def create(self, request: web.Request) -> web.Response:
        who = self.rest.admin(request)
        body = await self.rest.body(request)
        f = Fields(body, "", self.rest.limits)
        value = body if isinstance(body, dict) else {}
        ask = KeyRequest(
            username=f.req_str("user", max_chars=64),
            name=f.req_str("name", max_chars=100),
            incidents=value.get("incidents", "all"),
            commands=value.get("commands", "all"),
            coordinator=f.flag("coordinator"),
        )
        key, token = await self.keys.create(
            who.user_id, who.org_id, ask, self.rest.address(request)
        )
        return _json({**key.to_wire(), "key": token}, 201)

    async def list(self, request: web.Request) -> web.Response:
        who = self.rest.admin(request)
        return _json({"keys": [k.to_wire() for k in await self.keys.list(who.org_id)]})

    async def get(self, request: web.Request) -> web.Response:
        who = self.rest.admin(request)
        key = await self.keys.get(who.org_id, request.match_info["id"])
        return _json(key.to_wire())

    async def revoke(self, request: web.Request) -> web.Response:
        who = self.rest.admin(request)
        key = await self.keys.revoke(
            who.user_id, who.org_id, request.match_info["id"], self.rest.address(request)
        )
        return _json(key.to_wire())
