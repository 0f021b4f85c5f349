"""RedisCapacityLog: the capacity log of the Redis backend (see capacity.py).

``lua/capacity_append.lua`` writes an entry to ``keys.CAPACITY_LOG`` with id
``<pos>-0`` (``INCR keys.CAPACITY_POS``), the organisation's seq and its
current items in one script: atomic and in commit order for every node. All
keys share the ``{capacity}`` hash slot, so this also runs on a Cluster.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import msgpack
import redis.asyncio as aioredis

from server.storage import redis_keys as keys
from server.storage.capacity import (
    MAX_READ,
    CapacityDraft,
    CapacityEntry,
    Current,
    CurrentItem,
)
from server.storage.redis_calls import redis_call

APPEND_LUA = (Path(__file__).parent / "lua" / "capacity_append.lua").read_text()
T = TypeVar("T")


def _payload(d: CapacityDraft) -> bytes:
    packed: bytes = msgpack.packb(
        [d.ts_ms, d.actor_user, d.actor_org, d.actor_name, d.client_id, d.items]
    )
    return packed


def _entry(entry_id: bytes, fields: dict[bytes, bytes]) -> CapacityEntry:
    ts, user, org, name, client_id, items = msgpack.unpackb(fields[b"p"])
    return CapacityEntry(
        int(entry_id.split(b"-")[0]),
        fields[b"o"].decode(),
        int(fields[b"s"]),
        ts,
        user,
        org,
        name,
        client_id,
        items,
    )


class RedisCapacityLog:
    """``client`` is the node's shared one (not closed here)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client
        self._append = client.register_script(APPEND_LUA)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def _call(self, step: Callable[[], Awaitable[T]]) -> T:
        return await redis_call(step)

    async def append(self, draft: CapacityDraft) -> tuple[CapacityEntry, bool]:
        args: list[Any] = [
            draft.org,
            f"{draft.actor_user}\x00{draft.client_id}",
            _payload(draft),
            draft.ts_ms,
        ]
        for item, value in draft.items.items():
            args += [item, b"" if value is None else msgpack.packb(value)]
        ks = [
            keys.CAPACITY_LOG,
            keys.CAPACITY_POS,
            keys.CAPACITY_SEQS,
            keys.CAPACITY_IDS,
            keys.capacity_current_key(draft.org),
            keys.CAPACITY_ORGS,
        ]

        async def run() -> Any:
            return await self._append(keys=ks, args=args)

        first, second = await self._call(run)
        if first == 0:  # a retry: the stored entry at its pos
            stored = await self.since(int(second) - 1, 1)
            return stored[0], True
        entry = CapacityEntry(
            int(first),
            draft.org,
            int(second),
            draft.ts_ms,
            draft.actor_user,
            draft.actor_org,
            draft.actor_name,
            draft.client_id,
            draft.items,
        )
        return entry, False

    async def _range(self, after_pos: int, limit: int) -> list[CapacityEntry]:
        async def run() -> Any:
            return await self._redis.xrange(
                keys.CAPACITY_LOG, min=f"{after_pos + 1}-0", max="+", count=limit
            )

        return [_entry(entry_id, fields) for entry_id, fields in await self._call(run)]

    async def history(self, org: str, after_seq: int, limit: int) -> list[CapacityEntry]:
        """A scan of the global log (changes are few: a handful per organisation an hour)."""
        limit = min(max(1, limit), MAX_READ)
        out: list[CapacityEntry] = []
        pos = 0
        while len(out) < limit:
            page = await self._range(pos, MAX_READ)
            if not page:
                break
            out += [e for e in page if e.org == org and e.seq > after_seq]
            pos = page[-1].pos
        return out[:limit]

    async def since(self, after_pos: int, limit: int) -> list[CapacityEntry]:
        return await self._range(after_pos, min(max(1, limit), MAX_READ))

    async def head(self) -> int:
        async def run() -> Any:
            return await self._redis.get(keys.CAPACITY_POS)

        return int(await self._call(run) or 0)

    async def current(self) -> Current:
        async def run() -> Current:
            out: Current = {}
            orgs: Any = await self._redis.smembers(keys.CAPACITY_ORGS)
            for raw_org in sorted(orgs):
                org = raw_org.decode()
                items: Any = await self._redis.hgetall(keys.capacity_current_key(org))
                current = out.setdefault(org, {})
                for item, raw in items.items():
                    seq, ts, packed = raw.split(b" ", 2)
                    current[item.decode()] = CurrentItem(msgpack.unpackb(packed), int(seq), int(ts))
            return out

        return await self._call(run)
