"""The CapacityLog contract (server/storage/capacity.py), run against every backend."""

from __future__ import annotations

import asyncio
from pathlib import Path

import redis.asyncio as aioredis

from server.backends import Backends, running
from server.storage.capacity import CapacityDraft, CapacityLog, SqliteCapacityLog
from server.storage.redis_capacity import RedisCapacityLog
from tests.contract.conftest import embedded_settings


def _typed(path: Path, client: aioredis.Redis) -> None:
    """Compile-time check (mypy), never run: each implementation is a CapacityLog."""
    sqlite: CapacityLog = SqliteCapacityLog(path)
    shared: CapacityLog = RedisCapacityLog(client)
    del sqlite, shared


def change(org: str, cid: str, ts: int = 1000, **items: object) -> CapacityDraft:
    return CapacityDraft(org, "u_" + org, org, "Lead " + org, cid, dict(items), ts)


def _log(backends: Backends) -> CapacityLog:
    assert backends.capacity is not None
    return backends.capacity


async def test_seq_per_org_pos_across_orgs_current_and_history(log_set: Backends) -> None:
    cap = _log(log_set)
    assert await cap.head() == 0
    assert await cap.current() == {}
    a1, dup = await cap.append(change("shelter", "c1", beds=4, languages=["ar", "fr"]))
    assert not dup
    assert (a1.pos, a1.seq) == (1, 1)
    b1, _ = await cap.append(change("outreach", "c1", 1500, vehicles=2))
    assert (b1.pos, b1.seq) == (2, 1)
    a2, _ = await cap.append(change("shelter", "c2", 2000, beds=3, note="Men only tonight"))
    a3, _ = await cap.append(change("shelter", "c3", 3000, languages=None))
    assert [(e.pos, e.seq) for e in (a2, a3)] == [(3, 2), (4, 3)]
    assert await cap.head() == 4
    current = await cap.current()
    assert {item: (v.value, v.seq, v.ts_ms) for item, v in current["shelter"].items()} == {
        "beds": (3, 2, 2000),
        "note": ("Men only tonight", 2, 2000),
    }
    assert current["outreach"]["vehicles"].value == 2
    history = await cap.history("shelter", 0, 100)
    assert history == [a1, a2, a3]
    assert history[0].items == {"beds": 4, "languages": ["ar", "fr"]}
    assert history[2].items == {"languages": None}
    assert await cap.history("shelter", 1, 1) == [a2]
    assert [e.pos for e in await cap.since(1, 100)] == [2, 3, 4]
    assert await cap.since(4, 100) == []


async def test_a_retry_returns_the_stored_entry_and_writes_nothing(log_set: Backends) -> None:
    cap = _log(log_set)
    first, _ = await cap.append(change("shelter", "c1", beds=4))
    again, dup = await cap.append(change("shelter", "c1", 9999, beds=1))
    assert dup
    assert again == first
    assert await cap.head() == 1
    assert (await cap.current())["shelter"]["beds"].value == 4


async def test_concurrent_changes_are_gapless(log_set: Backends) -> None:
    cap = _log(log_set)
    await asyncio.gather(*(cap.append(change("shelter", f"c{n}", beds=n)) for n in range(20)))
    entries = await cap.since(0, 100)
    assert [e.pos for e in entries] == list(range(1, 21))
    assert sorted(e.seq for e in entries) == list(range(1, 21))
    last = max(entries, key=lambda e: e.seq)
    assert (await cap.current())["shelter"]["beds"].value == last.items["beds"]


async def test_the_log_survives_a_restart(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    async with running(settings) as backends:
        entry, _ = await _log(backends).append(change("shelter", "c1", beds=4))
    async with running(settings) as backends:
        assert await _log(backends).history("shelter", 0, 10) == [entry]
        assert (await _log(backends).append(change("shelter", "c2", beds=1)))[0].seq == 2
