"""REST routes for contact details (SPEC 18.6, "Contacts").

GET  /api/v1/incidents/{id}/contacts  participants: liaisons with phone numbers, bots
POST /api/v1/users/{id}/phone         admins: {"phone": "+44 ..." | null}, audited
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from protocol.errors import ProtocolError
from protocol.fields import Fields
from server.domain.audience import Reader
from server.services.contacts import PHONE_MAX, contacts, set_phone
from server.storage.audit import AuditEntry

if TYPE_CHECKING:
    from server.transport.rest import RestApi


def _json(data: Any) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


class ContactRoutes:
    def __init__(self, api: RestApi) -> None:
        self.api = api

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v1/incidents/{id}/contacts", self.incident_contacts),
            web.post("/api/v1/users/{id}/phone", self.set_phone),
        ]

    async def incident_contacts(self, request: web.Request) -> web.Response:
        api = self.api
        who = api.principal(request)
        state = await api.whole_state(request, who)
        reader = Reader(org=who.org_id, user=who.user_id)
        view = state.view(state.sight(reader, api.rules, int(time.time() * 1000)))
        return _json(contacts(view, api.directory.users))

    async def set_phone(self, request: web.Request) -> web.Response:
        api = self.api
        who = api.admin(request)
        f = Fields(await api.body(request), "", api.limits)
        phone = f.opt_str("phone", max_chars=PHONE_MAX)
        target = request.match_info["id"]
        audit = AuditEntry(who.user_id, "user.set_phone", target, "ok", api.address(request))
        try:
            user = await set_phone(api.directory, target, phone)
        except ProtocolError as err:
            await api.accounts.record(replace(audit, outcome=err.code.code))
            raise
        await api.accounts.record(audit)
        return _json(user.to_wire())
