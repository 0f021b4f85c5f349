"""REST routes of the API's own description (public: it says nothing secret).

GET /api/v1/openapi.json   -> the OpenAPI 3.1 document (server/transport/openapi.py)
GET /api/v1/docs           -> the same as an HTML page (docs_page.py)
"""

from __future__ import annotations

from functools import cache

import orjson
from aiohttp import web

from server.transport.docs_page import render
from server.transport.openapi import DOCS_PATH, OPENAPI_PATH, document


@cache
def _json() -> bytes:
    return orjson.dumps(document())


@cache
def _page() -> str:
    return render(document(), OPENAPI_PATH)


async def openapi_json(_: web.Request) -> web.Response:
    return web.Response(body=_json(), content_type="application/json")


async def docs(_: web.Request) -> web.Response:
    return web.Response(text=_page(), content_type="text/html")


def openapi_routes() -> list[web.RouteDef]:
    return [web.get(OPENAPI_PATH, openapi_json), web.get(DOCS_PATH, docs)]
