"""Passwords (scrypt) and bearer tokens (HMAC-SHA256, stateless).

Tokens are verified without I/O so every node can check them with the shared
secret; the directory is still consulted so a disabled user is refused at once.

Token format: ``v1.<base64url(json payload)>.<base64url(hmac)>`` with payload
``{"sub": user id, "exp": unix seconds}``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

import orjson

from protocol.errors import ErrorCode, ProtocolError
from server.domain.model import Principal
from server.storage.directory import Directory

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${salt.hex()}${key.hex()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, salt, key = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), dklen=32, **_SCRYPT)
    return hmac.compare_digest(candidate.hex(), key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Signs with ``secret``; set at start-up (it may come from Redis)."""

    def __init__(self, ttl_s: int, secret: bytes = b"") -> None:
        self.secret = secret
        self.ttl_s = ttl_s

    def _sign(self, payload: str) -> str:
        if not self.secret:
            raise RuntimeError("the token secret was not loaded")
        return _b64(hmac.new(self.secret, payload.encode(), hashlib.sha256).digest())

    def issue(self, user_id: str, now: float | None = None) -> tuple[str, int]:
        exp = int((now or time.time()) + self.ttl_s)
        payload = _b64(orjson.dumps({"sub": user_id, "exp": exp}))
        return f"v1.{payload}.{self._sign(payload)}", exp

    def verify(self, token: object, directory: Directory) -> Principal:
        """The principal a token stands for; a typed error otherwise."""
        refused = ProtocolError(ErrorCode.UNAUTHENTICATED)
        # A token we issued is ASCII; hmac.compare_digest raises TypeError on
        # any other str, which once became a 500 and a silent socket connect.
        if not isinstance(token, str) or len(token) > 512 or not token.isascii():
            raise refused
        if token.count(".") != 2:
            raise refused
        version, payload, sig = token.split(".")
        if version != "v1" or not hmac.compare_digest(sig, self._sign(payload)):
            raise refused
        try:
            claims = orjson.loads(_unb64(payload))
        except ValueError as exc:  # binascii.Error and orjson.JSONDecodeError
            raise refused from exc
        exp = claims.get("exp") if isinstance(claims, dict) else None
        if not isinstance(exp, int) or exp < time.time():
            raise ProtocolError(ErrorCode.UNAUTHENTICATED, "the token has expired")
        principal = directory.user(str(claims.get("sub")))
        if principal is None:
            raise refused
        return principal
