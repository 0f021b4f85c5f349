"""ReplicaWait: a batch of appends is acknowledged only once replicas have it.

Redis replicates asynchronously: a master that dies right after it answered
takes the writes its replicas had not received yet with it, and Sentinel
promotes a replica without them. With ``LIAISON_REDIS_MIN_REPLICAS=n`` the
writer ends every batch with one round trip on one connection::

    INCR liaison:replica:mark      (a write of this connection: WAIT needs one)
    WAIT n timeout                  (or WAITAOF local n timeout, Redis >= 7.2)

WAIT waits for the replication offset of the connection's last write; the
offset is global and replicas apply the stream in order, so confirming the
mark confirms every write of the batch before it (other connections' runs
included: they had all returned before the mark was written). Cost: one
round trip per batch, not per post, plus a replica's acknowledgement (the
master asks for it at once when a client waits; measured in
bench/replica_wait.py).

When fewer than ``n`` replicas confirm within the timeout, or the link drops
during the wait, the writes may or may not survive a failover: the batch is
failed with StorageOutcomeUnknown (``outcome_unknown``, retryable) and the
client retries with the same ids: a stored event comes back as the original
(``duplicate: true``), a lost one is stored again. Never a silent ack.

WAITAOF (Redis >= 7.2, detected at start from INFO) also waits for the
replicas' AOF fsync, and for the master's own when its AOF is on. Debian's
Redis 7.0 has only WAIT: a replica that received a write but crashes with
the master before its own fsync can still lose it (two machines at once).
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from server.errors import StorageOutcomeUnknown
from server.storage import redis_keys as keys

log = logging.getLogger(__name__)

#: The first Redis with WAITAOF.
WAITAOF_SINCE = (7, 2)


def _version(text: str) -> tuple[int, int]:
    major, minor, *_ = (text + ".0").split(".")
    return int(major), int(minor)


class ReplicaWait:
    """Confirms that ``replicas`` replicas hold everything written before ``confirm``."""

    def __init__(self, replicas: int, timeout_ms: int) -> None:
        self.replicas = replicas
        self.timeout_ms = timeout_ms
        #: WAITAOF's numlocal (1: the master's own AOF too), or None: plain WAIT.
        self.aof_local: int | None = None

    async def detect(self, client: aioredis.Redis) -> None:
        """Use WAITAOF where the server has it; plain WAIT otherwise (or if unsure).

        The version comes from HELLO, which the ``liaison`` ACL user may run
        (deploy/redis/users.acl.example denies INFO, a @dangerous command);
        without INFO the master's own AOF is not waited for (numlocal 0), which
        ``appendfsync always`` makes moot.
        """
        try:
            hello: Any = await client.execute_command("HELLO")  # type: ignore[no-untyped-call]
            raw = hello.get(b"version", hello.get("version", b"0"))
            version = _version(raw.decode() if isinstance(raw, bytes) else str(raw))
        except (RedisError, OSError, AttributeError, ValueError) as exc:
            log.warning("could not tell whether Redis has WAITAOF (%s); using WAIT", exc)
            version = (0, 0)
        if version >= WAITAOF_SINCE:
            self.aof_local = 0
            try:
                persistence: Any = await client.info("persistence")
                self.aof_local = 1 if int(persistence.get("aof_enabled", 0)) else 0
            except (RedisError, OSError, ValueError):
                pass  # NOPERM under the deploy ACL: replicas' fsync only
        log.info(
            "acknowledging appends after %s for %d replica(s), %d ms at most",
            "WAIT" if self.aof_local is None else "WAITAOF",
            self.replicas,
            self.timeout_ms,
        )

    async def confirm(self, client: aioredis.Redis) -> None:
        """Return once enough replicas confirmed; StorageOutcomeUnknown if they did not."""
        try:
            confirmed = await self._wait(client)
        except ResponseError as exc:
            if self.aof_local is None or "unknown command" not in str(exc).lower():
                raise StorageOutcomeUnknown(f"replicas not confirmed: {exc}") from exc
            log.warning("the Redis master has no WAITAOF (after a failover?); using WAIT")
            self.aof_local = None
            return await self.confirm(client)
        except (RedisError, OSError) as exc:
            raise StorageOutcomeUnknown(f"replicas not confirmed: {exc}") from exc
        if confirmed < self.replicas:
            raise StorageOutcomeUnknown(
                f"{confirmed} of {self.replicas} replicas confirmed within {self.timeout_ms} ms"
            )

    async def _wait(self, client: aioredis.Redis) -> int:
        """The mark and the wait on one connection; the number of replicas that have it."""
        async with client.pipeline(transaction=False) as pipe:
            _ = pipe.incr(keys.REPLICA_MARK)
            if self.aof_local is None:
                _ = pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
            else:
                _ = pipe.execute_command("WAITAOF", self.aof_local, self.replicas, self.timeout_ms)
            replies: list[Any] = await pipe.execute()
        reply = replies[-1]
        # WAIT answers a count; WAITAOF a pair [local fsynced, replicas fsynced].
        if isinstance(reply, list):
            return int(reply[1]) if int(reply[0]) >= (self.aof_local or 0) else 0
        return int(reply)
