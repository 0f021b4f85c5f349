"""REST routes of sharing administration (SPEC section 9.4): agreements and labels.

Thin: authentication, body and address come from ``RestApi``; checks, audit
and storage from ``SharingAdmin``; reads from this node's ``SharingRules``
(what it shows is what the read paths apply).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from protocol.errors import ErrorCode, ProtocolError
from server.domain.model import Org, Principal
from server.domain.sharing import Agreement
from server.services.sharing_admin import READERS, SharingAdmin, can_read
from server.services.sharing_rules import SharingRules, now_ms

if TYPE_CHECKING:
    from server.transport.rest import RestApi


def agreement_wire(agreement: Agreement, at_ms: int) -> dict[str, Any]:
    """The agreement object, with ``in_force`` as of ``at_ms``."""
    return {**agreement.to_wire(), "in_force": agreement.in_force(at_ms)}


def org_wire(org: Org) -> dict[str, Any]:
    label = org.default_label.value
    return {
        "id": org.id,
        "name": org.name,
        "kind": org.kind,
        "default_label": label,
        "tags": list(org.tags),
    }


class AgreementsApi:
    def __init__(self, rest: RestApi, rules: SharingRules) -> None:
        self.rest, self.rules = rest, rules
        self.admin = SharingAdmin(rules, rest.directory, rest.accounts.audit)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/agreements", self.list),
            web.post("/api/v1/agreements", self.create),
            web.get("/api/v1/agreements/{id}", self.get),
            web.post("/api/v1/agreements/{id}/revoke", self.revoke),
            web.patch("/api/v1/orgs/{id}", self.patch_org),
        ]

    def _reader(self, request: web.Request) -> Principal:
        who = self.rest.principal(request)
        if who.role not in READERS:
            raise ProtocolError(ErrorCode.FORBIDDEN, "administrators and supervisors only")
        return who

    async def list(self, request: web.Request) -> web.Response:
        """The agreements the caller's organisation owns or receives, oldest first."""
        who = self._reader(request)
        at = now_ms()
        mine = sorted(
            (a for a in self.rules.all() if can_read(who, a)), key=lambda a: (a.valid_from_ms, a.id)
        )
        return self.rest_json({"agreements": [agreement_wire(a, at) for a in mine]})

    async def get(self, request: web.Request) -> web.Response:
        who = self._reader(request)
        agreement = self.rules.get(request.match_info["id"])
        if agreement is None or not can_read(who, agreement):
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such agreement")
        return self.rest_json(agreement_wire(agreement, now_ms()))

    async def create(self, request: web.Request) -> web.Response:
        who = self.rest.principal(request)
        body = await self.rest.body(request)
        agreement = await self.admin.create(who, who.user_id, body, self.rest.address(request))
        return self.rest_json(agreement_wire(agreement, now_ms()), 201)

    async def revoke(self, request: web.Request) -> web.Response:
        who = self.rest.principal(request)
        agreement, _ = await self.admin.revoke(
            who, who.user_id, request.match_info["id"], self.rest.address(request)
        )
        return self.rest_json(agreement_wire(agreement, now_ms()))

    async def patch_org(self, request: web.Request) -> web.Response:
        who = self.rest.principal(request)
        body = await self.rest.body(request)
        org = await self.admin.set_default_label(
            who, who.user_id, request.match_info["id"], body, self.rest.address(request)
        )
        return self.rest_json(org_wire(org))

    @staticmethod
    def rest_json(data: Any, status: int = 200) -> web.Response:
        """As ``rest.json_response`` (not imported: rest.py imports this module)."""
        return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")
