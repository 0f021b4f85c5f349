"""REST routes of the public-safety standards (protocol/INTEGRATIONS.md).

POST /api/v1/integrations/cap        CAP 1.2 <alert> XML -> incident created/updated/closed
GET  /api/v1/incidents/{id}/cap      -> the incident as a CAP 1.2 <alert> (application/xml)
GET  /api/v1/incidents/{id}/eido     -> the incident as a NENA EIDO (application/json)
POST /api/v1/incidents/{id}/cot      CoT <event> XML -> the caller's responder.position
GET  /api/v1/incidents/{id}/cot      -> <events> of CoT events, one per visible position

Thin: the mappings are server/integrations/; writes go through the same
CommandService as every other client, reads through the reader's view
(``IncidentState.view`` with its ``Sight``), as GET /incidents/{id} does.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from protocol.errors import ErrorCode, ProtocolError
from server.domain.audience import Reader
from server.domain.decide import incident_id_for
from server.domain.model import Principal
from server.integrations import cap, cot, eido
from server.storage.audit import AuditEntry

if TYPE_CHECKING:
    from server.transport.rest import RestApi

#: Bytes a CAP alert or CoT event may have: a CAP alert with a detailed
#: polygon runs to tens of KiB, well past the JSON frame limit.
MAX_XML_BYTES = 256 * 1024
XML = "application/xml"
#: Seconds a client may take to send the body, as for JSON bodies.
BODY_TIMEOUT_S = 15.0
_HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}$")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _xml(body: bytes) -> web.Response:
    return web.Response(body=body, content_type=XML, charset="utf-8")


class StandardsRoutes:
    def __init__(self, rest: RestApi) -> None:
        self.rest = rest

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/v1/integrations/cap", self.cap_import),
            web.get("/api/v1/incidents/{id}/cap", self.cap_export),
            web.get("/api/v1/incidents/{id}/eido", self.eido_export),
            web.post("/api/v1/incidents/{id}/cot", self.cot_import),
            web.get("/api/v1/incidents/{id}/cot", self.cot_export),
        ]

    # ------------------------------------------------------------ plumbing

    async def _raw(self, request: web.Request) -> bytes:
        if request.content_length is not None and request.content_length > MAX_XML_BYTES:
            raise ProtocolError(ErrorCode.TOO_LARGE, detail={"limit": MAX_XML_BYTES})
        chunks, size = [], 0
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                async for chunk in request.content.iter_any():
                    size += len(chunk)
                    if size > MAX_XML_BYTES:
                        raise ProtocolError(ErrorCode.TOO_LARGE, detail={"limit": MAX_XML_BYTES})
                    chunks.append(chunk)
        except TimeoutError as exc:
            raise ProtocolError(ErrorCode.MALFORMED, "the body did not arrive in time") from exc
        if not size:
            raise ProtocolError(ErrorCode.MALFORMED, "an XML body is required")
        return b"".join(chunks)

    @staticmethod
    def _host(request: web.Request) -> str:
        """This server's name for the exports' sender/issuer fields."""
        host = (request.host or "").rsplit(":", 1)[0]
        return host if _HOST.match(host) else "liaison.invalid"

    async def _view(self, request: web.Request, who: Principal) -> dict[str, object]:
        """The incident as ``who`` may see it: exactly GET /incidents/{id}'s rules."""
        state = await self.rest.whole_state(request, who)
        reader = Reader(org=who.org_id, user=who.user_id)
        view: dict[str, object] = state.view(state.sight(reader, self.rest.rules, _now_ms()))
        return view

    async def _audit_export(self, request: web.Request, who: Principal, fmt: str) -> None:
        await self.rest.accounts.record(
            AuditEntry(
                who.user_id,
                "incident.export",
                request.match_info["id"],
                "ok",
                self.rest.address(request),
                {"format": fmt},
            )
        )

    # ----------------------------------------------------------------- CAP

    async def cap_import(self, request: web.Request) -> web.Response:
        who = self.rest.principal(request)
        # In a thread: validation takes milliseconds, and the first one loads
        # the XSD (about a second), which must not stall live delivery.
        alert = await asyncio.to_thread(cap.parse_alert, await self._raw(request))
        if alert.msg_type not in ("Alert", "Update", "Cancel"):
            raise ProtocolError(
                ErrorCode.INVALID,
                f"CAP {alert.msg_type} messages are not imported",
                {"field": "msgType"},
            )
        if alert.status not in ("Actual", "Exercise", "Test"):
            raise ProtocolError(
                ErrorCode.INVALID,
                f"CAP {alert.status} messages are not imported",
                {"field": "status"},
            )
        limits = self.rest.limits
        target = await self._referenced(who, alert) if alert.msg_type != "Alert" else None
        if alert.msg_type == "Cancel":
            if target is None:
                raise ProtocolError(
                    ErrorCode.NOT_FOUND, "the Cancel references no incident this caller imported"
                )
            action, command = "cancelled", cap.cancel_command(alert, target, limits)
        elif target is not None:
            action, command = "updated", cap.update_command(alert, target, limits)
        else:
            action, command = "created", cap.create_command(alert, limits)
        ack = await self.rest.commands.execute(who, command)
        status = 201 if action == "created" and not ack["duplicate"] else 200
        answer = {"ok": True, "action": action, "cap": alert.client_id, **ack}
        return web.Response(
            body=orjson.dumps(answer), status=status, content_type="application/json"
        )

    async def _referenced(self, who: Principal, alert: cap.CapAlert) -> str | None:
        """The incident an Update or Cancel refers to: one that a message it
        references created for this caller (the latest reference first)."""
        for ref in reversed(alert.references):
            incident = incident_id_for(who.user_id, cap.client_id(ref.sender, ref.identifier))
            if who.sees(incident) and await self.rest.log.participates(incident, who.org_id):
                return incident
        return None

    async def cap_export(self, request: web.Request) -> web.Response:
        who = self.rest.principal(request)
        view = await self._view(request, who)
        body = cap.to_cap(view, sender=f"liaison@{self._host(request)}", now_ms=_now_ms())
        await self._audit_export(request, who, "cap")
        return _xml(body)

    # ---------------------------------------------------------------- EIDO

    async def eido_export(self, request: web.Request) -> web.Response:
        who = self.rest.principal(request)
        view = await self._view(request, who)
        kinds = {o.id: o.kind for o in self.rest.directory.orgs.values()}
        document = eido.to_eido(view, issuer=self._host(request), org_kinds=kinds)
        await self._audit_export(request, who, "eido")
        return web.Response(body=orjson.dumps(document), content_type="application/json")

    # ----------------------------------------------------------------- CoT

    async def cot_import(self, request: web.Request) -> web.Response:
        who = self.rest.principal(request)
        event = cot.parse_event(await self._raw(request))
        command = cot.position_command(event, request.match_info["id"], _now_ms(), self.rest.limits)
        ack = await self.rest.commands.execute(who, command)
        return web.Response(body=orjson.dumps({"ok": True, **ack}), content_type="application/json")

    async def cot_export(self, request: web.Request) -> web.Response:
        who = self.rest.principal(request)
        return _xml(cot.to_cot(await self._view(request, who)))
