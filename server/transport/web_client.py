"""Serving the built browser client (``client_web/dist``).

Routes:

- ``/`` and ``/index.html``: the app shell, with the configured map tile URL in
  a ``<meta>`` tag (the page carries no inline script). Never cached without
  revalidation, so a new build reaches browsers on the next load.
- ``/sw.js``: the service worker, scoped to ``/`` so the shell starts offline.
- ``/manifest.webmanifest``: the web app manifest (installable shell).
- ``/app/<file>``: scripts, styles and icons. Names with a content hash are
  cached for a year as immutable; the others for a day.

Every response carries a strict Content-Security-Policy: scripts only from
this origin and never inline, no plugins, no framing; images also from the
tile server's origin when one is configured.
"""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web

log = logging.getLogger(__name__)

#: esbuild output names: ``app-CZAGJ2BM.js``, ``chunk-N3ZZ5AOD.js``, ``asset-2V3QKKVC.png``.
_HASHED = re.compile(r"-[A-Z0-9]{8}\.[a-z0-9.]+$")
_TILE_MARKER = "__LIAISON_TILE_URL__"

_TYPES = {
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".css": "text/css",
    ".map": "application/json",
    ".json": "application/json",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".webmanifest": "application/manifest+json",
    ".html": "text/html",
    ".woff2": "font/woff2",
}

NO_CACHE = "no-cache"
IMMUTABLE = "public, max-age=31536000, immutable"
DAY = "public, max-age=86400"


def tile_origin(tile_url: str) -> str | None:
    """The CSP source for a tile URL template, or None if it is not a usable http(s) URL.

    ``https://{s}.tile.example.org/{z}/{x}/{y}.png`` gives ``https://*.tile.example.org``.
    """
    if not tile_url:
        return None
    parts = urlsplit(re.sub(r"\{[^}]*\}", "*", tile_url.strip()))
    host = parts.netloc
    if parts.scheme not in ("http", "https") or not re.fullmatch(
        r"[A-Za-z0-9.*-]+(:[0-9]+)?", host
    ):
        return None
    labels = host.split(".")
    wild = [i for i, label in enumerate(labels) if "*" in label]
    if wild:
        # CSP allows a wildcard only as the leftmost label of a host.
        rest = labels[wild[-1] + 1 :]
        if len(rest) < 2:
            return None
        host = "*." + ".".join(rest)
    return f"{parts.scheme}://{host}"


def content_security_policy(tile_url: str) -> str:
    images = "'self'"
    origin = tile_origin(tile_url)
    if origin:
        images += f" {origin}"
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src {images}",
            "connect-src 'self'",
            "worker-src 'self'",
            "manifest-src 'self'",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def add_web_client_routes(app: web.Application, dist: Path, tile_url: str) -> None:
    """Serve the client built into ``dist`` at ``/``; ``tile_url`` is the map tile template."""
    dist = dist.resolve()
    assets = (dist / "app").resolve()
    if tile_url and tile_origin(tile_url) is None:
        log.warning("LIAISON_TILE_URL is not an http(s) URL template; the map shows no tiles")
        tile_url = ""
    csp = content_security_policy(tile_url)
    security = {
        "Content-Security-Policy": csp,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Permissions-Policy": "geolocation=(self), camera=(), microphone=()",
    }
    index_cache: dict[str, tuple[float, bytes]] = {}

    def shell() -> bytes:
        """index.html with the tile URL filled in; re-read when the build changes."""
        path = dist / "index.html"
        mtime = path.stat().st_mtime
        cached = index_cache.get("index")
        if cached is None or cached[0] != mtime:
            text = path.read_text("utf-8").replace(_TILE_MARKER, html.escape(tile_url, quote=True))
            cached = (mtime, text.encode("utf-8"))
            index_cache["index"] = cached
        return cached[1]

    def respond(body: bytes, content_type: str, cache: str) -> web.Response:
        resp = web.Response(body=body, headers={**security, "Cache-Control": cache})
        resp.content_type = content_type
        if content_type.startswith("text/") or content_type.endswith(("json", "javascript")):
            resp.charset = "utf-8"
        return resp

    async def index(_: web.Request) -> web.StreamResponse:
        try:
            body = shell()
        except FileNotFoundError:
            raise web.HTTPNotFound() from None
        return respond(body, "text/html", NO_CACHE)

    async def service_worker(_: web.Request) -> web.StreamResponse:
        try:
            body = (dist / "sw.js").read_bytes()
        except FileNotFoundError:
            raise web.HTTPNotFound() from None
        resp = respond(body, "text/javascript", NO_CACHE)
        resp.headers["Service-Worker-Allowed"] = "/"
        return resp

    async def manifest(_: web.Request) -> web.StreamResponse:
        try:
            body = (dist / "manifest.webmanifest").read_bytes()
        except FileNotFoundError:
            raise web.HTTPNotFound() from None
        return respond(body, "application/manifest+json", NO_CACHE)

    async def asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        path = (assets / name).resolve()
        if not path.is_relative_to(assets) or not path.is_file():
            raise web.HTTPNotFound()
        content_type = _TYPES.get(path.suffix, "application/octet-stream")
        cache = IMMUTABLE if _HASHED.search(path.name) else DAY
        resp = web.FileResponse(path, headers={**security, "Cache-Control": cache})
        resp.content_type = content_type
        return resp

    app.router.add_get("/", index)
    app.router.add_get("/index.html", index)
    app.router.add_get("/sw.js", service_worker)
    app.router.add_get("/manifest.webmanifest", manifest)
    app.router.add_get("/app/{name:[A-Za-z0-9._-]+}", asset)
