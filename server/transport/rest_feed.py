"""REST routes of the cross-incident change feed (SPEC section 24).

GET /api/v1/feed   ?after=CURSOR&kinds=a,b&limit=&wait=SECONDS
                   -> {entries: [...], cursor, more}; without ``after``: no
                   entries and the cursor of "now". ``wait`` (0..30) holds an
                   empty answer until an entry comes (long-poll).
                   With ``Accept: text/event-stream``: Server-Sent Events,
                   ``id:`` each entry's cursor, ``data:`` the entry, resumed
                   from ``Last-Event-ID`` (else ``after``). The stream ends when
                   the token expires or is revoked, or the server stops
                   (reconnect with a fresh token and Last-Event-ID).

One route, not a ``/stream`` of its own: the stream is the same read with
another media type, and the OpenAPI document lists only the JSON answer (a
generated client or fuzzer that asks for JSON never opens an endless stream).
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from protocol.errors import ErrorCode, ProtocolError
from server.auth import AccessClaims
from server.domain.model import Principal
from server.errors import StorageUnavailable
from server.services.feed import FeedCursor, FeedPage, FeedService, parse_kinds
from server.transport.rest import int_query

if TYPE_CHECKING:
    from server.transport.rest import RestApi

#: Longest long-poll a request may ask for (seconds): under the usual 60 s of
#: proxies' read timeouts, with room.
MAX_WAIT_S = 30
#: Entries per page (REST) at most, and without ``limit``.
MAX_LIMIT = 500
DEFAULT_LIMIT = 100
#: A comment line this often keeps proxies from closing a quiet stream.
KEEPALIVE_S = 15.0
EVENT_STREAM = "text/event-stream"


def _json(data: Any) -> web.Response:
    return web.Response(body=orjson.dumps(data), content_type="application/json")


class FeedRoutes:
    def __init__(self, rest: RestApi, feed: FeedService) -> None:
        self.rest, self.feed = rest, feed

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/api/v1/feed", self.get)]

    def _kinds(self, request: web.Request) -> frozenset[str]:
        raw = request.query.get("kinds")
        return parse_kinds(None if raw is None else [k for k in raw.split(",") if k])

    async def _cursor(self, raw: str | None) -> FeedCursor:
        return FeedCursor.decode(raw) if raw else await self.feed.start_cursor()

    async def get(self, request: web.Request) -> web.StreamResponse:
        if EVENT_STREAM in request.headers.get("Accept", ""):
            return await self.stream(request)
        who = self.rest.principal(request)
        kinds = self._kinds(request)
        limit = int_query(request, "limit", DEFAULT_LIMIT, MAX_LIMIT) or 1
        wait = int_query(request, "wait", 0, MAX_WAIT_S)
        after = request.query.get("after")
        cursor = await self._cursor(after)
        if not after:
            return _json({"entries": [], "cursor": cursor.encode(), "more": False})
        page = await self._long_poll(who, cursor, kinds, limit, wait)
        return _json(
            {"entries": page.entries, "cursor": page.cursor.encode(), "more": not page.at_head}
        )

    async def _long_poll(
        self, who: Principal, cursor: FeedCursor, kinds: frozenset[str], limit: int, wait: int
    ) -> FeedPage:
        """Pages until one has entries, the head is passed with nothing, or ``wait`` ends."""
        deadline = time.monotonic() + wait
        while True:
            generation = self.feed.generation
            page = await self.feed.page(who, cursor, kinds, limit)
            left = deadline - time.monotonic()
            if page.entries or left <= 0 or self.feed.closing:
                return page
            cursor = page.cursor
            if page.at_head:
                await self.feed.wait(generation, left)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        who, claims = self.rest.session(request)
        kinds = self._kinds(request)
        cursor = await self._cursor(
            request.headers.get("Last-Event-ID") or request.query.get("after")
        )
        await self.feed.page(who, cursor, kinds, 1)  # a bad cursor: a plain error answer
        resp = web.StreamResponse(
            headers={
                "Content-Type": EVENT_STREAM,
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",  # nginx: pass each event on at once
            }
        )
        await resp.prepare(request)
        await resp.write(_sse("cursor", {"cursor": cursor.encode()}, cursor.encode()))
        try:
            await self._pump(resp, who, claims, cursor, kinds)
            # A storage error mid-stream ends it like this too: the client
            # reconnects with Last-Event-ID.
        except (ProtocolError, StorageUnavailable) as exc:
            err = exc if isinstance(exc, ProtocolError) else ProtocolError(ErrorCode.UNAVAILABLE)
            with contextlib.suppress(ConnectionResetError):
                await resp.write(_sse(err.code.code, {"error": err.to_wire()}))
        except ConnectionResetError:
            pass  # the client went away (found by a write): nothing to tell anyone
        return resp

    async def _pump(
        self,
        resp: web.StreamResponse,
        who: Principal,
        claims: AccessClaims,
        cursor: FeedCursor,
        kinds: frozenset[str],
    ) -> None:
        """Entries as they come, until the session ends (then an ``unauthenticated`` event)."""
        quiet_since = time.monotonic()
        while not self.feed.closing:
            if not self.rest.accounts.still_valid(claims) or time.time() >= claims.exp:
                raise ProtocolError(ErrorCode.UNAUTHENTICATED, "the session has ended")
            generation = self.feed.generation
            page = await self.feed.page(who, cursor, kinds, DEFAULT_LIMIT)
            for entry in page.entries:
                await resp.write(_sse(None, entry, entry["cursor"]))
            if page.entries:
                quiet_since = time.monotonic()
            cursor = page.cursor
            if not page.at_head:
                continue
            if time.monotonic() - quiet_since >= KEEPALIVE_S:
                await resp.write(b": keepalive\n\n")
                quiet_since = time.monotonic()
            await self.feed.wait(generation, KEEPALIVE_S)


def _sse(event: str | None, data: Any, event_id: str | None = None) -> bytes:
    """One Server-Sent Event (the default ``message`` type when ``event`` is None)."""
    lines = []
    if event is not None:
        lines.append(f"event: {event}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + orjson.dumps(data).decode())
    return ("\n".join(lines) + "\n\n").encode()
