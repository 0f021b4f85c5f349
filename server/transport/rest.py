"""JSON REST API: login, reads (incidents, timeline), writes for bots, admin.

Every write goes through the same CommandService as Socket.IO; every read is
filtered by the caller's organisation. Errors are ``{"error": {code, message,
retryable}}`` with the HTTP status of ``STATUS``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web

from protocol import v1
from protocol.codec import check_decoded
from protocol.errors import ErrorCode, ProtocolError
from protocol.external_ref import check_ref
from protocol.fields import Fields
from protocol.limits import Limits
from server.auth import AccessClaims
from server.domain.audience import Audience, Reader, event_meta
from server.domain.model import Org, Principal, Role
from server.domain.presence_view import visible_online
from server.domain.sharing import AgreementsView
from server.errors import StorageUnavailable
from server.fanout.base import Presence
from server.services.accounts import Accounts
from server.services.admin import create_user
from server.services.api_keys import ApiKeys
from server.services.archived import refusal
from server.services.commands import CommandService
from server.services.envelope import shaped
from server.services.projections import Projections
from server.services.sharing_rules import SharingRules
from server.storage.audit import AuditEntry
from server.storage.base import EventLog, IncidentQuery, IndexCursor
from server.storage.directory import Directory, DirectoryConflict
from server.transport.http_log import peer_left
from server.transport.login_guard import LoginGuard
from server.transport.rest_agreements import AgreementsApi, org_wire
from server.transport.rest_contacts import ContactRoutes
from server.transport.rest_keys import KeyRoutes
from server.transport.rest_openapi import openapi_routes
from server.transport.rest_reports import ReportRoutes
from server.transport.rest_search import SearchRoutes, filtered_timeline, timeline_filter

STATUS = {
    ErrorCode.MALFORMED: 400,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.INVALID: 400,
    ErrorCode.UNKNOWN_TYPE: 400,
    ErrorCode.UNSUPPORTED_VERSION: 400,
    ErrorCode.UNSUPPORTED_ENCODING: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.OUT_OF_RANGE: 416,
    ErrorCode.RESYNC_REQUIRED: 409,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.SLOW_CONSUMER: 503,
    ErrorCode.INTERNAL: 500,
    ErrorCode.SHUTDOWN: 503,
    ErrorCode.OUTCOME_UNKNOWN: 503,
    ErrorCode.ARCHIVED: 410,
}

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def error_response(err: ProtocolError) -> web.Response:
    response = json_response({"error": err.to_wire()}, STATUS[err.code])
    if err.code is ErrorCode.RATE_LIMITED and err.detail and "retry_after" in err.detail:
        response.headers["Retry-After"] = str(err.detail["retry_after"])
    return response


def keys_middleware(accounts: Accounts) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Before a REST handler checks its caller (synchronously): an API key created
    on another node or by the CLI a moment ago is read first (``Accounts.prepare``).

    Not a coroutine: any other request is handed on as it is, so this leaves no
    frame in the handler chain a WebSocket keeps for its whole life."""

    async def learn_then_handle(request: web.Request, handler: Handler, key: str) -> Any:
        await accounts.prepare(key)
        return await handler(request)

    @web.middleware
    def learn_keys(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer lk_") and request.path.startswith("/api/"):
            return learn_then_handle(request, handler, header[7:])
        return handler(request)

    return learn_keys


@web.middleware
def errors_middleware(request: web.Request, handler: Handler) -> Awaitable[web.StreamResponse]:
    """Typed JSON errors for the REST API; Socket.IO and static files are left alone.

    Not a coroutine: a Socket.IO request is handed on as it is (the seam's
    request guard answers one whose peer left), so a WebSocket's handler
    chain, alive as long as the connection, holds no frame of this."""
    if request.path.startswith("/api/"):
        return _typed_errors(request, handler)
    if request.path.startswith("/socket.io/"):
        return handler(request)
    return _peer_may_leave(request, handler)


async def _peer_may_leave(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ConnectionResetError:
        return peer_left(request)


async def _typed_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ProtocolError as err:
        return error_response(err)
    except web.HTTPRequestEntityTooLarge:
        return error_response(ProtocolError(ErrorCode.TOO_LARGE))
    except web.HTTPNotFound:
        return error_response(ProtocolError(ErrorCode.NOT_FOUND, "no such endpoint"))
    except web.HTTPMethodNotAllowed:
        return error_response(ProtocolError(ErrorCode.NOT_FOUND, "method not allowed here"))
    except web.HTTPException:
        raise
    except StorageUnavailable as exc:  # a read path: nothing was written
        log.warning("%s %s: storage unavailable: %s", request.method, request.path, exc)
        return error_response(ProtocolError(ErrorCode.UNAVAILABLE))
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(ProtocolError(ErrorCode.INTERNAL))


#: Seconds a client may take to send a request body (at most 1 MiB): a body
#: trickled byte by byte must not hold a handler for ever.
BODY_TIMEOUT_S = 15.0

ROLES = tuple(r.value for r in Role)

#: Incidents per page of GET /api/v1/incidents when no ``limit`` is given.
LIST_PAGE = 200


def encode_cursor(position: IndexCursor) -> str:
    """An opaque ``next`` cursor for the incident list."""
    return base64.urlsafe_b64encode(orjson.dumps(list(position))).decode().rstrip("=")


def decode_cursor(raw: str) -> IndexCursor:
    try:
        value = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        updated, incident = value
        if isinstance(updated, int) and not isinstance(updated, bool) and isinstance(incident, str):
            return updated, incident
    except (ValueError, TypeError, orjson.JSONDecodeError):
        pass
    raise ProtocolError(ErrorCode.INVALID, "cursor must be a `next` value from this endpoint")


def int_query(request: web.Request, name: str, default: int, high: int) -> int:
    """``?name=`` as an integer 0..high (``default`` when absent), else INVALID."""
    raw = request.query.get(name)
    if raw is None:
        return default
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses,
    # and int() accepts "١٢", "1_0" and " 1", which the SPEC does not.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 16 or int(raw) > high:
        raise ProtocolError(
            ErrorCode.INVALID, f"{name} must be an integer 0..{high}", {"field": name}
        )
    return int(raw)


def _reader(who: Principal) -> Reader:
    return Reader(org=who.org_id, user=who.user_id)


def _strict(body: dict[str, Any]) -> bool:
    return body.get("tlp") in ("AMBER+STRICT", "RED")


class RestApi:
    def __init__(
        self,
        *,
        log: EventLog,
        projections: Projections,
        commands: CommandService,
        directory: Directory,
        accounts: Accounts,
        limits: Limits,
        presence: Presence,
        health: Callable[[], dict[str, Any]],
        login_guard: LoginGuard,
        sharing: SharingRules,
        api_keys: ApiKeys | None = None,
    ) -> None:
        self.sharing = sharing
        #: What the read paths consult (the same object, by its read interface).
        self.rules: AgreementsView = sharing
        self.api_keys = api_keys
        self.presence, self.health, self.login_guard = presence, health, login_guard
        self.log, self.projections, self.commands = log, projections, commands
        self.directory, self.accounts, self.limits = directory, accounts, limits

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/healthz", self.healthz),
            web.post("/api/v1/auth/login", self.login),
            web.post("/api/v1/auth/refresh", self.refresh),
            web.post("/api/v1/auth/logout", self.logout),
            web.post("/api/v1/auth/password", self.change_password),
            web.post("/api/v1/users/{id}/disable", self.disable_user),
            web.post("/api/v1/users/{id}/enable", self.enable_user),
            web.post("/api/v1/users/{id}/reset-password", self.reset_password),
            web.post("/api/v1/users/{id}/revoke-sessions", self.revoke_sessions),
            web.delete("/api/v1/users/{id}", self.delete_user),
            web.get("/api/v1/audit", self.audit),
            web.get("/api/v1/me", self.me),
            web.get("/api/v1/orgs", self.list_orgs),
            web.post("/api/v1/orgs", self.add_org),
            web.get("/api/v1/users", self.list_users),
            web.post("/api/v1/users", self.add_user),
            web.get("/api/v1/incidents", self.list_incidents),
            web.post("/api/v1/incidents", self.create_incident),
            web.get("/api/v1/incidents/{id}", self.get_incident),
            web.get("/api/v1/incidents/{id}/timeline", self.timeline),
            web.post("/api/v1/commands", self.command),
            *AgreementsApi(self, self.sharing).routes(),
            *ReportRoutes(self).routes(),
            *(KeyRoutes(self, self.api_keys).routes() if self.api_keys else []),
            *openapi_routes(),
            *SearchRoutes(self).routes(),
            *ContactRoutes(self).routes(),
        ]

    # ------------------------------------------------------------- plumbing

    def principal(self, request: web.Request) -> Principal:
        return self.session(request)[0]

    def session(self, request: web.Request) -> tuple[Principal, AccessClaims]:
        """Checked on every request: signature, expiry, revocation, account."""
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else None
        return self.accounts.authenticate(token, self.address(request))

    def address(self, request: web.Request) -> str:
        """Where a request came from, for the audit log (behind a trusted proxy: the client)."""
        return self.login_guard.client_address(request)

    def admin(self, request: web.Request) -> Principal:
        who = self.principal(request)
        if who.role is not Role.ADMIN:
            raise ProtocolError(ErrorCode.FORBIDDEN, "administrators only")
        return who

    async def body(self, request: web.Request) -> Any:
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                raw = await request.read()
        except TimeoutError as exc:
            raise ProtocolError(
                ErrorCode.MALFORMED, "the request body did not arrive in time"
            ) from exc
        if len(raw) > self.limits.max_frame_bytes:
            raise ProtocolError(ErrorCode.TOO_LARGE, detail={"limit": self.limits.max_frame_bytes})
        try:
            return check_decoded(orjson.loads(raw), self.limits)
        except orjson.JSONDecodeError as exc:
            raise ProtocolError(ErrorCode.MALFORMED, f"invalid JSON: {exc}") from exc

    def _int_query(self, request: web.Request, name: str, default: int, high: int) -> int:
        return int_query(request, name, default, high)

    # ---------------------------------------------------------------- routes

    async def healthz(self, request: web.Request) -> web.Response:
        backend = self.health()
        healthy = backend.pop("healthy")
        # Unhealthy: e.g. live delivery from other nodes is interrupted (it
        # resumes and fills the gap by itself). Tell the load balancer.
        health = {
            "status": "ok" if healthy else "degraded",
            "time": int(time.time() * 1000),
            **backend,
            # Full directory re-reads: a login miss must not cause one.
            "directory_reloads": self.directory.reloads,
        }
        return json_response(health, 200 if healthy else 503)

    async def login(self, request: web.Request) -> web.Response:
        f = Fields(await self.body(request), "", self.limits)
        username, password = f.req_str("username"), f.req_str("password")
        try:
            user = await self.login_guard.authenticate(request, username, password)
        except ProtocolError as err:  # unauthenticated or rate_limited: audited
            await self.accounts.login_failed(username, self.address(request), err.code.code)
            raise
        return json_response(await self.accounts.open_session(user, self.address(request)))

    # ------------------------------------------------------------ sessions

    async def refresh(self, request: web.Request) -> web.Response:
        f = Fields(await self.body(request), "", self.limits)
        token = f.req_str("refresh_token", max_chars=256)
        return json_response(await self.accounts.refresh(token, self.address(request)))

    async def logout(self, request: web.Request) -> web.Response:
        who, claims = self.session(request)
        await self.accounts.logout(who, claims, self.address(request))
        return json_response({"ok": True})

    async def change_password(self, request: web.Request) -> web.Response:
        who = self.principal(request)
        f = Fields(await self.body(request), "", self.limits)
        old, new = f.req_str("password", max_chars=256), f.req_str("new_password", max_chars=256)
        return json_response(
            await self.accounts.change_password(who, old, new, self.address(request))
        )

    # ----------------------------------------------------------- lifecycle

    async def disable_user(self, request: web.Request) -> web.Response:
        who = self.admin(request)
        await self.accounts.disable(who.user_id, request.match_info["id"], self.address(request))
        return json_response({"ok": True})

    async def enable_user(self, request: web.Request) -> web.Response:
        who = self.admin(request)
        await self.accounts.enable(who.user_id, request.match_info["id"], self.address(request))
        return json_response({"ok": True})

    async def reset_password(self, request: web.Request) -> web.Response:
        who = self.admin(request)
        f = Fields(await self.body(request), "", self.limits)
        password = f.req_str("password", max_chars=256)
        await self.accounts.reset_password(
            who.user_id, request.match_info["id"], password, self.address(request)
        )
        return json_response({"ok": True})

    async def revoke_sessions(self, request: web.Request) -> web.Response:
        who = self.admin(request)
        await self.accounts.revoke(who.user_id, request.match_info["id"], self.address(request))
        return json_response({"ok": True})

    async def delete_user(self, request: web.Request) -> web.Response:
        who = self.admin(request)
        await self.accounts.delete(who.user_id, request.match_info["id"], self.address(request))
        return json_response({"ok": True})

    async def audit(self, request: web.Request) -> web.Response:
        """The audit log, a page at a time; each read is itself recorded."""
        who = self.principal(request)
        if who.role is not Role.AUDITOR:
            raise ProtocolError(ErrorCode.FORBIDDEN, "auditors only")
        after = self._int_query(request, "after_seq", 0, 2**53)
        limit = self._int_query(request, "limit", 200, self.limits.max_page) or 1
        records = await self.accounts.audit.read(after, limit)
        await self.accounts.record(
            AuditEntry(
                who.user_id, "audit.read", "", "ok", self.address(request), {"after_seq": after}
            )
        )
        return json_response(
            {
                "records": [r.to_wire() for r in records],
                "next_after_seq": records[-1].seq if len(records) == limit else None,
            }
        )

    async def me(self, request: web.Request) -> web.Response:
        who = self.principal(request)
        org = self.directory.org(who.org_id)
        return json_response(
            {
                "id": who.user_id,
                "name": who.name,
                "role": who.role.value,
                "org": who.org_id,
                "org_name": org.name if org else None,
                "org_default_label": org.default_label.value if org else None,
            }
        )

    async def list_orgs(self, request: web.Request) -> web.Response:
        self.principal(request)
        orgs = [org_wire(o) for o in self.directory.orgs.values()]
        return json_response({"orgs": orgs})

    async def add_org(self, request: web.Request) -> web.Response:
        who = self.admin(request)
        f = Fields(await self.body(request), "", self.limits)
        org = Org(id=f.ident("id"), name=f.req_str("name"), kind=f.req_str("kind", max_chars=32))
        audit = AuditEntry(who.user_id, "org.create", org.id, "ok", self.address(request))
        try:
            await self.directory.add_org(org)
        except DirectoryConflict as exc:
            await self.accounts.record(replace(audit, outcome=ErrorCode.CONFLICT.code))
            raise ProtocolError(ErrorCode.CONFLICT, str(exc)) from exc
        await self.accounts.record(replace(audit, detail={"kind": org.kind}))
        return json_response({"id": org.id, "name": org.name, "kind": org.kind}, 201)

    async def list_users(self, request: web.Request) -> web.Response:
        who = self.principal(request)
        users = [
            u.to_wire()
            for u in self.directory.users.values()
            if not u.deleted and (who.role is Role.ADMIN or u.org_id == who.org_id)
        ]
        return json_response({"users": users})

    async def add_user(self, request: web.Request) -> web.Response:
        who = self.admin(request)
        f = Fields(await self.body(request), "", self.limits)
        username, org, role = f.ident("username"), f.ident("org"), f.choice("role", ROLES)
        audit = AuditEntry(
            who.user_id,
            "user.create",
            "u_" + username,
            "ok",
            self.address(request),
            {"org": org, "role": role},
        )
        try:
            user = await create_user(
                self.directory,
                username=username,
                org=org,
                name=f.req_str("name"),
                role=role,
                password=f.req_str("password", max_chars=256),
            )
        except ProtocolError as err:
            await self.accounts.record(replace(audit, outcome=err.code.code))
            raise
        await self.accounts.record(audit)
        return json_response(user.to_wire(), 201)

    async def list_incidents(self, request: web.Request) -> web.Response:
        """A page of the incident index: no projection is loaded, nothing subscribed."""
        who = self.principal(request)
        q = request.query
        query = IncidentQuery(
            org=who.org_id,
            status=q.get("status") or None,
            category=q.get("category") or None,
            text=(q.get("q") or "").lower(),
            updated_after=(
                self._int_query(request, "updated_after", 0, 2**53)
                if "updated_after" in q
                else None
            ),
            ref=check_ref(q["ref"], "ref") if "ref" in q else None,
            after=decode_cursor(q["cursor"]) if q.get("cursor") else None,
            limit=self._int_query(request, "limit", LIST_PAGE, self.limits.max_page) or 1,
        )
        mode = self._mode_filter(q)
        page = await self.log.list_incidents(query)
        nxt = encode_cursor(page.next) if page.next is not None else None
        listed = [
            i
            for i in page.incidents
            if who.sees(i["id"])  # an API key's scope
            and (mode is None or i.get("mode", v1.LIVE_MODE) == mode)
        ]
        return json_response({"incidents": listed, "next": nxt})

    @staticmethod
    def _mode_filter(q: Mapping[str, str]) -> str | None:
        """The mode the list answers in (SPEC 18.3): ``mode``, else live for a
        ``ref`` lookup, else every mode.

        Organisations that cannot see each other's incidents may share a CAD
        number across modes, so the lookup itself keeps a drill out of live
        work: a bot that takes the first hit gets a live incident.
        """
        mode = q.get("mode") or (v1.LIVE_MODE if "ref" in q else None)
        if mode is not None and mode not in v1.MODES:
            raise ProtocolError(
                ErrorCode.INVALID,
                f"mode: one of {', '.join(v1.MODES)}",
                {"field": "mode", "reason": "choice"},
            )
        return mode

    async def create_incident(self, request: web.Request) -> web.Response:
        who = self.principal(request)
        value = await self.body(request)
        if isinstance(value, dict):
            value = {**value, "type": "incident.create"}
        cmd = v1.parse_command(value, self.limits)
        return json_response({"ok": True, **await self.commands.execute(who, cmd)}, 201)

    async def visible_state(self, request: web.Request, who: Principal) -> Any:
        """The projection, for a participant (for route modules of their own)."""
        return await self._visible_state(request, who)

    async def _visible_state(self, request: web.Request, who: Principal) -> Any:
        """The projection, for a participant; one refusal for absent and not shared.

        Membership comes from the index first: loading the projection of an
        incident the reader is not in would make its refusal slower than one
        for an incident that does not exist, and tell them that it does.
        """
        incident = request.match_info["id"]
        if not await self.log.participates(incident, who.org_id) or not who.sees(incident):
            raise await refusal(self.log, incident, who.org_id, who.sees(incident))
        state = await self.projections.get(incident)
        if state is None or not state.participates(who.org_id):
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such incident")
        return state

    async def whole_state(self, request: web.Request, who: Principal) -> Any:
        """The projection with every message (the log's, if trimmed), for a participant."""
        state = await self._visible_state(request, who)
        return await self.projections.whole(state.id, state.seq) or state

    async def get_incident(self, request: web.Request) -> web.Response:
        who = self.principal(request)
        state = await self.whole_state(request, who)
        view = state.view(state.sight(_reader(who), self.rules, int(time.time() * 1000)))
        online = await self.presence.online(state.id)
        view["online"] = visible_online(state, who.org_id, online, self.directory)
        return json_response(view)

    async def timeline(self, request: web.Request) -> web.Response:
        who = self.principal(request)
        state = await self._visible_state(request, who)
        after = self._int_query(request, "after_seq", 0, 2**53)
        limit = self._int_query(request, "limit", 200, self.limits.max_page) or 1
        # The log's head, not this node's projection, which may lag behind it.
        head = await self.log.head(state.id)
        if head is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such incident")
        if after > head.seq:
            raise ProtocolError(ErrorCode.OUT_OF_RANGE, detail={"head_seq": head.seq})
        flt = timeline_filter(request.query)
        if flt is not None:
            return await filtered_timeline(self, request, who, state.id, head, after, limit, flt)
        events = await self.log.read(state.id, after, limit)
        if events:
            # Audiences are decided on a state that has seen these events
            # (who had joined by then), through the one function fan-out uses.
            state = await self.projections.at_least(state.id, events[-1].seq) or state
        sight = state.sight(_reader(who), self.rules, int(time.time() * 1000))
        audiences = [sight.of(event_meta(ev)) for ev in events]
        await self.audit_restricted_read(request, who, state.id, events, audiences)
        return json_response(
            {
                "incident": state.id,
                "epoch": head.epoch,
                "head_seq": head.seq,
                "events": [shaped(ev, aud) for ev, aud in zip(events, audiences, strict=True)],
                "next_after_seq": events[-1].seq if len(events) == limit else None,
            }
        )

    async def audit_restricted_read(
        self,
        request: web.Request,
        who: Principal,
        incident: str,
        events: list[Any],
        audiences: list[Audience],
        path: str = "timeline",
    ) -> None:
        """A page that hands the reader restricted content is an audit record (CJIS 5.4).

        Restricted: named organisations, or labelled AMBER+STRICT or RED.
        """
        seqs = [
            ev.seq
            for ev, aud in zip(events, audiences, strict=True)
            if aud.visible and (ev.visibility is not None or _strict(ev.body))
        ]
        if seqs:
            detail = {"path": path, "count": len(seqs), "seqs": seqs[:100]}
            entry = AuditEntry(
                who.user_id,
                "incident.read_restricted",
                incident,
                "ok",
                self.address(request),
                detail,
            )
            await self.accounts.record(entry)

    async def command(self, request: web.Request) -> web.Response:
        who = self.principal(request)
        cmd = v1.parse_command(await self.body(request), self.limits)
        if not cmd.WRITES:
            raise ProtocolError(ErrorCode.UNKNOWN_TYPE, f"{cmd.TYPE} is only for live connections")
        return json_response({"ok": True, **await self.commands.execute(who, cmd)})
