"""Checking a browser's push subscription before it is stored (SPEC section 26.1).

The server will POST to whatever endpoint is stored, so an endpoint must be
a push service the deployment allows (``push_services``), never any URL a
signed-in user names (that would make the server a request forwarder into
its own network). The keys must be what RFC 8291 needs: a P-256 point and a
16-byte secret, or every push to it would fail.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec

from protocol.errors import ErrorCode, ProtocolError

#: Longest endpoint URL accepted (FCM's are ~200 characters).
MAX_ENDPOINT = 2048


def _invalid(field: str, why: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID, why, {"field": field})


def _b64(value: Any, field: str) -> bytes:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise _invalid(field, f"{field} must be base64url text")
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _invalid(field, f"{field} must be base64url text") from exc


def allowed(endpoint: str, services: tuple[str, ...]) -> bool:
    """Whether ``endpoint`` is at a push service of ``services`` (see Settings)."""
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    for service in services:
        service = service.lower().rstrip("/")
        if "://" in service:
            if origin == service:
                return True
        elif parts.scheme == "https" and (
            service == "*" or host == service or host.endswith("." + service)
        ):
            return True
    return False


def parse(body: Any, services: tuple[str, ...]) -> tuple[str, str, str]:
    """(endpoint, p256dh, auth) of a ``PushSubscription.toJSON()`` body, checked."""
    if not isinstance(body, dict):
        raise ProtocolError(ErrorCode.INVALID, "the body must be an object")
    endpoint = body.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint or len(endpoint) > MAX_ENDPOINT:
        raise _invalid("endpoint", f"endpoint must be a URL of at most {MAX_ENDPOINT} characters")
    if not allowed(endpoint, services):
        raise _invalid("endpoint", "endpoint is not at a push service this server allows")
    keys = body.get("keys")
    if not isinstance(keys, dict):
        raise _invalid("keys", "keys must be an object with p256dh and auth")
    p256dh, auth = keys.get("p256dh"), keys.get("auth")
    point = _b64(p256dh, "keys.p256dh")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError as exc:
        raise _invalid("keys.p256dh", "keys.p256dh must be a P-256 public key") from exc
    if len(_b64(auth, "keys.auth")) != 16:
        raise _invalid("keys.auth", "keys.auth must be 16 bytes")
    return endpoint, str(p256dh), str(auth)
