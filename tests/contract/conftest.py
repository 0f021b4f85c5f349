"""Backend sets for the contract suites, built by the real builder (server/backends.py).

Each interface's fixture is parametrized over its implementations, with the
implementation's name as the test id; Redis ones run on the session's real
redis-server, flushed per test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from server.backends import Backends, running
from server.settings import Settings
from tests.redis_server import RedisServer


def embedded_settings(data_dir: Path, **overrides: Any) -> Settings:
    return Settings(data_dir=data_dir, sqlite_synchronous="NORMAL", **overrides)


def redis_settings(redis_server: RedisServer, node: str, **overrides: Any) -> Settings:
    return Settings(redis_url=redis_server.url, node_id=node, **overrides)


async def _started(
    request: pytest.FixtureRequest, tmp_path: Path, **overrides: Any
) -> AsyncIterator[Backends]:
    if request.param in ("sqlite", "memory"):
        settings = embedded_settings(tmp_path, **overrides)
    else:
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        redis_server.flush()
        settings = redis_settings(redis_server, "contract", **overrides)
    async with running(settings) as backends:
        yield backends


@pytest.fixture(params=["sqlite", "redis"])
async def log_set(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backends]:
    """A started backend set, for the EventLog contract (ids: the log's backend)."""
    async for backends in _started(request, tmp_path):
        yield backends


@pytest.fixture(params=["memory", "redis"])
async def broker_set(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backends]:
    """A started backend set, for the Broker contract (ids: the broker's backend)."""
    async for backends in _started(request, tmp_path):
        yield backends


#: Presence TTL of the Redis presence tests: short, so a dead node's claims go quickly.
PRESENCE_TTL_S = 1.0


@pytest.fixture(params=["memory", "redis"])
async def presence_set(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backends]:
    async for backends in _started(request, tmp_path, presence_ttl_s=PRESENCE_TTL_S):
        yield backends
