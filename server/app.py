"""The composition root: ``create_app(settings)`` builds and wires every component.

Each component's start and stop is registered in aiohttp's ``cleanup_ctx``, in
dependency order, so teardown runs in reverse even when start-up fails half way.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from protocol.limits import LIMITS
from server.auth import TokenSigner
from server.fanout.presence import MemoryPresence, Presence, RedisPresence
from server.services.admin import ensure_admin, seed_demo
from server.services.commands import CommandService
from server.services.hub import Hub
from server.services.projections import Projections
from server.settings import Settings
from server.storage import redis_keys
from server.storage.base import EventLog
from server.storage.directory import Directory, SqliteDirectoryStorage
from server.storage.redis_directory import RedisDirectoryStorage
from server.storage.redis_log import RedisConfig, RedisEventLog
from server.storage.sqlite import SqliteConfig, SqliteEventLog
from server.transport.engineio_tuning import tune_engineio
from server.transport.gateway import Gateway
from server.transport.rest import RestApi, errors_middleware
from server.transport.web_client import add_web_client_routes

log = logging.getLogger(__name__)

CLIENT_DIST = Path(__file__).resolve().parent.parent / "client_web" / "dist"


@dataclass(slots=True)
class Components:
    settings: Settings
    directory: Directory
    log: EventLog
    projections: Projections
    commands: CommandService
    hub: Hub
    gateway: Gateway
    signer: TokenSigner


COMPONENTS = web.AppKey("components", Components)


async def _load_secret(settings: Settings, event_log: EventLog) -> bytes:
    """The configured secret, else one shared through Redis, else one in the data dir."""
    if settings.secret:
        return settings.secret.encode()
    if isinstance(event_log, RedisEventLog):
        client = event_log.redis
        await client.set(redis_keys.SECRET, secrets.token_hex(32), nx=True)
        value: Any = await client.get(redis_keys.SECRET)
        return bytes(value)
    path = settings.data_dir / "secret"
    if not path.exists():
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip().encode()


def _backends(settings: Settings) -> tuple[EventLog, Directory]:
    """SQLite in the data dir by default; Redis when a URL is configured."""
    if settings.redis_url:
        node = settings.node_id or f"{socket.gethostname()}-{os.getpid()}"
        redis_log = RedisEventLog(
            RedisConfig(
                url=settings.redis_url,
                node_id=node,
                max_connections=settings.redis_max_connections,
            )
        )
        return redis_log, Directory(RedisDirectoryStorage(redis_log.redis), refresh_s=5.0)
    sqlite_log = SqliteEventLog(
        SqliteConfig(settings.data_dir / "events.db", synchronous=settings.sqlite_synchronous)
    )
    return sqlite_log, Directory(SqliteDirectoryStorage(settings.data_dir / "directory.db"))


def create_app(settings: Settings) -> web.Application:
    tune_engineio()
    app = web.Application(middlewares=[errors_middleware], client_max_size=1024 * 1024)
    event_log, directory = _backends(settings)
    projections = Projections(event_log, settings.projection_cache)
    commands = CommandService(event_log, projections, directory)
    presence: Presence = (
        RedisPresence(event_log.redis, event_log.config.node_id, settings.presence_ttl_s)
        if isinstance(event_log, RedisEventLog)
        else MemoryPresence()
    )
    hub = Hub(event_log, projections, presence)
    signer = TokenSigner(settings.token_ttl_s)
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
        presence=presence,
    )
    app.add_routes(rest.routes())
    _add_client_routes(app)

    async def storage_ctx(_: web.Application) -> AsyncIterator[None]:
        await event_log.start()
        await presence.start()
        try:
            await directory.start()
            try:
                signer.secret = await _load_secret(settings, event_log)
                await _bootstrap(components)
                yield
            finally:
                await gateway.close()
                await hub.close()
                await directory.close()
        finally:
            await presence.close()
            log.info("shutdown: writing what is queued and closing the event log")
            await event_log.close()
            log.info("shutdown: storage closed%s", _released(settings))

    async def send_clients_away(_: web.Application) -> None:
        await gateway.shut_down()

    # on_shutdown runs before aiohttp waits for open requests (WebSockets
    # included); cleanup_ctx teardown runs after, once no request is left.
    app.on_shutdown.append(send_clients_away)
    app.cleanup_ctx.append(storage_ctx)
    return app


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
    if c.settings.demo and await seed_demo(c.directory, c.commands, c.projections):
        print(
            "  Demo data seeded: users dispatch, officer, sergeant, outreach, shelter-lead,"
            " shelter-super, cad-bot; password 'liaison-demo'.",
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
    if (CLIENT_DIST / "index.html").exists():
        add_web_client_routes(app, CLIENT_DIST, app[COMPONENTS].settings.tile_url)
        return

    async def root(_: web.Request) -> web.StreamResponse:
        return web.Response(
            text="Liaison server is running. REST API under /api/v1, Socket.IO at /socket.io/."
            " (The browser client is not built: run `make client`.)",
            content_type="text/plain",
        )

    app.router.add_get("/", root)
