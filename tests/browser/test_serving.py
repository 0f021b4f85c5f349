"""How the server serves the built client (server/transport/web_client.py):
the policy, caching, the tile URL setting, no path escapes. No browser needed."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server.transport.web_client import (
    add_web_client_routes,
    content_security_policy,
    tile_origin,
)


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("", None),
        ("https://tile.example.org/{z}/{x}/{y}.png", "https://tile.example.org"),
        ("https://{s}.tile.example.org/{z}/{x}/{y}.png", "https://*.tile.example.org"),
        ("http://localhost:8081/tiles/{z}/{x}/{y}.png", "http://localhost:8081"),
        ("https://a.{s}.example.org/{z}/{x}/{y}.png", "https://*.example.org"),
        ("javascript:alert(1)//{z}", None),
        ("https://user@evil.example/{z}", None),
        ("https://tile.example.org;script-src */{z}", None),
        ("https://{s}/{z}/{x}/{y}.png", None),
    ],
)
def test_tile_origin(url: str, origin: str | None) -> None:
    assert tile_origin(url) == origin


def test_policy_forbids_inline_script_and_allows_only_the_tile_origin() -> None:
    csp = content_security_policy("https://{s}.tile.example.org/{z}/{x}/{y}.png")
    directives = dict(d.split(" ", 1) for d in csp.split("; "))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["img-src"] == "'self' https://*.tile.example.org"
    assert directives["object-src"] == "'none'"
    assert "'unsafe-inline'" not in csp
    assert content_security_policy("").count("img-src 'self';") == 1


def _dist(root: Path) -> Path:
    (root / "app").mkdir(parents=True)
    (root / "index.html").write_text(
        '<!doctype html><meta name="liaison-tile-url" content="__LIAISON_TILE_URL__">'
        '<script type="module" src="/app/app-ABCDEFGH.js"></script>'
    )
    (root / "sw.js").write_text("self.addEventListener('fetch', () => {});")
    (root / "manifest.webmanifest").write_text('{"name": "Liaison"}')
    (root / "app" / "app-ABCDEFGH.js").write_text("console.log('app');")
    (root / "app" / "app-ABCDEFGH.js.gz").write_bytes(gzip.compress(b"console.log('app');"))
    (root / "app" / "icon.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (root.parent / "secret.txt").write_text("not for you")
    return root


async def _client(dist: Path, tile_url: str) -> TestClient[web.Request, web.Application]:
    app = web.Application()
    add_web_client_routes(app, dist, tile_url)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_shell_assets_and_tile_url(tmp_path: Path) -> None:
    dist = _dist(tmp_path / "dist")
    client = await _client(dist, 'https://{s}.tile.example.org/{z}/{x}/{y}.png?k="<x>"')
    try:
        resp = await client.get("/")
        body = await resp.text()
        assert resp.headers["Cache-Control"] == "no-cache"
        assert "https://*.tile.example.org" in resp.headers["Content-Security-Policy"]
        assert (
            'content="https://{s}.tile.example.org/{z}/{x}/{y}.png?k=&quot;&lt;x&gt;&quot;"' in body
        )
        assert resp.headers["X-Content-Type-Options"] == "nosniff"

        resp = await client.get("/app/app-ABCDEFGH.js", headers={"Accept-Encoding": "gzip"})
        assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert resp.headers["Content-Encoding"] == "gzip"  # the precompressed sibling
        assert await resp.text() == "console.log('app');"
        assert resp.headers["Content-Type"] == "text/javascript"

        resp = await client.get("/app/icon.svg")
        assert resp.headers["Cache-Control"] == "public, max-age=86400"
        assert resp.headers["Content-Type"] == "image/svg+xml"

        resp = await client.get("/sw.js")
        assert resp.headers["Service-Worker-Allowed"] == "/"
        assert resp.headers["Cache-Control"] == "no-cache"

        resp = await client.get("/manifest.webmanifest")
        assert resp.headers["Content-Type"].startswith("application/manifest+json")

        for path in ("/app/../secret.txt", "/app/%2e%2e/secret.txt", "/app/missing.js"):
            resp = await client.get(path)
            assert resp.status == 404, path
    finally:
        await client.close()


async def test_an_unusable_tile_url_is_ignored(tmp_path: Path) -> None:
    dist = _dist(tmp_path / "dist")
    client = await _client(dist, "javascript:alert(1)//{z}")
    try:
        resp = await client.get("/")
        assert 'content=""' in await resp.text()
        assert "img-src 'self';" in resp.headers["Content-Security-Policy"]
    finally:
        await client.close()
