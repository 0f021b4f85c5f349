"""Passwords (argon2id) and bearer tokens (HMAC-SHA256, stateless).

Passwords are hashed with argon2id; each stored hash carries its own
parameters (``$argon2id$v=19$m=19456,t=2,p=1$salt$hash``), so raising them
later leaves old hashes verifiable. Hashes of an older scheme (``scrypt$salt$key``)
or older parameters still verify and are re-hashed at the next login
(``needs_rehash``).

Tokens are verified without I/O so every node can check them with the shared
secret; the directory is still consulted so a disabled user is refused at once,
and server/services/accounts.py's ``SessionGuard`` refuses revoked ones.

Token format: ``v1.<base64url(json payload)>.<base64url(hmac)>`` with payload
``{"sub": user id, "exp": unix seconds, "iat": issued (ms), "sid": session}``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import argon2
import orjson

from protocol.errors import ErrorCode, ProtocolError
from server.domain.model import Principal
from server.storage.directory import Directory

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}

#: OWASP's first argon2id choice (19 MiB, 2 passes, 1 lane): about 30 ms on
#: one core of a 2-core machine. argon2-cffi's own default (64 MiB, 3 passes,
#: 4 lanes) took 180-600 ms there, and every login holds one core that long.
_HASHER = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)

#: Verified against when the username is unknown, so that a miss costs the
#: same work as a wrong password (same algorithm, same parameters).
_DUMMY_HASH = _HASHER.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def check_password(password: str, stored: str | None) -> bool:
    """True if ``password`` matches ``stored``; ``None`` (no such user) costs the same."""
    if stored is None:
        with contextlib.suppress(argon2.exceptions.VerificationError):
            _HASHER.verify(_DUMMY_HASH, password)
        return False
    if stored.startswith("scrypt$"):
        return _check_scrypt(password, stored)
    try:
        return _HASHER.verify(stored, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """A hash of an older scheme or weaker parameters: replace it after a good login."""
    if not stored.startswith("$argon2id$"):
        return True
    try:
        return _HASHER.check_needs_rehash(stored)
    except argon2.exceptions.InvalidHashError:
        return True


def _check_scrypt(password: str, stored: str) -> bool:
    """The scheme before argon2id: ``scrypt$<salt hex>$<key hex>``."""
    try:
        _, salt, key = stored.split("$")
        candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), dklen=32, **_SCRYPT)
    except ValueError:
        return False
    return hmac.compare_digest(candidate.hex(), key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says: who, until when, since when, which session."""

    sub: str
    exp: int
    iat_ms: int
    sid: str
    #: The API key's id when the principal authenticated with one (no session
    #: family then: server/services/api_keys.py decides what stays valid).
    key: str = ""


class TokenSigner:
    """Signs with ``secret``; set at start-up (it may come from Redis)."""

    def __init__(self, ttl_s: int, secret: bytes = b"") -> None:
        self.secret = secret
        self.ttl_s = ttl_s

    def _sign(self, payload: str) -> str:
        if not self.secret:
            raise RuntimeError("the token secret was not loaded")
        return _b64(hmac.new(self.secret, payload.encode(), hashlib.sha256).digest())

    def issue(self, user_id: str, now: float | None = None, sid: str = "") -> tuple[str, int]:
        now = now or time.time()
        exp = int(now + self.ttl_s)
        claims = {"sub": user_id, "exp": exp, "iat": int(now * 1000), "sid": sid}
        payload = _b64(orjson.dumps(claims))
        return f"v1.{payload}.{self._sign(payload)}", exp

    def verify(self, token: object, directory: Directory) -> Principal:
        """The principal a token stands for; a typed error otherwise."""
        claims = self.decode(token)
        principal = directory.user(claims.sub)
        if principal is None:
            raise ProtocolError(ErrorCode.UNAUTHENTICATED)
        return principal

    def is_ours(self, token: object) -> bool:
        """Whether this server signed ``token``, expired or not: a token that is
        not ours is a guess (admission.py counts those per address)."""
        if not isinstance(token, str) or len(token) > 512 or not token.isascii():
            return False
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != "v1" or not self.secret:
            return False
        return hmac.compare_digest(parts[2], self._sign(parts[1]))

    def decode(self, token: object) -> AccessClaims:
        """The claims of a token we signed that has not expired; a typed error otherwise."""
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
        iat, sid = claims.get("iat", 0), claims.get("sid", "")
        if not isinstance(iat, int) or not isinstance(sid, str):
            raise refused
        return AccessClaims(str(claims.get("sub")), exp, iat, sid)
