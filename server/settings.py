"""Settings: frozen once read, from flags or LIAISON_* environment variables.

Every setting is documented in README.md ("Settings") and ``liaison --help``.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from server.storage import redis_connect


@dataclass(frozen=True, slots=True)
class Settings:
    #: Interface and port to listen on.
    host: str = "127.0.0.1"
    port: int = 8080
    #: Redis URL (redis://host:port/db). Empty: the embedded default (SQLite, one
    #: process). Set: the logs, fan-out and directory live in Redis, shared by
    #: every node.
    redis_url: str = ""
    #: Names this node in probes and logs; default hostname-pid.
    node_id: str = ""
    #: Server processes on this host sharing the port (Redis mode only), each
    #: a node of its own; 0: one per core (server/workers.py).
    workers: int = 1
    #: Connections per node to Redis for commands (Redis mode). A caller beyond
    #: that waits (up to 5 s, then ``unavailable``) instead of failing at once.
    redis_max_connections: int = 64
    #: Replicas that must confirm an append (Redis WAIT, or WAITAOF where the
    #: server has it) before it is acknowledged; 0: the master's answer is the
    #: ack, and a failover can lose the last writes (deploy/README.md).
    redis_min_replicas: int = 0
    #: Milliseconds an append waits for those replicas before it is answered
    #: ``outcome_unknown`` (retryable; the client retries with the same id).
    redis_replica_timeout_ms: int = 1000
    #: Seconds a node's presence claims outlive it (Redis mode).
    presence_ttl_s: float = 30.0
    #: Where the embedded backend keeps its SQLite files and the generated secret.
    data_dir: Path = Path("./data")
    #: Secret for signing tokens; generated into data_dir on first start if empty.
    #: Every node of a deployment must share it.
    secret: str = ""
    #: Lifetime of an access token, seconds. Short: a stolen one is useful
    #: this long at most; clients refresh it silently (it was 12 h, with no
    #: refresh, which logged phones out mid-shift).
    token_ttl_s: int = 15 * 60
    #: Longest a session lasts from its login however often it is refreshed
    #: (a shift and some overtime).
    refresh_ttl_s: int = 14 * 3600
    #: A session not refreshed for this long ends (CJIS 5.5.5 asks for a lock
    #: after at most 30 minutes of inactivity).
    idle_timeout_s: int = 30 * 60
    #: Browser origins allowed to open Socket.IO connections (comma separated).
    #: Empty: the server's own http://host:port. "*" allows any (never in production).
    allowed_origins: tuple[str, ...] = ()
    #: Initial admin password; generated and printed once if empty.
    admin_password: str = ""
    #: SQLite synchronous mode: FULL survives power loss, NORMAL only a crash.
    sqlite_synchronous: str = "FULL"
    #: Bytes of events waiting for one connection before it is cut off as slow.
    max_pending_bytes: int = 4 * 1024 * 1024
    #: Engine.IO heartbeat: a dead client is noticed after interval + timeout.
    ping_interval_s: float = 20.0
    ping_timeout_s: float = 15.0
    #: Incident projections kept in memory per node, least recently used out
    #: first (followed incidents stay). Each holds its incident's tasks and
    #: newest messages, so this bounds the memory reads and commands can make a
    #: node hold.
    projection_cache: int = 1_000
    #: Messages each cached projection keeps in memory, newest first (and
    #: urgent ones awaiting their acknowledgement); reads of older ones fold
    #: the log. 0: keep every message (memory then grows with every post).
    projection_messages: int = 1_000
    #: Net allocations between collections of the garbage collector's young
    #: generation, and what exists at startup is frozen out of its passes
    #: (server/gc_tuning.py). 0: CPython's defaults (700), nothing frozen.
    gc_young: int = 20_000
    #: Python logging level.
    log_level: str = "INFO"
    #: "text": human lines (``make run``); "json": one JSON object per line,
    #: with a stable ``event`` name, for a log collector (server/logs.py).
    log_format: str = "text"
    #: Bearer token /metrics requires. Empty: /metrics is open like /healthz,
    #: and the proxy must keep it private (deploy/README.md, Health).
    metrics_token: str = ""
    #: Seed demo organisations, users and an incident at start (idempotent).
    demo: bool = field(default=False)
    #: Map tile URL template for the browser client, for example
    #: https://tile.example.org/{z}/{x}/{y}.png. Empty: the map shows positions
    #: on a plain grid, with no tile server contacted.
    tile_url: str = ""
    #: Failed logins per username within login_window_s before back-off
    #: (1 s, doubling, at most the window) answers ``rate_limited``.
    login_max_failures: int = 5
    #: The same per client address. Higher than per username: a dispatch
    #: centre's phones and desks often share one address behind NAT.
    login_address_max_failures: int = 20
    #: Seconds failed logins are remembered, from a key's first failure.
    login_window_s: float = 900.0
    #: Addresses or networks (CIDR) of reverse proxies (nginx) whose X-Forwarded-For is believed
    #: for the client address that login throttling and connection limits
    #: count. Empty: the peer address is the client, and X-Forwarded-For is
    #: ignored (anyone can send it).
    trusted_proxies: tuple[str, ...] = ()
    #: Seconds a connection may take to send a request's headers, or stay idle
    #: between requests (aiohttp's keep-alive timer, which also runs while
    #: headers are incomplete). aiohttp's default was 75 s under run_app, 3630 s
    #: otherwise: 1,000 connections with partial headers were held indefinitely.
    #: A running request (a long poll, a WebSocket) is not cut by it.
    http_header_timeout_s: float = 15.0
    #: Engine.IO sessions in all, and per client address, that have not yet
    #: completed an authenticated Socket.IO connect (each costs about 9 KB);
    #: past either a new one is refused (HTTP 503 / 429). 0: no cap.
    max_unauthenticated_sessions: int = 2_000
    max_unauthenticated_per_address: int = 50
    #: Seconds a new session has to authenticate before it is closed.
    connect_deadline_s: float = 10.0
    #: New Engine.IO sessions per second per client address, and the burst
    #: (a token bucket); past it HTTP 429 with Retry-After. 0: no limit.
    connect_rate_per_s: float = 20.0
    connect_burst: int = 40
    #: Live connections one user may hold on this node; the next connect is refused
    #: ``rate_limited`` (the oldest is not kicked). 0: no cap.
    max_connections_per_user: int = 20
    #: Apply the per-address limits (rate, unauthenticated per address) to
    #: loopback clients too. Off: tests, benchmarks and an nginx on the same
    #: host without trusted_proxies would all be one address.
    limit_loopback_connects: bool = False
    #: Outbound webhooks (SPEC "Webhooks"): seconds between looks at the log
    #: for new events; seconds a receiver has to answer; the retry back-off
    #: (base doubling to the cap); how long a subscription may fail before it
    #: is disabled; how long a node's delivery lease lasts unless renewed
    #: (Redis mode: another node takes over after it); and how long the old
    #: secret stays valid after a rotation.
    webhook_poll_s: float = 1.0
    webhook_timeout_s: float = 10.0
    webhook_retry_base_s: float = 1.0
    webhook_retry_cap_s: float = 300.0
    webhook_disable_after_s: float = 86400.0
    webhook_lease_s: float = 15.0
    webhook_rotation_s: float = 86400.0
    #: Deadlines (SPEC "Deadlines and escalations"): how long the addressees
    #: of an urgent message have to acknowledge it, and an assignee to accept
    #: a task, before it escalates; seconds between looks at the due-time
    #: index; how long the node running the rules holds its lease unless
    #: renewed (Redis mode: another node takes over after it).
    deadline_urgent_ack_s: float = 300.0
    deadline_task_ack_s: float = 600.0
    deadline_poll_s: float = 1.0
    deadline_lease_s: float = 15.0
    #: Seconds between sweeps that sign and anchor every moved chain head
    #: (server/services/anchors.py); 0: only at exports and shutdown.
    anchor_interval_s: float = 300.0
    #: Web Push (SPEC section 26). The VAPID private key (PEM, or raw
    #: base64url); empty: generated once into data_dir (embedded) or Redis.
    #: The contact the push services see in every request's JWT (``sub``).
    #: Push services a browser's subscription may name: host names (their
    #: subdomains too), or origins (``https://push.example:8443``); ``*``:
    #: any https one. Seconds a push service keeps an undelivered push.
    #: Redis mode: seconds before another node sends the pushes of a dead one.
    vapid_private_key: str = ""
    vapid_subject: str = "mailto:admin@localhost"
    push_services: tuple[str, ...] = (
        "fcm.googleapis.com",
        "push.services.mozilla.com",
        "push.apple.com",
        "notify.windows.com",
    )
    push_ttl_s: int = 3600
    push_lease_s: float = 15.0
    #: Retention (SPEC section 25): where archive files of closed incidents
    #: are written (empty: ``<data_dir>/archive``; in Redis mode give a
    #: directory every node sees the same, e.g. a shared mount); seconds
    #: between runs of the retention job (0: only ``liaison retention run``);
    #: how long the node running it holds its lease unless renewed.
    archive_dir: str = ""
    retention_poll_s: float = 3600.0
    retention_lease_s: float = 900.0

    def __post_init__(self) -> None:
        if self.sqlite_synchronous.upper() not in ("FULL", "EXTRA", "NORMAL"):
            raise ValueError("LIAISON_SQLITE_SYNCHRONOUS must be FULL, EXTRA or NORMAL")
        if self.log_format not in ("text", "json"):
            raise ValueError("LIAISON_LOG_FORMAT must be text or json")
        if self.redis_max_connections < 2:
            raise ValueError("LIAISON_REDIS_MAX_CONNECTIONS must be at least 2")
        if self.redis_min_replicas < 0 or not 1 <= self.redis_replica_timeout_ms <= 4000:
            # WAIT 0 blocks forever (a hung post); past 4 s the 5 s socket
            # timeout of the command connections would cut the wait short.
            raise ValueError(
                "LIAISON_REDIS_MIN_REPLICAS must be >= 0, "
                "LIAISON_REDIS_REPLICA_TIMEOUT_MS between 1 and 4000"
            )
        redis_connect.validate(self.redis_url)
        if self.projection_cache < 1:
            raise ValueError("LIAISON_PROJECTION_CACHE must be at least 1")
        if self.gc_young < 0:
            raise ValueError("LIAISON_GC_YOUNG must be at least 0 (0: CPython's defaults)")
        if self.projection_messages < 0:
            raise ValueError("LIAISON_PROJECTION_MESSAGES must be at least 0 (0: no bound)")
        if not 60 <= self.token_ttl_s <= self.idle_timeout_s <= self.refresh_ttl_s:
            raise ValueError(
                "need 60 <= LIAISON_TOKEN_TTL_S <= LIAISON_IDLE_TIMEOUT_S <= LIAISON_REFRESH_TTL_S"
            )
        if self.max_pending_bytes < 64 * 1024:
            raise ValueError("LIAISON_MAX_PENDING_BYTES must be at least 65536")
        if min(self.login_max_failures, self.login_address_max_failures) < 1:
            raise ValueError("LIAISON_LOGIN_*MAX_FAILURES must be at least 1")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError as exc:
                raise ValueError(f"LIAISON_TRUSTED_PROXIES: {proxy!r} is not an address") from exc
        if self.http_header_timeout_s <= 0:
            raise ValueError("LIAISON_HTTP_HEADER_TIMEOUT_S must be positive")
        if self.login_window_s <= 0:
            raise ValueError("LIAISON_LOGIN_WINDOW_S must be positive")
        if (
            min(
                self.max_unauthenticated_sessions,
                self.max_unauthenticated_per_address,
                self.connect_rate_per_s,
                self.max_connections_per_user,
            )
            < 0
        ):
            raise ValueError("LIAISON_MAX_*, LIAISON_CONNECT_RATE_PER_S must not be negative")
        if self.connect_deadline_s <= 0:
            raise ValueError("LIAISON_CONNECT_DEADLINE_S must be positive")
        if self.connect_rate_per_s > 0 and self.connect_burst < 1:
            raise ValueError("LIAISON_CONNECT_BURST must be at least 1")
        if (
            min(
                self.webhook_poll_s,
                self.webhook_timeout_s,
                self.webhook_retry_base_s,
                self.webhook_disable_after_s,
                self.webhook_lease_s,
            )
            <= 0
            or self.webhook_retry_cap_s < self.webhook_retry_base_s
        ):
            raise ValueError("LIAISON_WEBHOOK_* must be positive, the retry cap at least the base")
        if (
            min(
                self.deadline_urgent_ack_s,
                self.deadline_task_ack_s,
                self.deadline_poll_s,
                self.deadline_lease_s,
            )
            <= 0
        ):
            raise ValueError("LIAISON_DEADLINE_* must be positive")
        if not self.vapid_subject.startswith(("mailto:", "https://")):
            raise ValueError("LIAISON_VAPID_SUBJECT must be a mailto: or https:// URL")
        if self.push_ttl_s < 0:
            raise ValueError("LIAISON_PUSH_TTL_S must not be negative")
        if self.push_lease_s <= 0:
            raise ValueError("LIAISON_PUSH_LEASE_S must be positive")
        if self.retention_poll_s < 0 or self.retention_lease_s <= 0:
            raise ValueError("LIAISON_RETENTION_POLL_S must be >= 0, LIAISON_RETENTION_LEASE_S > 0")

    @property
    def archive_path(self) -> Path:
        """The archive directory: ``archive_dir``, else ``<data_dir>/archive``."""
        return Path(self.archive_dir) if self.archive_dir else self.data_dir / "archive"

    @classmethod
    def from_env(
        cls, overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None
    ) -> Settings:
        """Defaults, then LIAISON_<NAME> variables, then explicit overrides (flags)."""
        env = os.environ if environ is None else environ
        overrides = overrides or {}
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"LIAISON_{f.name.upper()}")
            if raw is not None:
                values[f.name] = _convert(f.name, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    @property
    def origins(self) -> list[str] | str:
        if self.allowed_origins == ("*",):
            return "*"
        if self.allowed_origins:
            return list(self.allowed_origins)
        hosts = (
            {self.host, "localhost", "127.0.0.1"}
            if self.host
            in (
                "127.0.0.1",
                "localhost",
                "0.0.0.0",  # noqa: S104
            )
            else {self.host}
        )
        return sorted(f"http://{h}:{self.port}" for h in hosts)


def _convert(name: str, raw: str) -> Any:
    default = Settings.__dataclass_fields__[name].default
    if isinstance(default, bool):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, Path):
        return Path(raw)
    if isinstance(default, tuple):
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    return raw


#: One line per setting for ``liaison --help``; README.md "Settings" says more.
#: tests/integration/test_cli.py checks that every field has one.
HELP: dict[str, str] = {
    "host": "interface to listen on (0.0.0.0: every interface)",
    "port": "port to listen on",
    "redis_url": "redis://host:port/db or redis+sentinel://h:26379,h2:26379/master/db; "
    "empty: SQLite",
    "node_id": "this node's name in probes, presence and logs; empty: hostname-pid",
    "workers": "processes on this host sharing the port, each a node (Redis mode); 0: one per core",
    "presence_ttl_s": "seconds a dead node's users still show as online (Redis mode)",
    "redis_max_connections": "Redis connections per node; callers wait up to 5 s for a free one",
    "redis_min_replicas": "replicas that must confirm an append (WAIT) before its ack; 0: none",
    "redis_replica_timeout_ms": "ms an append waits for its replicas, then outcome_unknown",
    "projection_cache": "incident states kept in memory, least recently used out first",
    "projection_messages": "newest messages each kept incident state holds; older ones are "
    "read from the log; 0: all",
    "gc_young": "allocations between young garbage collections, startup objects frozen; "
    "0: CPython's defaults",
    "data_dir": "SQLite files, the token secret and the first admin password (embedded mode)",
    "secret": "HMAC key signing login tokens, shared by every node; empty: generated",
    "token_ttl_s": "lifetime of an access token, in seconds; clients refresh it silently",
    "refresh_ttl_s": "longest a session lasts after its login, in seconds, however often refreshed",
    "idle_timeout_s": "a session not refreshed for this many seconds ends",
    "allowed_origins": "comma-separated browser origins; empty: the server's own http://host:port",
    "admin_password": "password for the first 'admin' user; empty: generated on first start",
    "sqlite_synchronous": "FULL survives a power cut; NORMAL only a crash of the process",
    "max_pending_bytes": "bytes queued for one connection before it is cut off as too slow",
    "ping_interval_s": "seconds between heartbeats; a dead peer is noticed after interval+timeout",
    "ping_timeout_s": "seconds a heartbeat may take before the client counts as gone",
    "log_level": "DEBUG, INFO, WARNING or ERROR",
    "log_format": "text (human lines) or json (one JSON object per line, for a collector)",
    "metrics_token": "bearer token /metrics requires; empty: open like /healthz (restrict it)",
    "demo": "seed demo organisations, users and an incident at start (idempotent)",
    "tile_url": "map tile URL template ({z}/{x}/{y}) for the browser; empty: a plain grid",
    "login_max_failures": "failed logins per username in the window before rate_limited",
    "login_address_max_failures": "failed logins per client address in the window",
    "login_window_s": "seconds failed logins are remembered (back-off 1 s doubling, at most this)",
    "trusted_proxies": "proxy addresses or CIDRs (comma-separated) whose X-Forwarded-For counts",
    "http_header_timeout_s": "seconds to send request headers, or stay idle, before a hang-up",
    "max_unauthenticated_sessions": "sessions waiting to authenticate, in all; 0: no cap",
    "max_unauthenticated_per_address": "sessions waiting to authenticate per address; 0: no cap",
    "connect_deadline_s": "seconds a new connection has to authenticate before it is closed",
    "connect_rate_per_s": "new connections per second per address (token bucket); 0: no limit",
    "connect_burst": "new connections per address allowed at once, above the rate",
    "max_connections_per_user": "live connections per user; the next is refused; 0: no cap",
    "limit_loopback_connects": "apply the per-address connection limits to 127.0.0.1/::1 too",
    "webhook_poll_s": "seconds between looks at the log for events to deliver to webhooks",
    "webhook_timeout_s": "seconds a webhook receiver has to answer one delivery",
    "webhook_retry_base_s": "first retry delay of a failed webhook delivery (doubles each time)",
    "webhook_retry_cap_s": "longest delay between two retries of a webhook delivery",
    "webhook_disable_after_s": "a webhook failing this many seconds without success is disabled",
    "webhook_lease_s": "seconds a node's webhook delivery lease outlives it (Redis mode)",
    "webhook_rotation_s": "seconds the old webhook secret stays valid after a rotation",
    "deadline_urgent_ack_s": "seconds to acknowledge an urgent message before it escalates",
    "deadline_task_ack_s": "seconds to accept an assigned task before it escalates",
    "deadline_poll_s": "seconds between looks at the deadlines due (the rules' resolution)",
    "deadline_lease_s": "seconds a dead node keeps the deadline rules before another runs them",
    "anchor_interval_s": "seconds between anchoring signed chain heads; 0: only at export",
    "vapid_private_key": "Web Push VAPID private key (PEM or base64url); empty: generated once",
    "vapid_subject": "contact (mailto: or https:) push services see in every Web Push request",
    "push_services": "push services subscriptions may use: hosts or origins, comma-separated",
    "push_ttl_s": "seconds a push service keeps an undelivered push (RFC 8030 TTL)",
    "push_lease_s": "seconds a dead node keeps sending the pushes before another takes over",
    "archive_dir": "where archives of closed incidents go; empty: <data_dir>/archive",
    "retention_poll_s": "seconds between runs of the retention job; 0: only when asked",
    "retention_lease_s": "seconds a dead node keeps the retention job before another runs it",
}


def human_default(name: str) -> str:
    """A setting's default as one would write it in an environment file."""
    value = Settings.__dataclass_fields__[name].default
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, Path):
        return str(value) if value.is_absolute() else f"./{value}"
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
