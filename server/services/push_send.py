"""Sending one Web Push request: VAPID (RFC 8292) and aes128gcm (RFC 8291) by pywebpush.

The edge of the push dispatcher (server/services/push.py): it knows HTTP
and keys, nothing of incidents. pywebpush's ``send_async`` posts with our
aiohttp session, so no thread and no ``requests`` call ever blocks the
event loop; what it does in the loop is the encryption (one ECDH and one
AES-GCM over a few hundred bytes: well under a millisecond). The VAPID JWT
is signed once per push service origin and reused until an hour before it
expires (a push service may cache the verification; RFC 8292 caps ``exp``
at 24 h and pywebpush's default is 12 h).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from cryptography.hazmat.primitives import serialization
from py_vapid import Vapid02
from pywebpush import WebPusher

from server.storage.push import PushSubscription

#: Lifetime of a VAPID JWT we sign, and how long before its end we sign another.
JWT_LIFE_S = 12 * 3600
JWT_RENEW_S = 3600


@dataclass(frozen=True, slots=True)
class PushRequest:
    """One push: the plaintext and the headers RFC 8030 gives the push service."""

    data: bytes
    ttl_s: int
    urgency: str
    topic: str


@dataclass(frozen=True, slots=True)
class PushAnswer:
    """What the push service said: its status and ``Retry-After`` (seconds) if any."""

    status: int
    retry_after_s: float | None = None


def load_vapid(raw: str) -> Vapid02:
    """A VAPID key from PEM (generated or configured) or raw base64url (py-vapid's form)."""
    text = raw.strip()
    if text.startswith("-----BEGIN"):
        return Vapid02.from_pem(text.encode())
    return Vapid02.from_string(text)


def public_key_b64(vapid: Vapid02) -> str:
    """The application server key a browser subscribes with: the uncompressed P-256
    point, base64url without padding (the Push API's ``applicationServerKey``)."""
    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def origin_of(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def _retry_after(raw: str | None) -> float | None:
    if raw is None or not raw.strip().isdigit():
        return None  # an HTTP date is rare from push services: the back-off applies
    return float(raw.strip())


class PushSender:
    """Posts encrypted, signed pushes; one aiohttp session for every push service."""

    def __init__(self, vapid: Vapid02, subject: str, timeout_s: float) -> None:
        self.vapid, self.subject = vapid, subject
        self.public_key = public_key_b64(vapid)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        #: origin -> (Authorization header, its JWT's exp)
        self._jwts: dict[str, tuple[str, int]] = {}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def authorization(self, endpoint: str, now: float | None = None) -> str:
        """``vapid t=<JWT>, k=<public key>`` for the endpoint's origin (RFC 8292 section 3)."""
        aud = origin_of(endpoint)
        now = time.time() if now is None else now
        cached = self._jwts.get(aud)
        if cached is not None and cached[1] - now > JWT_RENEW_S:
            return cached[0]
        exp = int(now) + JWT_LIFE_S
        headers = self.vapid.sign({"aud": aud, "exp": exp, "sub": self.subject})
        value = str(headers["Authorization"])
        self._jwts[aud] = (value, exp)
        return value

    async def send(self, sub: PushSubscription, push: PushRequest) -> PushAnswer:
        """Post one push; raises aiohttp.ClientError or TimeoutError when no answer came."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = {
            "Authorization": self.authorization(sub.endpoint),
            "Urgency": push.urgency,
            "Topic": push.topic,
        }
        pusher = WebPusher(sub.info(), aiohttp_session=self._session)
        resp = await pusher.send_async(push.data, headers, ttl=push.ttl_s, timeout=self._timeout)
        assert not isinstance(resp, str)  # only with curl=True
        return PushAnswer(resp.status, _retry_after(resp.headers.get("Retry-After")))
