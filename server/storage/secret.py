"""Where the token-signing secret comes from (``SecretStore``).

Every node of a deployment must sign and check tokens with the same secret.
A configured one (LIAISON_SECRET) wins; else the embedded backend keeps a
generated one in its data directory, and the Redis backend keeps one in Redis
that the first node to start generates.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.errors import StorageUnavailable
from server.storage import redis_keys as keys
from server.storage.files import private_file, write_private


class SecretStore(Protocol):
    async def load(self) -> bytes:
        """The deployment's secret, generated on first use.

        Stable: every later call, on this node or another of the deployment,
        and after restarts, returns the same bytes. Nodes starting at once
        agree on one. Raises StorageUnavailable if it cannot be read.
        """
        ...


class FixedSecret:
    """A configured secret."""

    def __init__(self, value: str) -> None:
        self._value = value.encode()

    async def load(self) -> bytes:
        return self._value


class FileSecret:
    """A generated secret in a file only this user can read (one process: no race)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def load(self) -> bytes:
        if not self.path.exists():
            # Created 0600 with its content: never readable by others, not even
            # between a write and a chmod.
            write_private(self.path, secrets.token_hex(32))
        else:
            private_file(self.path)  # narrow one an older version left open
        return self.path.read_text().strip().encode()


class RedisSecret:
    """A generated secret in Redis: SET NX, so the first node's wins."""

    def __init__(self, client: aioredis.Redis, key: str = keys.SECRET) -> None:
        self._redis, self._key = client, key

    async def load(self) -> bytes:
        try:
            await self._redis.set(self._key, secrets.token_hex(32), nx=True)
            value: Any = await self._redis.get(self._key)
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(f"the shared secret: {exc}") from exc
        return bytes(value)
