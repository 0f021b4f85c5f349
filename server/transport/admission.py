"""Admission of Engine.IO sessions: who may open one, and for how long it may wait.

An Engine.IO session costs the server about 9 KB from its first GET, before
the client has said who it is (the Socket.IO CONNECT with a token). Without
limits one address opened about 2,500 a second, each held 35 s (the
heartbeat): about 800 MB. The rules, each a setting (server/settings.py):

* **Rate per address**: new sessions (a GET without ``sid``, polling or
  WebSocket) take a token from a bucket per client address
  (``connect_rate_per_s``, burst ``connect_burst``); an empty bucket is
  answered HTTP 429 before engine.io creates anything.
* **Unauthenticated sessions**: at most ``max_unauthenticated_sessions`` in all
  and ``max_unauthenticated_per_address`` per address may wait for their
  authenticated CONNECT; past that a new one gets HTTP 503 (global) or 429
  (per address). One that has not authenticated within
  ``connect_deadline_s`` is closed.
* **Per user**: a user may hold ``max_connections_per_user`` live
  connections; the next CONNECT is refused ``rate_limited`` (the oldest is
  not kicked: a stolen token must not push the owner off).
* **Bad tokens**: a CONNECT whose token this server never signed counts as a
  failed login of its address (server/throttle.py, key ``sock:<address>``);
  past ``login_address_max_failures`` such connects are answered
  ``rate_limited`` with ``retry_after``. Expired or revoked tokens we signed
  are not guesses and do not count, so phones that slept do not lock out the
  dispatch centre sharing their address.

Per-address rules do not apply to loopback clients unless
``limit_loopback_connects`` is set: behind an nginx on the same host without
``trusted_proxies`` every client is 127.0.0.1, and tests and benchmarks open
hundreds of connections from it. The global cap and the per-user cap always
apply. Refusals are logged with the address only: never a sid, token or
query string.

This module is the policy; sio_seam.py calls it where engine.io creates,
authenticates and forgets a session.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from protocol.errors import ErrorCode, ProtocolError
from server.auth import TokenSigner
from server.errors import StorageUnavailable
from server.metrics import Metrics, unregistered
from server.settings import Settings
from server.throttle import LoginThrottle, ThrottleRule
from server.transport.login_guard import ClientAddresses

log = logging.getLogger(__name__)

#: Client addresses whose token buckets are remembered; the oldest go first.
MAX_BUCKETS = 100_000
#: Seconds between two log lines about refused sessions of one rule.
LOG_EVERY_S = 10.0


@dataclass(frozen=True, slots=True)
class AdmissionLimits:
    #: Sessions in all that have not completed an authenticated CONNECT (0: no cap).
    max_unauthenticated: int = 2_000
    #: The same per client address (0: no cap).
    max_unauthenticated_per_address: int = 50
    #: Seconds a session has to authenticate before it is closed.
    connect_deadline_s: float = 10.0
    #: New sessions per second per address, and the burst (rate 0: no limit).
    rate_per_s: float = 20.0
    burst: int = 40
    #: Live authenticated connections per user (0: no cap).
    max_per_user: int = 20
    #: Whether the per-address rules apply to loopback clients too.
    limit_loopback: bool = False


@dataclass(frozen=True, slots=True)
class Refusal:
    """A new session refused before engine.io creates it: an HTTP answer."""

    status: int
    retry_after: int
    reason: str

    def response(self) -> web.Response:
        err = ProtocolError(ErrorCode.RATE_LIMITED, self.reason, {"retry_after": self.retry_after})
        return web.json_response(
            err.to_wire(), status=self.status, headers={"Retry-After": str(self.retry_after)}
        )


class Slot:
    """One unauthenticated session's place in the caps, from its first GET."""

    __slots__ = ("address", "counted", "eio_sid", "held", "timer")

    def __init__(self, address: str, counted: bool) -> None:
        self.address = address
        #: Whether it counts against its address (not for exempt loopback).
        self.counted = counted
        self.eio_sid: str | None = None
        self.held = True
        self.timer: asyncio.TimerHandle | None = None


#: Where the seam keeps a new session's :class:`Slot` on its aiohttp request.
SLOT_KEY = web.RequestKey("liaison_admission_slot", Slot)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class Admission:
    """The caps and rates of the module docstring, for one server process."""

    def __init__(
        self,
        limits: AdmissionLimits,
        address_of: Callable[[web.BaseRequest], str],
        *,
        throttle: LoginThrottle | None = None,
        bad_token_rule: ThrottleRule | None = None,
        is_our_token: Callable[[object], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self.address_of = address_of
        self._throttle, self._rule, self._is_ours = throttle, bad_token_rule, is_our_token
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._per_address: dict[str, int] = {}
        self._by_sid: dict[str, Slot] = {}
        #: Unauthenticated sessions held now (also those still being created).
        self.unauthenticated = 0
        #: Closes a session that missed its deadline; set by the seam.
        self.expire: Callable[[str], Coroutine[Any, Any, None]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: Per rule: refusals not yet logged, and when the last line was written.
        self._refusals: dict[str, tuple[int, float]] = {}
        #: Refusals counted by rule (set by the app).
        self.metrics: Metrics = unregistered()

    @classmethod
    def unlimited(cls) -> Admission:
        """No caps at all (a Gateway built without settings, in tests)."""
        none = AdmissionLimits(0, 0, 0.0, 0.0, 0, 0, False)
        return cls(none, lambda request: request.remote or "")

    # ------------------------------------------------------------ sessions

    def admit(self, address: str) -> Slot | Refusal:
        """A place for a new session from ``address``, or why not (nothing is kept then)."""
        lim = self.limits
        counted = lim.limit_loopback or not _is_loopback(address)
        wait = max(1, math.ceil(lim.connect_deadline_s))
        if lim.max_unauthenticated and self.unauthenticated >= lim.max_unauthenticated:
            self._log_refusal("the global cap", "")
            self.metrics.connect_refusals["global_cap"].inc()
            return Refusal(503, wait, "too many connections waiting to authenticate")
        if counted:
            held = self._per_address.get(address, 0)
            if lim.max_unauthenticated_per_address and held >= lim.max_unauthenticated_per_address:
                self._log_refusal("the per-address cap", address)
                self.metrics.connect_refusals["per_address_cap"].inc()
                return Refusal(429, wait, "too many unauthenticated connections from this address")
            if lim.rate_per_s > 0 and (retry := self._take(address)) > 0:
                self._log_refusal("the connection rate", address)
                self.metrics.connect_refusals["connect_rate"].inc()
                return Refusal(429, max(1, math.ceil(retry)), "too many new connections")
            self._per_address[address] = held + 1
        self.unauthenticated += 1
        return Slot(address, counted)

    def _log_refusal(self, rule: str, address: str) -> None:
        """One WARNING per rule per ``LOG_EVERY_S``, with the count since: a flood
        of refusals must not become a flood of log lines."""
        now = self._clock()
        count, since = self._refusals.get(rule, (0, -LOG_EVERY_S))
        count += 1
        if now - since < LOG_EVERY_S:
            self._refusals[rule] = (count, since)
            return
        where = f" (last from {address})" if address else ""
        log.warning(
            "refused %d new Engine.IO session(s) by %s%s; %d unauthenticated held",
            count,
            rule,
            where,
            self.unauthenticated,
        )
        self._refusals[rule] = (0, now)

    def _take(self, address: str) -> float:
        """One token from the address's bucket: 0, or the seconds until one is there."""
        now, lim = self._clock(), self.limits
        bucket = self._buckets.pop(address, None) or _Bucket(float(lim.burst), now)
        bucket.tokens = min(float(lim.burst), bucket.tokens + (now - bucket.stamp) * lim.rate_per_s)
        bucket.stamp = now
        self._buckets[address] = bucket  # most recently used last
        while len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        if bucket.tokens < 1.0:
            return (1.0 - bucket.tokens) / lim.rate_per_s
        bucket.tokens -= 1.0
        return 0.0

    def opened(self, slot: Slot, eio_sid: str) -> None:
        """engine.io created the session: its deadline starts."""
        slot.eio_sid = eio_sid
        self._by_sid[eio_sid] = slot
        if self.limits.connect_deadline_s > 0 and self.expire is not None:
            loop = asyncio.get_running_loop()
            slot.timer = loop.call_later(self.limits.connect_deadline_s, self._expired, eio_sid)

    def _expired(self, eio_sid: str) -> None:
        if eio_sid not in self._by_sid or self.expire is None:
            return
        log.info("closed a session that did not authenticate in time")
        task = asyncio.create_task(self.expire(eio_sid))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def authenticated(self, eio_sid: str) -> None:
        """The session completed an authenticated CONNECT: it leaves the caps."""
        self._forget(eio_sid)

    def closed(self, eio_sid: str) -> None:
        """The session is gone, authenticated or not."""
        self._forget(eio_sid)

    def _forget(self, eio_sid: str) -> None:
        slot = self._by_sid.pop(eio_sid, None)
        if slot is not None:
            self.release(slot)

    def release(self, slot: Slot) -> None:
        """Give the place back; idempotent."""
        if not slot.held:
            return
        slot.held = False
        if slot.timer is not None:
            slot.timer.cancel()
        self.unauthenticated -= 1
        if slot.counted:
            left = self._per_address.get(slot.address, 1) - 1
            if left > 0:
                self._per_address[slot.address] = left
            else:
                self._per_address.pop(slot.address, None)

    # ------------------------------------------------------------ connects

    def check_user(self, live: int) -> None:
        """``rate_limited`` if a user with ``live`` connections may not open another."""
        cap = self.limits.max_per_user
        if cap and live >= cap:
            self.metrics.connect_refusals["per_user"].inc()
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                f"this user already has {cap} connections; close one first",
                {"retry_after": max(1, math.ceil(self.limits.connect_deadline_s)), "limit": cap},
            )

    async def refused(
        self, environ: Mapping[str, Any], auth: Any, err: ProtocolError
    ) -> ProtocolError:
        """The answer to a refused CONNECT: a bad token counts against its address."""
        if err.code is not ErrorCode.UNAUTHENTICATED or self._throttle is None:
            return err
        token = auth.get("token") if isinstance(auth, dict) else None
        if self._is_ours is not None and self._is_ours(token):
            return err  # ours, expired or revoked: not a guess
        request = environ.get("aiohttp.request")
        if not isinstance(request, web.BaseRequest) or self._rule is None:
            return err
        key = f"sock:{self.address_of(request)}"
        try:
            wait = await self._throttle.retry_after([key])
            if wait <= 0:
                await self._throttle.failed([key], [self._rule])
                wait = await self._throttle.retry_after([key])
        except StorageUnavailable as exc:  # refused anyway: answer as it was
            log.warning("socket connect throttle unavailable: %s", exc)
            return err
        if wait <= 0:
            return err
        self.metrics.connect_refusals["bad_token"].inc()
        return ProtocolError(
            ErrorCode.RATE_LIMITED,
            "too many connects with bad tokens; retry later",
            {"retry_after": max(1, math.ceil(wait))},
        )


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def build_admission(settings: Settings, throttle: LoginThrottle, signer: TokenSigner) -> Admission:
    """The admission rules the settings ask for (bad tokens share the login throttle's store)."""
    limits = AdmissionLimits(
        max_unauthenticated=settings.max_unauthenticated_sessions,
        max_unauthenticated_per_address=settings.max_unauthenticated_per_address,
        connect_deadline_s=settings.connect_deadline_s,
        rate_per_s=settings.connect_rate_per_s,
        burst=settings.connect_burst,
        max_per_user=settings.max_connections_per_user,
        limit_loopback=settings.limit_loopback_connects,
    )
    return Admission(
        limits,
        ClientAddresses(settings.trusted_proxies).of,
        throttle=throttle,
        bad_token_rule=ThrottleRule(settings.login_address_max_failures, settings.login_window_s),
        is_our_token=signer.is_ours,
    )
