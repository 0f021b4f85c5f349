"""EventLog.archive and the tombstones on the Redis backend (server/storage/base.py).

``lua/archive.lua`` removes the incident's own keys (one hash slot) and
writes its tombstone in one step, compared against the head the archive was
written at. What lives in other slots follows right after, idempotently: the
incident orders (global and per organisation), its reference set, its search
terms, and the listing of tombstones. A crash in between leaves index entries
whose summary is gone, which every index read already skips; the next
``archive`` of the incident (the retention job retries it) removes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.domain import summary
from server.errors import LogNotFound, StorageUnavailable
from server.storage import redis_keys as keys
from server.storage.base import Tombstone

ARCHIVE_LUA = (Path(__file__).parent / "lua" / "archive.lua").read_text()
#: Term keys unlinked per round trip.
UNLINK_CHUNK = 500


class RedisArchive:
    """The archive half of RedisEventLog; ``decode_header`` reads a summary hash."""

    def __init__(self, client: aioredis.Redis, decode_header: Any) -> None:
        self.redis = client
        self._script = client.register_script(ARCHIVE_LUA)
        self._decode_header = decode_header

    async def archive(self, incident: str, expect_seq: int, tombstone: Tombstone) -> bool:
        try:
            orgs, refs = await self._indexed_under(incident)
            script_keys = [
                keys.head_key(incident),
                keys.log_key(incident),
                keys.idem_key(incident),
                keys.summary_key(incident),
                keys.tombstone_key(incident),
            ]
            reply = await self._script(keys=script_keys, args=[expect_seq, orjson.dumps(tombstone)])
            answer = reply.decode() if isinstance(reply, bytes) else str(reply)
            if answer == "absent":
                raise LogNotFound(f"no log for incident {incident}")
            if answer == "moved":
                return False
            if answer == "kept":
                kept = await self.tombstone(incident) or {}
                orgs |= set(kept.get("orgs", ()))
            await self._unindex(incident, orgs | set(tombstone.get("orgs", ())), refs)
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        return True

    async def _indexed_under(self, incident: str) -> tuple[set[str], set[str]]:
        """The organisations and the reference the incident is indexed under now."""
        raw: Any = await self.redis.hgetall(keys.summary_key(incident))
        if not raw:
            return set(), set()
        wire = summary.summary(incident, self._decode_header(raw), 0, 0)
        ref = wire.get("external_ref")
        return set(wire["orgs"]), {ref} if isinstance(ref, str) else set()

    async def _unindex(self, incident: str, orgs: set[str], refs: set[str]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            _ = pipe.zrem(keys.INCIDENTS, incident)
            _ = pipe.zrem(keys.INDEX, incident)
            for org in orgs:
                _ = pipe.zrem(keys.org_index_key(org), incident)
            for ref in refs:
                _ = pipe.srem(keys.ref_key(ref), incident)
            _ = pipe.zadd(keys.ARCHIVED, {incident: 0})
            await pipe.execute()
        batch: list[Any] = []
        async for key in self.redis.scan_iter(match=keys.term_pattern(incident), count=1000):
            batch.append(key)
            if len(batch) >= UNLINK_CHUNK:
                await self.redis.unlink(*batch)
                batch = []
        if batch:
            await self.redis.unlink(*batch)

    async def tombstone(self, incident: str) -> Tombstone | None:
        try:
            raw: Any = await self.redis.get(keys.tombstone_key(incident))
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        return dict(orjson.loads(raw)) if raw is not None else None

    async def tombstones(self, after: str, limit: int) -> list[Tombstone]:
        try:
            low = f"({after}" if after else "-"
            ids: Any = await self.redis.zrangebylex(keys.ARCHIVED, low, "+", 0, max(1, limit))
            async with self.redis.pipeline(transaction=False) as pipe:
                for member in ids:
                    _ = pipe.get(keys.tombstone_key(member.decode()))
                raws: list[Any] = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        return [dict(orjson.loads(raw)) for raw in raws if raw is not None]

    async def update_tombstone(self, incident: str, tombstone: Tombstone) -> None:
        try:
            done = await self.redis.set(
                keys.tombstone_key(incident), orjson.dumps(tombstone), xx=True
            )
        except (RedisError, OSError) as exc:
            raise StorageUnavailable(str(exc)) from exc
        if not done:
            raise LogNotFound(f"incident {incident} is not archived")
