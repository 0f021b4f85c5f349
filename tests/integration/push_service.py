"""A push service on a loopback port, acting as FCM or Mozilla's would for our pushes.

These machines reach no real push service, so this one plays its part and
the browser's: ``subscribe`` makes a browser's keys (a P-256 pair and an
auth secret, as the Push API does) and an endpoint here. Every POST is
checked as a push service checks it (RFC 8292: the VAPID JWT's ES256
signature against the key in ``k``, which must be the server's; ``aud`` the
endpoint's origin; ``exp`` in the future, at most 24 h away; RFC 8030:
``TTL``, ``Urgency``, ``Topic``) and then decrypted as the browser would
(RFC 8291, aes128gcm, with the subscription's private key and auth secret),
so a test reads the plaintext a phone would get.
"""

from __future__ import annotations

import base64
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import http_ece
import orjson
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.conftest import free_port


def b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@dataclass
class Browser:
    """One browser's subscription: what it hands the server, and its secrets."""

    id: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes

    def to_json(self) -> dict[str, Any]:
        """As ``PushSubscription.toJSON()`` gives it."""
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"endpoint": self.endpoint, "keys": {"p256dh": b64e(point), "auth": b64e(self.auth)}}


@dataclass
class Delivery:
    browser: str
    #: Case-insensitive, as HTTP headers are.
    headers: Mapping[str, str]
    payload: dict[str, Any]


@dataclass
class PushService:
    #: The VAPID public key the server subscribes with (base64url), once known.
    server_key: str = ""
    port: int = field(default_factory=free_port)
    browsers: dict[str, Browser] = field(default_factory=dict)
    delivered: list[Delivery] = field(default_factory=list)
    #: Requests refused, with why (a test asserts this stays empty).
    refused: list[str] = field(default_factory=list)
    #: The browser id of every request that reached the service, answered or not.
    requests: list[str] = field(default_factory=list)
    #: browser id -> statuses to answer next instead of accepting (410, 429...).
    answers: dict[str, list[int]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def subscribe(self) -> Browser:
        browser_id = b64e(os.urandom(9))
        browser = Browser(
            browser_id,
            f"{self.origin}/push/{browser_id}",
            ec.generate_private_key(ec.SECP256R1()),
            os.urandom(16),
        )
        self.browsers[browser_id] = browser
        return browser

    def of(self, browser: Browser) -> list[dict[str, Any]]:
        return [d.payload for d in self.delivered if d.browser == browser.id]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/push/{id}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append(request.match_info["id"])
        browser = self.browsers.get(request.match_info["id"])
        if browser is None:
            return web.Response(status=404)
        queued = self.answers.get(browser.id)
        if queued:
            return web.Response(status=queued.pop(0), headers={"Retry-After": "0"})
        why = self._check(request)
        if why:
            self.refused.append(why)
            return web.Response(status=403, text=why)
        body = await request.read()
        plain = http_ece.decrypt(
            body, private_key=browser.private_key, auth_secret=browser.auth, version="aes128gcm"
        )
        self.delivered.append(Delivery(browser.id, request.headers.copy(), orjson.loads(plain)))
        location = f"{self.origin}/m/{len(self.delivered)}"
        return web.Response(status=201, headers={"Location": location})

    def _check(self, request: web.Request) -> str:
        """Why a push service would refuse this request ('' if it would not)."""
        h = request.headers
        if h.get("Content-Encoding") != "aes128gcm":
            return "content-encoding"
        if not h.get("TTL", "").isdigit() or h.get("Urgency") not in ("normal", "high"):
            return "ttl/urgency"
        if len(h.get("Topic", "")) > 32:
            return "topic"
        auth = h.get("Authorization", "")
        if not auth.startswith("vapid "):
            return "no vapid"
        parts = dict(p.strip().split("=", 1) for p in auth[6:].split(","))
        if parts.get("k") != self.server_key:
            return "another key"
        head, claims, sig = parts["t"].split(".")
        if orjson.loads(b64d(head)).get("alg") != "ES256":
            return "alg"
        raw = b64d(sig)
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64d(parts["k"]))
        signature = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
        try:
            key.verify(signature, f"{head}.{claims}".encode(), ec.ECDSA(hashes.SHA256()))
        except Exception:
            return "bad signature"
        values = orjson.loads(b64d(claims))
        if values.get("aud") != self.origin:
            return "aud"
        if not time.time() < values.get("exp", 0) <= time.time() + 86400:
            return "exp"
        if not str(values.get("sub", "")).startswith(("mailto:", "https:")):
            return "sub"
        return ""
