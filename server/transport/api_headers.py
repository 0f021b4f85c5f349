"""Security headers on every REST API response (``/api/``, ``/healthz``, ``/readyz``, ``/metrics``).

The API answers JSON to programs, never a page to render: a browser must not
sniff it into HTML or script (``nosniff``), load anything on its behalf or
frame it (``default-src 'none'``), or keep a copy of a timeline or a token in
its cache or a shared proxy's (``no-store``). The web client's own pages
carry their own policy (web_client.py); so does the API's one page,
``/api/v1/docs`` (docs_page.py: its inline stylesheet by hash, no script).

A response-prepare signal rather than a middleware, so the headers are also
on answers that aiohttp builds from an exception past every middleware.
"""

from __future__ import annotations

from aiohttp import web

from server.transport.docs_page import DOCS_CSP
from server.transport.openapi import DOCS_PATH

API_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


def is_api(path: str) -> bool:
    return path.startswith("/api/") or path in ("/healthz", "/readyz", "/metrics")


async def _add_api_headers(request: web.Request, response: web.StreamResponse) -> None:
    if is_api(request.path):
        response.headers.update(API_HEADERS)
        if request.path == DOCS_PATH:  # the one page: its own stylesheet, still no script
            response.headers["Content-Security-Policy"] = DOCS_CSP


def add_api_headers(app: web.Application) -> None:
    app.on_response_prepare.append(_add_api_headers)
