"""Signatures of outbound webhooks, per the Standard Webhooks specification.

A delivery carries three headers::

    webhook-id:        <subscription>_<incident>_<seq>   stable across retries
    webhook-timestamp: 1764640000                        Unix seconds of this attempt
    webhook-signature: v1,<base64> [v1,<base64>]         one per valid secret

and each signature is ``base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))``
where ``key`` is the base64-decoded part of a ``whsec_`` secret. During a
secret rotation both secrets are valid and both signatures are sent, so a
receiver may switch to the new secret at any moment of the window.
Receivers compare in constant time and refuse a timestamp more than
``TOLERANCE_S`` from their clock (a replayed request). SPEC.md, "Webhooks".
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
#: Bytes of key in a new secret (the spec asks for 24 to 64).
SECRET_BYTES = 32
#: Seconds a receiver accepts between a delivery's timestamp and its clock.
TOLERANCE_S = 300
SIGNATURE_VERSION = "v1"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    return base64.b64decode(raw, validate=True)


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature of a delivery."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signature_header(keys: Iterable[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per secret, space-separated."""
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in keys)


def verify(secret: str, headers: Mapping[str, str], body: bytes, now_s: float) -> bool:
    """Whether a delivery's headers carry a valid, fresh signature by ``secret``."""
    msg_id = headers.get("webhook-id")
    stamp = headers.get("webhook-timestamp", "")
    signatures = headers.get("webhook-signature", "")
    if not msg_id or not stamp.isdigit() or abs(now_s - int(stamp)) > TOLERANCE_S:
        return False
    expected = sign(secret, msg_id, int(stamp), body)
    return any(hmac.compare_digest(expected, given) for given in signatures.split(" "))
