"""The audit log in Redis (see audit.py for the contract).

Records are a list (index = seq - 1); the head key holds "<seq> <hash>".
The hash needs sha256, which Redis scripts lack, so an append is an
optimistic transaction: WATCH the head, seal the record here, MULTI/EXEC;
a concurrent append by another node makes EXEC fail and this one retries.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError, WatchError

from server.domain.chain import GENESIS
from server.errors import StorageUnavailable
from server.storage import redis_keys as keys
from server.storage.audit import AuditEntry, AuditRecord, seal

#: Concurrent appends one append gives way to before it reports unavailable.
MAX_RETRIES = 50


class RedisAuditLog:
    def __init__(
        self, client: aioredis.Redis, log_key: str = keys.AUDIT_LOG, head_key: str = keys.AUDIT_HEAD
    ) -> None:
        """``log_key``/``head_key``: another log of the same kind (the anchor log)."""
        self._redis, self._log_key, self._head_key = client, log_key, head_key

    async def open(self) -> None:
        return None

    def _transaction(self) -> Any:
        """A MULTI/EXEC pipeline (typed Any: redis-py's pipeline stubs are partial)."""
        return self._redis.pipeline(transaction=True)

    async def append(self, entry: AuditEntry, ts_ms: int) -> AuditRecord:
        try:
            for _ in range(MAX_RETRIES):
                async with self._transaction() as pipe:
                    try:
                        await pipe.watch(self._head_key)
                        head: Any = await pipe.get(self._head_key)
                        seq, prev = head.decode().split(" ") if head else ("0", GENESIS)
                        record = seal(entry, int(seq) + 1, ts_ms, prev)
                        pipe.multi()
                        pipe.rpush(self._log_key, orjson.dumps(asdict(record)))
                        pipe.set(self._head_key, f"{record.seq} {record.hash}")
                        await pipe.execute()
                        return record
                    except WatchError:
                        continue
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        raise StorageUnavailable("too much contention on the audit log")

    async def read(self, after_seq: int, limit: int) -> list[AuditRecord]:
        if limit <= 0:
            return []
        try:
            raw: Any = await self._redis.lrange(self._log_key, after_seq, after_seq + limit - 1)
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        return [AuditRecord(**orjson.loads(item)) for item in raw]

    async def close(self) -> None:
        return None
