"""The backend set, built from Settings: the one place that knows the implementations.

    settings.redis_url empty                 settings.redis_url set
    ─────────────────────────                ─────────────────────────────────────
    log        SqliteEventLog (data_dir)     RedisEventLog      ┐ one command client
    broker     MemoryBroker                  RedisBroker        │ per node (shared,
    presence   MemoryPresence                RedisPresence      │ closed last); the
    directory  SqliteDirectoryStorage        RedisDirectoryStorage│ broker has its own
    secret     FileSecret (data_dir)         RedisSecret        │ pub/sub connection
    sessions   SqliteSessionStore (data_dir) RedisSessionStore  │ (the session feed
    audit      SqliteAuditLog (data_dir)     RedisAuditLog      │ has one too, and
    agreements SqliteAgreementStore          RedisAgreementStore┘ the agreements feed)
    api_keys   SqliteApiKeyStore (sessions)  RedisApiKeyStore   (announced on the session feed)
    (LIAISON_SECRET set: FixedSecret on both)

The log is built with ``broker.publish`` as its ``deliver``: the log hands
every committed run to the broker before it acknowledges it, and storage
never imports fan-out. The Redis broker fills gaps through a ``RedisLogReader``
of its own, so nothing here is circular.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.domain.events import StoredEvent
from server.fanout.base import Broker, Presence
from server.fanout.feed_signal import FeedSignal, signalling
from server.fanout.memory import MemoryBroker
from server.fanout.presence import MemoryPresence, RedisPresence
from server.fanout.redis import RedisBroker
from server.metrics import Metrics
from server.settings import Settings
from server.storage import redis_keys as keys
from server.storage.agreements import AgreementStore, SqliteAgreementStore
from server.storage.api_keys import ApiKeyStore, SqliteApiKeyStore
from server.storage.audit import AuditLog, SqliteAuditLog
from server.storage.base import Deliver, EventLog
from server.storage.capacity import CapacityLog, SqliteCapacityLog
from server.storage.directory import DirectoryStorage, SqliteDirectoryStorage
from server.storage.feed import FeedLog, SqliteFeedLog
from server.storage.leases import Leases, MemoryLeases
from server.storage.push import PushStore, SqlitePushStore
from server.storage.redis_agreements import RedisAgreementStore
from server.storage.redis_api_keys import RedisApiKeyStore
from server.storage.redis_audit import RedisAuditLog
from server.storage.redis_capacity import RedisCapacityLog
from server.storage.redis_directory import RedisDirectoryStorage
from server.storage.redis_feed import RedisFeedLog
from server.storage.redis_leases import RedisLeases
from server.storage.redis_log import RedisConfig, RedisEventLog, RedisLogReader, connect
from server.storage.redis_push import RedisPushStore
from server.storage.redis_sessions import RedisSessionStore
from server.storage.redis_webhooks import RedisWebhookStore
from server.storage.retention import RedisRetentionStore, RetentionStore, SqliteRetentionStore
from server.storage.secret import FileSecret, FixedSecret, RedisSecret, SecretStore
from server.storage.sessions import SessionStore, SqliteSessionStore
from server.storage.sqlite import SqliteConfig, SqliteEventLog
from server.storage.vapid import FileVapidKey, FixedVapidKey, RedisVapidKey, VapidKeyStore
from server.storage.webhooks import SqliteWebhookStore, WebhookStore
from server.throttle import LoginThrottle, MemoryLoginThrottle, RedisLoginThrottle

log = logging.getLogger(__name__)

#: How often the directory storage's change token is compared (one GET or one
#: ``PRAGMA data_version``), so organisations and users added by the CLI or
#: another node appear within a second; the rows are re-read only when it moved.
DIRECTORY_REFRESH_S = 1.0
#: The embedded session store and audit log, in the data dir.
SESSIONS_DB = "sessions.db"
AUDIT_DB = "audit.db"
#: The embedded sharing agreements (opened and closed by SharingRules).
AGREEMENTS_DB = "agreements.db"
#: The embedded webhook subscriptions (opened and closed by the webhook service).
WEBHOOKS_DB = "webhooks.db"
#: The embedded anchor log of signed chain heads, and the node's signing key (0600).
ANCHORS_DB = "anchors.db"
RETENTION_DB = "retention.db"
NODE_KEY_FILE = "node-key"
#: The embedded push subscriptions, and the generated VAPID key (0600).
PUSH_DB = "push.db"
VAPID_KEY_FILE = "vapid-private.pem"
#: The embedded capacity log (SPEC 27.2).
CAPACITY_DB = "capacity.db"


@dataclass(slots=True)
class Backends:
    """Every storage and fan-out part of one node, and their common lifecycle.

    ``start`` and ``close`` run the log, broker and presence in dependency
    order; the directory storage is opened and closed by its ``Directory``.
    """

    log: EventLog
    broker: Broker
    presence: Presence
    directory: DirectoryStorage
    #: Seconds between checks of the directory's change token; 0 = only on a miss.
    directory_refresh_s: float
    secret: SecretStore
    sessions: SessionStore
    audit: AuditLog
    agreements: AgreementStore

    #: Bots' API keys (announced on the ``sessions`` feed).
    api_keys: ApiKeyStore
    #: What the parts share (a Redis client), closed after them.
    shared: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    #: Failed-login counts: this node's memory, or shared in Redis.
    throttle: LoginThrottle = field(default_factory=MemoryLoginThrottle)
    #: Outbound webhook subscriptions (opened and closed by their service).
    webhooks: WebhookStore | None = None
    #: Which node runs the deadline rules: this process, or shared in Redis.
    leases: Leases = field(default_factory=MemoryLeases)
    #: The anchor log of signed chain heads (server/services/anchors.py).
    anchors: AuditLog | None = None
    #: The Ed25519 seed the node signs chain heads with (0600 file, or in Redis).
    node_key: SecretStore | None = None
    #: The cross-incident change feed (written by the log's appends) and the
    #: wake-up its readers wait on (set by every run this node commits).
    feed: FeedLog | None = None
    feed_signal: FeedSignal = field(default_factory=FeedSignal)
    #: Web Push subscriptions and the VAPID key (opened and closed by the push service).
    push: PushStore | None = None
    vapid: VapidKeyStore | None = None
    #: Retention policies and legal holds (server/services/retention.py).
    retention: RetentionStore | None = None
    #: Organisations' capacity changes (SPEC 27.2): a small log of its own.
    capacity: CapacityLog | None = None

    async def start(self) -> None:
        """Broker first (a log's first commit may deliver), then log, then presence.

        If one fails, what started is closed again before the error is raised.
        """
        try:
            await self.broker.start()
            await self.log.start()
            if self.feed is not None:
                await self.feed.start()
            await self.presence.start()
            await self.sessions.open()
            await self.audit.open()
            await self.api_keys.open()
            if self.anchors is not None:
                await self.anchors.open()
            if self.retention is not None:
                await self.retention.open()
            if self.capacity is not None:
                await self.capacity.open()
        except BaseException:
            await self.close()  # closing a part that never started is harmless
            raise

    async def close(self) -> None:
        """Presence, then the log (its last commits still deliver), then the broker.

        Every step runs even if one before failed; the first error is raised
        after all of them ran.
        """
        steps = [
            *([self.retention.close] if self.retention is not None else []),
            *([self.capacity.close] if self.capacity is not None else []),
            *([self.anchors.close] if self.anchors is not None else []),
            self.api_keys.close,
            self.audit.close,
            self.sessions.close,
            self.presence.close,
            *([self.feed.close] if self.feed is not None else []),
            self.log.close,
            self.broker.close,
            *self.shared,
        ]
        errors: list[BaseException] = []
        for step in steps:
            try:
                await step()
            except Exception as exc:
                log.exception("closing the backends: %s failed", step)
                errors.append(exc)
        if errors:
            raise errors[0]

    def health(self) -> dict[str, Any]:
        """The log's and the broker's health in one answer, for /healthz."""
        of_log, of_broker = self.log.health(), self.broker.health()
        return {**of_log, **of_broker, "healthy": of_log["healthy"] and of_broker["healthy"]}

    def not_ready(self) -> list[str]:
        """Why this node cannot take and spread writes now; empty when it can (/readyz).

        The writer gave up (group_commit.py ``dead``), the Redis subscriber is
        down (other nodes' events stop arriving), or the revocation feed is
        down (new sessions are refused: fail closed).
        """
        reasons = []
        if not self.log.health()["healthy"]:
            reasons.append("writer_down")
        if not self.broker.health()["healthy"]:
            reasons.append("redis_subscriber_down")
        if not self.sessions.feed_up:
            reasons.append("revocation_feed_down")
        return reasons

    def watch(self, metrics: Metrics) -> None:
        """The backends' health as gauges, read at every scrape."""

        def writer() -> dict[str, Any]:
            of_writer: dict[str, Any] = self.log.health()["writer"]
            return of_writer

        metrics.watch("liaison_writer_up", "1 while the writer runs.", lambda: writer()["healthy"])
        metrics.watch(
            "liaison_writer_queued", "Appends waiting for a commit.", lambda: writer()["queued"]
        )
        metrics.watch(
            "liaison_writer_restarts",
            "Times the writer task was restarted.",
            lambda: writer()["restarts"],
            counter=True,
        )
        metrics.watch(
            "liaison_revocation_feed_up",
            "1 while revocations from other nodes and the CLI arrive.",
            lambda: self.sessions.feed_up,
        )
        if isinstance(self.broker, RedisBroker):
            broker = self.broker
            metrics.watch(
                "liaison_redis_subscriber_up",
                "1 while the Redis pub/sub subscriber answers its probes.",
                lambda: broker.connected.is_set(),
            )
            metrics.watch(
                "liaison_redis_subscriber_reconnects",
                "Times the Redis subscriber came back after it was lost.",
                lambda: max(broker.connections - 1, 0),
                counter=True,
            )


def build_backends(settings: Settings, metrics: Metrics | None = None) -> Backends:
    """SQLite in the data dir by default; Redis when a URL is configured.

    With ``metrics``, the writer reports its commits and the log counts what
    it stores (once per committed run of an incident).
    """
    make = _redis if settings.redis_url else _embedded
    backends = make(settings, metrics)
    if settings.secret:
        backends.secret = FixedSecret(settings.secret)
    if settings.vapid_private_key:
        backends.vapid = FixedVapidKey(settings.vapid_private_key)
    return backends


def node_id(settings: Settings) -> str:
    return settings.node_id or f"{socket.gethostname()}-{os.getpid()}"


def _counted(deliver: Deliver, metrics: Metrics | None) -> Deliver:
    """``deliver`` that also counts the events the log hands it (each is new)."""
    if metrics is None:
        return deliver
    counter = metrics.events_appended

    def counted(incident: str, events: Sequence[StoredEvent]) -> None:
        counter.inc(len(events))
        deliver(incident, events)

    return counted


def _embedded(settings: Settings, metrics: Metrics | None = None) -> Backends:
    broker = MemoryBroker()
    signal = FeedSignal()
    events_db = settings.data_dir / "events.db"
    event_log = SqliteEventLog(
        SqliteConfig(events_db, synchronous=settings.sqlite_synchronous),
        deliver=_counted(signalling(broker.publish, signal), metrics),
    )
    if metrics is not None:
        event_log.writer.observer = metrics.committed
    return Backends(
        log=event_log,
        broker=broker,
        presence=MemoryPresence(),
        directory=SqliteDirectoryStorage(settings.data_dir / "directory.db"),
        directory_refresh_s=DIRECTORY_REFRESH_S,
        secret=FileSecret(settings.data_dir / "secret"),
        sessions=SqliteSessionStore(settings.data_dir / SESSIONS_DB),
        audit=SqliteAuditLog(settings.data_dir / AUDIT_DB),
        agreements=SqliteAgreementStore(settings.data_dir / AGREEMENTS_DB),
        api_keys=SqliteApiKeyStore(settings.data_dir / SESSIONS_DB),
        webhooks=SqliteWebhookStore(settings.data_dir / WEBHOOKS_DB),
        anchors=SqliteAuditLog(settings.data_dir / ANCHORS_DB),
        node_key=FileSecret(settings.data_dir / NODE_KEY_FILE),
        feed=SqliteFeedLog(events_db),
        feed_signal=signal,
        push=SqlitePushStore(settings.data_dir / PUSH_DB),
        vapid=FileVapidKey(settings.data_dir / VAPID_KEY_FILE),
        retention=SqliteRetentionStore(settings.data_dir / RETENTION_DB),
        capacity=SqliteCapacityLog(settings.data_dir / CAPACITY_DB),
    )


def _redis(settings: Settings, metrics: Metrics | None = None) -> Backends:
    node = node_id(settings)
    config = RedisConfig(
        url=settings.redis_url,
        node_id=node,
        max_connections=settings.redis_max_connections,
        min_replicas=settings.redis_min_replicas,
        replica_timeout_ms=settings.redis_replica_timeout_ms,
    )
    client = connect(config)
    broker = RedisBroker(client, config.url, node, RedisLogReader(client))
    signal = FeedSignal()
    event_log = RedisEventLog(
        config, client, deliver=_counted(signalling(broker.publish, signal), metrics)
    )
    if metrics is not None:
        event_log.writer.observer = metrics.committed
    return Backends(
        log=event_log,
        broker=broker,
        presence=RedisPresence(client, node, settings.presence_ttl_s),
        directory=RedisDirectoryStorage(client),
        directory_refresh_s=DIRECTORY_REFRESH_S,
        secret=RedisSecret(client),
        sessions=RedisSessionStore(client, config.url),
        audit=RedisAuditLog(client),
        agreements=RedisAgreementStore(client, config.url),
        api_keys=RedisApiKeyStore(client),
        shared=[client.aclose],
        throttle=RedisLoginThrottle(client),
        webhooks=RedisWebhookStore(client),
        leases=RedisLeases(client),
        anchors=RedisAuditLog(client, keys.ANCHOR_LOG, keys.ANCHOR_HEAD),
        node_key=RedisSecret(client, keys.NODE_KEY),
        feed=RedisFeedLog(client),
        retention=RedisRetentionStore(client),
        feed_signal=signal,
        push=RedisPushStore(client),
        vapid=RedisVapidKey(client),
        capacity=RedisCapacityLog(client),
    )


@dataclass(slots=True)
class AccountBackends:
    """Only what account administration needs (the CLI): no log, no broker.

    The CLI must not open the event log of a data dir a server is using.
    """

    directory: DirectoryStorage
    sessions: SessionStore
    audit: AuditLog
    agreements: AgreementStore
    api_keys: ApiKeyStore
    shared: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    webhooks: WebhookStore | None = None

    async def start(self) -> None:
        await self.sessions.open()
        await self.audit.open()
        await self.api_keys.open()

    async def close(self) -> None:
        for step in (self.api_keys.close, self.audit.close, self.sessions.close, *self.shared):
            try:
                await step()
            except Exception:
                log.exception("closing the account backends: %s failed", step)


def build_account_backends(settings: Settings) -> AccountBackends:
    if not settings.redis_url:
        return AccountBackends(
            SqliteDirectoryStorage(settings.data_dir / "directory.db"),
            SqliteSessionStore(settings.data_dir / SESSIONS_DB),
            SqliteAuditLog(settings.data_dir / AUDIT_DB),
            SqliteAgreementStore(settings.data_dir / AGREEMENTS_DB),
            SqliteApiKeyStore(settings.data_dir / SESSIONS_DB),
            webhooks=SqliteWebhookStore(settings.data_dir / WEBHOOKS_DB),
        )
    config = RedisConfig(url=settings.redis_url, node_id=node_id(settings))
    client = connect(config)
    return AccountBackends(
        RedisDirectoryStorage(client),
        RedisSessionStore(client, config.url),
        RedisAuditLog(client),
        RedisAgreementStore(client, config.url),
        RedisApiKeyStore(client),
        [client.aclose],
        RedisWebhookStore(client),
    )


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[Backends]:
    """Build and start a backend set; close it on exit (tools and tests)."""
    backends = build_backends(settings)
    await backends.start()
    try:
        yield backends
    finally:
        await backends.close()
