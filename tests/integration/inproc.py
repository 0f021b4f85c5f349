"""A server in the test's own event loop, so a test can look at its parts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from server.app import COMPONENTS, Components, create_app
from server.settings import Settings
from tests.conftest import ADMIN_PASSWORD, free_port


@dataclass(frozen=True)
class InProcess:
    url: str
    parts: Components


@asynccontextmanager
async def serve_inproc(data_dir: Path) -> AsyncIterator[InProcess]:
    """``liaison serve --demo`` on a free loopback port, in this loop, until the block ends."""
    settings = Settings(
        port=free_port(), data_dir=data_dir, admin_password=ADMIN_PASSWORD, demo=True
    )
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.port).start()
    try:
        yield InProcess(f"http://127.0.0.1:{settings.port}", runner.app[COMPONENTS])
    finally:
        await runner.cleanup()
