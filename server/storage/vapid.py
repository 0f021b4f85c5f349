"""Where the deployment's VAPID key comes from (RFC 8292): one P-256 key pair.

Every node must sign push requests with the same key, and it must not change
by itself: browsers subscribed with its public key, and a push service
refuses a request signed by another key. A configured key
(LIAISON_VAPID_PRIVATE_KEY) wins; else the embedded backend keeps a
generated one in the data directory (mode 0600), and the Redis backend one
in Redis that the first node to start generates (SET NX).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import redis.asyncio as aioredis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from redis.exceptions import RedisError

from server.errors import StorageUnavailable
from server.storage import redis_keys as keys
from server.storage.files import private_file, write_private


def generate_pem() -> str:
    """A new P-256 private key, PKCS#8 PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


class VapidKeyStore(Protocol):
    async def load(self) -> str:
        """The private key (PEM, or as configured), generated on first use.

        Stable across calls, nodes and restarts. Raises StorageUnavailable if
        it cannot be read.
        """
        ...


class FixedVapidKey:
    """A configured key (PEM, or py-vapid's raw base64url private key)."""

    def __init__(self, value: str) -> None:
        self._value = value

    async def load(self) -> str:
        return self._value


class FileVapidKey:
    """A generated key in a file only this user can read (one process: no race)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def load(self) -> str:
        if not self.path.exists():
            write_private(self.path, generate_pem())
        else:
            private_file(self.path)
        return self.path.read_text()


class RedisVapidKey:
    """A generated key in Redis: SET NX, so the first node's wins."""

    def __init__(self, client: aioredis.Redis, key: str = keys.PUSH_VAPID) -> None:
        self._redis, self._key = client, key

    async def load(self) -> str:
        try:
            await self._redis.set(self._key, generate_pem(), nx=True)
            value: Any = await self._redis.get(self._key)
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(f"the VAPID key: {exc}") from exc
        return bytes(value).decode()
