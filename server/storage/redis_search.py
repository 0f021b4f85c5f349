"""Text search on the Redis backend: an inverted index per incident, kept at append.

Debian's Redis 7.0 has no RediSearch, so the index is ours: for each word
of an event (``search_text.index_terms``) a ZSET ``liaison:{<incident>}:term:<word>``
holds the seqs of the incident's events with that word, scored by seq. It is
written by ``lua/terms.lua`` in the same MULTI as the append, inside the
incident's hash slot, so an acknowledged event is searchable and no node has
to repair it later.

Limits, stated: one ZSET member per distinct word per event (measured: 52
bytes of Redis memory each in small sets, ~1 KB per 20-word message; more
once a word's set passes 128 entries), kept for as long as the log is; and
only whole words (no prefixes, phrases or ranking), as on SQLite. A lookup
reads one incident's window of seqs per term and intersects them here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.domain.events import StoredEvent
from server.domain.search_text import index_terms
from server.errors import StorageUnavailable
from server.storage import redis_keys as keys

log = logging.getLogger(__name__)

TERMS_LUA = (Path(__file__).parent / "lua" / "terms.lua").read_text()


def term_writes(incident: str, events: Sequence[StoredEvent]) -> tuple[list[str], list[int]]:
    """terms.lua's term keys and seqs (KEYS[2..], ARGV[2..]) for a run of events."""
    term_keys: list[str] = []
    seqs: list[int] = []
    for ev in events:
        for term in index_terms(ev.body):
            term_keys.append(keys.term_key(incident, term))
            seqs.append(ev.seq)
    return term_keys, seqs


async def text_matches(
    client: aioredis.Redis, incident: str, terms: Sequence[str], after_seq: int, before_seq: int
) -> list[int]:
    """``EventLog.text_matches`` over the term ZSETs: one round trip."""
    if not terms:
        return []
    try:
        async with client.pipeline(transaction=False) as pipe:
            for term in terms:
                _ = pipe.zrangebyscore(
                    keys.term_key(incident, term), f"({after_seq}", f"({before_seq}"
                )
            replies: list[Any] = await pipe.execute()
    except (RedisError, OSError) as exc:
        raise StorageUnavailable(str(exc)) from exc
    found = set.intersection(*({int(m) for m in members} for members in replies))
    return sorted(found, reverse=True)


async def index_older(client: aioredis.Redis, read: Any) -> None:
    """Index the words of events stored before text search (a one-off on upgrade).

    ``read`` is the log's ``read``. ZADD is idempotent, so a start that dies
    half-way is finished by the next one.
    """
    if await client.exists(keys.SEARCH_BUILT):
        return
    incidents: Any = await client.zrange(keys.INCIDENTS, 0, -1)
    count = 0
    for member in incidents:
        incident, after = member.decode(), 0
        while events := await read(incident, after, 1_000):
            term_keys, seqs = term_writes(incident, events)
            async with client.pipeline(transaction=False) as pipe:
                for key, seq in zip(term_keys, seqs, strict=True):
                    _ = pipe.zadd(key, {str(seq): seq})
                await pipe.execute()
            count += len(set(seqs))
            after = events[-1].seq
    await client.set(keys.SEARCH_BUILT, "1")
    if count:
        log.info("text search: indexed the words of %d older events", count)
