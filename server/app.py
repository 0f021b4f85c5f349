"""The composition root: ``create_app(settings)`` builds and wires every component.

Each component's start and stop is registered in aiohttp's ``cleanup_ctx``, in
dependency order, so teardown runs in reverse even when start-up fails half way.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from protocol.limits import LIMITS
from server.auth import TokenSigner
from server.services.admin import ensure_admin, seed_demo
from server.services.commands import CommandService
from server.services.hub import Hub
from server.services.projections import Projections
from server.settings import Settings
from server.storage.directory import Directory
from server.storage.sqlite import SqliteConfig, SqliteEventLog
from server.transport.engineio_tuning import disable_websocket_compression
from server.transport.gateway import Gateway
from server.transport.rest import RestApi, errors_middleware

log = logging.getLogger(__name__)

CLIENT_DIST = Path(__file__).resolve().parent.parent / "client_web" / "dist"


@dataclass(slots=True)
class Components:
    settings: Settings
    directory: Directory
    log: SqliteEventLog
    projections: Projections
    commands: CommandService
    hub: Hub
    gateway: Gateway
    signer: TokenSigner


COMPONENTS = web.AppKey("components", Components)


def _load_secret(settings: Settings) -> bytes:
    if settings.secret:
        return settings.secret.encode()
    path = settings.data_dir / "secret"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip().encode()


def create_app(settings: Settings) -> web.Application:
    disable_websocket_compression()
    app = web.Application(middlewares=[errors_middleware], client_max_size=1024 * 1024)
    directory = Directory(settings.data_dir / "directory.db")
    event_log = SqliteEventLog(
        SqliteConfig(settings.data_dir / "events.db", synchronous=settings.sqlite_synchronous)
    )
    projections = Projections(event_log)
    commands = CommandService(event_log, projections, directory)
    hub = Hub(event_log, projections)
    signer = TokenSigner(_load_secret(settings), settings.token_ttl_s)
    gateway = Gateway(
        commands=commands,
        hub=hub,
        directory=directory,
        signer=signer,
        limits=LIMITS,
        allowed_origins=settings.origins,
        max_pending_bytes=settings.max_pending_bytes,
        ping_interval=settings.ping_interval_s,
        ping_timeout=settings.ping_timeout_s,
    )
    components = Components(
        settings, directory, event_log, projections, commands, hub, gateway, signer
    )
    app[COMPONENTS] = components
    gateway.sio.attach(app)
    rest = RestApi(
        log=event_log,
        projections=projections,
        commands=commands,
        directory=directory,
        signer=signer,
        limits=LIMITS,
    )
    app.add_routes(rest.routes())
    _add_client_routes(app)

    async def storage_ctx(_: web.Application) -> AsyncIterator[None]:
        await directory.start()
        await event_log.start()
        try:
            await _bootstrap(components)
            yield
        finally:
            await gateway.close()
            await hub.close()
            await event_log.close()
            await directory.close()

    app.cleanup_ctx.append(storage_ctx)
    return app


async def _bootstrap(c: Components) -> None:
    generated = await ensure_admin(c.directory, c.settings.admin_password)
    if generated:
        # Printed once, on the first start only; never logged again.
        print(f"\n  Created user 'admin' with one-time password: {generated}\n", flush=True)
    if c.settings.demo and await seed_demo(c.directory, c.commands, c.projections):
        print(
            "  Demo data seeded: users dispatch, officer, sergeant, outreach, shelter-lead,"
            " shelter-super, cad-bot; password 'liaison-demo'.",
            flush=True,
        )


def _add_client_routes(app: web.Application) -> None:
    """Serve the browser client if it was built, else a short pointer to the API."""
    index = CLIENT_DIST / "index.html"

    async def root(_: web.Request) -> web.StreamResponse:
        if index.exists():
            return web.FileResponse(index)
        return web.Response(
            text="Liaison server is running. REST API under /api/v1, Socket.IO at /socket.io/.",
            content_type="text/plain",
        )

    app.router.add_get("/", root)
    if CLIENT_DIST.is_dir():
        app.router.add_static("/app/", CLIENT_DIST)
