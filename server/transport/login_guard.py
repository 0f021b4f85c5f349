"""What stands between POST /api/v1/auth/login and the password check.

* Throttling (server/throttle.py) per username and per client address, checked
  before any password work, answered ``rate_limited`` with ``retry_after``.
* The same work for an unknown username as for a wrong password: the
  directory is not re-read (only its cheap change token is compared), and a
  dummy argon2id hash with the same parameters is verified.
* A good login with an older hash (scrypt, weaker argon2 parameters) stores
  an argon2id hash of the same password.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math

from aiohttp import web

from protocol.errors import ErrorCode, ProtocolError
from server.auth import check_password, hash_password, needs_rehash
from server.errors import StorageUnavailable
from server.metrics import Metrics, unregistered
from server.storage.directory import Directory, User
from server.throttle import LoginThrottle, ThrottleRule

log = logging.getLogger(__name__)


class LoginGuard:
    def __init__(
        self,
        directory: Directory,
        throttle: LoginThrottle,
        *,
        per_user: ThrottleRule,
        per_address: ThrottleRule,
        trusted_proxies: tuple[str, ...] = (),
    ) -> None:
        self.directory, self.throttle = directory, throttle
        self.rules = [per_user, per_address]
        self.addresses = ClientAddresses(trusted_proxies)
        #: Refused logins by reason (set by the app).
        self.metrics: Metrics = unregistered()

    def client_address(self, request: web.Request) -> str:
        """The client's address, as :class:`ClientAddresses` derives it."""
        return self.addresses.of(request)

    async def authenticate(self, request: web.Request, username: str, password: str) -> User:
        """The user these credentials name; ``rate_limited`` or ``unauthenticated`` otherwise."""
        keys = [f"user:{username}", f"addr:{self.client_address(request)}"]
        wait = await self.throttle.retry_after(keys)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            self.metrics.login_failures["rate_limited"].inc()
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                "too many failed logins; retry later",
                {"retry_after": seconds},
            )
        user = self.directory.by_username(username)
        if user is None:  # perhaps just added with the CLI: compare the change token
            try:
                await self.directory.catch_up()
            except StorageUnavailable as exc:  # answer as for any unknown name
                log.warning("login: the directory could not be checked for changes: %s", exc)
            user = self.directory.by_username(username)
        loop = asyncio.get_running_loop()
        stored = user.password_hash if user is not None else None
        ok = await loop.run_in_executor(None, check_password, password, stored)
        if user is None or not ok or user.disabled:
            await self.throttle.failed(keys, self.rules)
            self.metrics.login_failures["unauthenticated"].inc()
            raise ProtocolError(ErrorCode.UNAUTHENTICATED, "wrong username or password")
        await self.throttle.succeeded(keys[0])
        if needs_rehash(user.password_hash):
            await self._rehash(user, password)
        return user

    async def _rehash(self, user: User, password: str) -> None:
        """Upgrade an old hash; a failure here must not fail the login."""
        try:
            new_hash = await asyncio.get_running_loop().run_in_executor(
                None, hash_password, password
            )
            await self.directory.replace_password_hash(user, new_hash)
        except Exception:
            log.exception("re-hashing the password of user %s failed", user.id)


class ClientAddresses:
    """The client address of a request, for throttles and connection limits.

    Shared by the login throttle and Engine.IO admission (admission.py), so
    both count the same address for the same client.
    """

    def __init__(self, trusted_proxies: tuple[str, ...] = ()) -> None:
        self.trusted = [ipaddress.ip_network(a.strip(), strict=False) for a in trusted_proxies]

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def of(self, request: web.BaseRequest) -> str:
        """The peer, or behind a trusted proxy the right-most untrusted X-Forwarded-For hop.

        Right-most: nginx appends the address it saw to whatever the client
        sent, so every hop left of the last untrusted one may be forged.
        """
        peer = _normal(request.remote or "")
        if not self._is_trusted(peer):
            return peer
        hops = [_normal(h) for h in request.headers.get("X-Forwarded-For", "").split(",")]
        for hop in reversed(hops):
            if hop and not self._is_trusted(hop):
                return hop
        return peer


def _normal(address: str) -> str:
    """One spelling per address (``::ffff:127.0.0.1`` is ``127.0.0.1``)."""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return address.strip()
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)
