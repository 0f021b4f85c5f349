"""The composition root: ``create_app(settings)`` builds and wires every component.

Each component's start and stop is registered in aiohttp's ``cleanup_ctx``, in
dependency order, so teardown runs in reverse even when start-up fails half way.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

from aiohttp import web

from protocol.limits import LIMITS
from server import gc_tuning
from server.auth import TokenSigner
from server.backends import Backends, build_backends, node_id
from server.domain.deadlines import awaits_ack
from server.fanout.base import Broker
from server.logs import LoggedAudit, event
from server.metrics import Metrics
from server.resources import client_dist
from server.services.accounts import Accounts, SessionGuard, SessionPolicy
from server.services.admin import ensure_admin, seed_demo
from server.services.api_keys import ApiKeys
from server.services.capacity import CapacityService
from server.services.commands import CommandService
from server.services.deadlines import DeadlineRunner, RunnerConfig, build_deadlines
from server.services.export import build_exports
from server.services.feed import FeedService
from server.services.hub import Hub
from server.services.projections import Projections
from server.services.push_runtime import PushRuntime
from server.services.read_audit import RestrictedReadAudit
from server.services.ref_claims import ReferenceClaims
from server.services.sharing_admin import SharingAdmin
from server.services.sharing_rules import SharingRules
from server.services.webhook_delivery import WebhookDispatcher, build_webhooks
from server.settings import Settings
from server.storage.base import EventLog
from server.storage.directory import Directory
from server.throttle import ThrottleRule
from server.transport.admission import build_admission
from server.transport.api_headers import add_api_headers
from server.transport.feed_socket import FeedSockets
from server.transport.gateway import Gateway
from server.transport.http_log import quiet_bad_http_requests
from server.transport.login_guard import LoginGuard
from server.transport.rest import RestApi, errors_middleware, keys_middleware
from server.transport.rest_capacity import CapacityRoutes
from server.transport.rest_export import ExportRoutes, exports_ctx
from server.transport.rest_feed import FeedRoutes
from server.transport.rest_ops import OpsRoutes
from server.transport.rest_push import PushRoutes
from server.transport.rest_retention import install_retention
from server.transport.rest_standards import StandardsRoutes
from server.transport.rest_webhooks import WebhookRoutes
from server.transport.sio_seam import install_engineio_hooks
from server.transport.web_client import add_web_client_routes

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Components:
    settings: Settings
    directory: Directory
    log: EventLog
    broker: Broker
    projections: Projections
    commands: CommandService
    hub: Hub
    gateway: Gateway
    signer: TokenSigner
    accounts: Accounts
    #: The agreements in force (AgreementsView), for the read paths.
    sharing: SharingRules
    #: Outbound webhooks: this node's delivery (started after the bootstrap).
    deliveries: WebhookDispatcher | None = None
    #: The deadline rules (run by the node holding their lease).
    deadlines: DeadlineRunner | None = None
    #: Web Push (SPEC section 26): subscriptions and the dispatcher.
    push: PushRuntime | None = None
    #: The capacity board (SPEC 27.2).
    capacity: CapacityService | None = None


COMPONENTS = web.AppKey("components", Components)


def create_app(settings: Settings) -> web.Application:
    install_engineio_hooks()
    quiet_bad_http_requests()
    app = web.Application(middlewares=[errors_middleware], client_max_size=1024 * 1024)
    metrics = Metrics()
    backends = build_backends(settings, metrics)
    backends.audit = LoggedAudit(backends.audit)  # logins and admin actions: a line each
    directory = Directory(backends.directory, refresh_s=backends.directory_refresh_s)
    projections = Projections(
        backends.log,
        backends.broker,
        settings.projection_cache,
        settings.projection_messages,
        awaits_ack(RunnerConfig.from_settings(settings).rules, directory),
    )
    sharing = SharingRules(backends.agreements)
    claims = ReferenceClaims(
        backends.leases, node_id(settings) if settings.redis_url else "embedded"
    )
    commands = CommandService(backends.log, projections, directory, sharing, claims)
    signer = TokenSigner(settings.token_ttl_s)
    guard = SessionGuard(backends.sessions, directory, settings.token_ttl_s)
    accounts = Accounts(
        directory=directory,
        store=backends.sessions,
        audit=backends.audit,
        signer=signer,
        guard=guard,
        policy=SessionPolicy(settings.refresh_ttl_s, settings.idle_timeout_s),
    )
    reads = RestrictedReadAudit(accounts.record)
    hub = Hub(backends.log, backends.broker, projections, backends.presence, sharing, reads)
    api_keys = ApiKeys(backends.api_keys, accounts)  # checked by accounts from now on
    app.middlewares.append(keys_middleware(accounts))  # inside errors_middleware
    admission = build_admission(settings, backends.throttle, signer)
    gateway = Gateway(
        admission=admission,
        commands=commands,
        hub=hub,
        accounts=accounts,
        limits=LIMITS,
        allowed_origins=settings.origins,
        max_pending_bytes=settings.max_pending_bytes,
        ping_interval=settings.ping_interval_s,
        ping_timeout=settings.ping_timeout_s,
    )
    components = Components(
        settings,
        directory,
        backends.log,
        backends.broker,
        projections,
        commands,
        hub,
        gateway,
        signer,
        accounts,
        sharing,
    )
    app[COMPONENTS] = components
    gateway.sio.attach(app)
    rest = RestApi(
        log=backends.log,
        projections=projections,
        commands=commands,
        directory=directory,
        accounts=accounts,
        limits=LIMITS,
        presence=backends.presence,
        health=backends.health,
        login_guard=LoginGuard(
            directory,
            backends.throttle,
            per_user=ThrottleRule(settings.login_max_failures, settings.login_window_s),
            per_address=ThrottleRule(settings.login_address_max_failures, settings.login_window_s),
            trusted_proxies=settings.trusted_proxies,
        ),
        sharing=sharing,
        api_keys=api_keys,
    )
    app.add_routes(rest.routes())
    app.add_routes(StandardsRoutes(rest).routes())
    feed = _feed(backends, projections, sharing, reads, gateway)
    app.add_routes(FeedRoutes(rest, feed).routes())
    if backends.push is not None and backends.vapid is not None:
        components.push = PushRuntime(
            settings=settings,
            store=backends.push,
            keys=backends.vapid,
            feed=feed,
            accounts=accounts,
            leases=backends.leases,
            metrics=metrics,
        )
        app.add_routes(PushRoutes(rest, components.push).routes())
    assert backends.capacity is not None
    components.capacity = CapacityService(backends.capacity, directory)
    app.add_routes(CapacityRoutes(rest, components.capacity).routes())
    hub.metrics = gateway.metrics = admission.metrics = rest.login_guard.metrics = metrics
    _watch(metrics, backends, gateway, hub)
    ready = partial(_not_ready, backends, gateway)
    app.add_routes(OpsRoutes(ready, metrics, settings.metrics_token).routes())
    if backends.webhooks is not None:
        webhooks, components.deliveries = build_webhooks(
            settings, backends.webhooks, backends.log, projections, sharing, accounts.record
        )
        components.deliveries.watch(metrics)
        app.add_routes(WebhookRoutes(rest, webhooks).routes())
    components.deadlines = build_deadlines(
        settings, backends.log, projections, directory, backends.leases
    )
    anchorer, exporter = build_exports(settings, backends, projections, sharing, accounts.record)
    exports = ExportRoutes(rest, exporter, anchorer)
    app.add_routes(exports.routes())
    add_api_headers(app)
    _add_client_routes(app)
    app.cleanup_ctx.append(partial(_gc_pauses_ctx, metrics))
    app.cleanup_ctx.append(partial(_storage_ctx, backends, components))
    app.cleanup_ctx.append(partial(exports_ctx, anchorer))  # after storage, closed before it
    install_retention(  # its job runs after the anchorer started
        app, settings, backends, rest, projections, anchorer, exports, sharing, accounts.record
    )

    async def send_clients_away(_: web.Application) -> None:
        await gateway.shut_down()

    # on_shutdown runs before aiohttp waits for open requests (WebSockets
    # included); cleanup_ctx teardown runs after, once no request is left.
    app.on_shutdown.append(send_clients_away)

    async def end_feeds(_: web.Application) -> None:
        await feed.close()
        if gateway.feeds is not None:
            await gateway.feeds.close()

    app.on_shutdown.append(end_feeds)
    return app


def _feed(
    backends: Backends,
    projections: Projections,
    sharing: SharingRules,
    reads: RestrictedReadAudit,
    gateway: Gateway,
) -> FeedService:
    """The cross-incident feed, for REST and for the gateway's ``feed.subscribe``."""
    assert backends.feed is not None
    feed = FeedService(
        feed=backends.feed,
        log=backends.log,
        projections=projections,
        rules=sharing,
        signal=backends.feed_signal,
        reads=reads,
    )

    async def emit(name: str, data: object, sid: str) -> None:
        await gateway.sio.emit(name, data, to=sid)

    gateway.feeds = FeedSockets(feed, emit)
    return feed


async def _gc_pauses_ctx(metrics: Metrics, _: web.Application) -> AsyncIterator[None]:
    """Every garbage collection is timed while the node runs (liaison_gc_pause_seconds)."""
    timer = gc_tuning.PauseTimer(metrics.gc_paused)
    timer.install()
    try:
        yield
    finally:
        timer.remove()


async def _storage_ctx(
    backends: Backends, c: Components, _: web.Application
) -> AsyncIterator[None]:
    """Backends up, then the directory, the secret and the first users; down in reverse."""
    await backends.start()
    try:
        await c.directory.start()
        try:
            await c.sharing.start()
            c.signer.secret = await backends.secret.load()
            await c.accounts.guard.start()
            await _bootstrap(c)
            if c.deliveries is not None:
                await c.deliveries.start()
            if c.deadlines is not None:
                await c.deadlines.start()
            if c.push is not None:
                await c.push.start()
            yield
        finally:
            if c.push is not None:
                await c.push.close()
            if c.deadlines is not None:
                await c.deadlines.close()
            if c.deliveries is not None:
                await c.deliveries.close()
            await c.gateway.close()
            await c.hub.close()
            await c.sharing.close()
            if c.accounts.keys is not None:
                await c.accounts.keys.close()
            await c.directory.close()
    finally:
        event(
            log,
            logging.INFO,
            "shutdown.storage",
            "shutdown: writing what is queued and closing the event log",
        )
        await backends.close()
        event(
            log,
            logging.INFO,
            "shutdown.storage_closed",
            "shutdown: storage closed%s",
            _released(c.settings),
        )


def _not_ready(backends: Backends, gateway: Gateway) -> list[str]:
    return ["shutting_down"] if gateway.closing else backends.not_ready()


def _watch(metrics: Metrics, backends: Backends, gateway: Gateway, hub: Hub) -> None:
    """The node's connections and follows, and its backends' health, read at scrape."""
    metrics.watch("liaison_connections", "Live Socket.IO connections.", gateway.sessions.__len__)
    metrics.watch("liaison_follows", "Follows (connection, incident).", lambda: hub.counts()[1])
    metrics.watch("liaison_followed_incidents", "Incidents followed here.", lambda: hub.counts()[0])
    metrics.watch(
        "liaison_gc_frozen_objects",
        "Objects frozen out of the garbage collector's passes at startup (LIAISON_GC_YOUNG).",
        gc.get_freeze_count,
    )
    metrics.watch(
        "liaison_gc_young_threshold",
        "Net allocations between young-generation collections.",
        lambda: gc.get_threshold()[0],
    )
    backends.watch(metrics)


def _released(settings: Settings) -> str:
    return "" if settings.redis_url else f"; {settings.data_dir} is free for another process"


async def _bootstrap(c: Components) -> None:
    generated = await ensure_admin(c.directory, c.settings.admin_password)
    if generated:
        # Printed on the first start only, never logged; with the embedded
        # backend also kept in a file only this user can read, because a line
        # in the middle of `make run` or the journal is easily lost.
        kept = "" if c.settings.redis_url else _keep_admin_password(c.settings, generated)
        print(f"\n  Created user 'admin' with generated password: {generated}{kept}\n", flush=True)
    sharing = SharingAdmin(c.sharing, c.directory, c.accounts.audit)
    if c.settings.demo and await seed_demo(c.directory, c.commands, c.projections, sharing):
        lead = c.directory.user("u_shelter-lead")
        if c.capacity is not None and lead is not None:
            await c.capacity.seed_demo(lead)
        print(
            "  Demo data seeded: users dispatch, officer, sergeant, outreach, shelter-lead,"
            " shelter-super; password 'liaison-demo'. The bot cad-bot uses an API key:"
            " `liaison key create cad-bot`.",
            flush=True,
        )


#: The generated password of the first admin, in the data dir (mode 0600).
ADMIN_PASSWORD_FILE = "initial-admin-password"  # noqa: S105 - a file name


def _keep_admin_password(settings: Settings, password: str) -> str:
    """Write the generated admin password next to the data; say where, or why not."""
    path = settings.data_dir / ADMIN_PASSWORD_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(password + "\n")
        path.chmod(0o600)  # also if the file already existed with other modes
    except OSError as exc:
        log.warning("could not keep the admin password in %s: %s", path, exc)
        return ""
    return f"\n  (also in {path.resolve()}, readable only by this user)"


def _add_client_routes(app: web.Application) -> None:
    """Serve the browser client if it was built, else a short pointer to the API."""
    dist = client_dist()
    if dist is not None:
        add_web_client_routes(app, dist, app[COMPONENTS].settings.tile_url)
        return

    async def root(_: web.Request) -> web.StreamResponse:
        return web.Response(
            text="Liaison server is running. REST API under /api/v1, Socket.IO at /socket.io/."
            " (The browser client is not built: run `make client`.)",
            content_type="text/plain",
        )

    app.router.add_get("/", root)
