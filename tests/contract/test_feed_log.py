"""The FeedLog contract (server/storage/feed.py), run against every backend."""

from __future__ import annotations

import asyncio
from pathlib import Path

from server.backends import Backends, running
from server.errors import LogNotFound
from server.storage.feed import FeedLog, SqliteFeedLog
from server.storage.redis_feed import RedisFeedLog
from server.storage.redis_log import RedisConfig, connect
from tests.contract.conftest import embedded_settings
from tests.contract.test_event_log import draft


def _typed(path: Path, url: str) -> None:
    """Compile-time check (mypy), never run: each implementation is a FeedLog."""
    sqlite_feed: FeedLog = SqliteFeedLog(path)
    redis_feed: FeedLog = RedisFeedLog(connect(RedisConfig(url=url, node_id="typed")))
    del sqlite_feed, redis_feed


def _feed(backends: Backends) -> FeedLog:
    assert backends.feed is not None
    return backends.feed


async def test_runs_follow_commit_order_gapless_and_point_at_the_events(
    log_set: Backends,
) -> None:
    feed, log = _feed(log_set), log_set.log
    start = await feed.head()
    assert start.pos == 0
    await log.append(draft("a", "a1", kind="incident.created"))
    await log.append(draft("b", "b1", kind="incident.created"))
    # One batch with events of two incidents: a run per incident.
    await asyncio.gather(*(log.enqueue(draft(i, f"{i}{n}")) for n in (2, 3) for i in "ab"))
    await log.append(draft("a", "a4"))
    runs = await feed.read(0, 100)
    assert [r.pos for r in runs] == list(range(1, len(runs) + 1))  # gapless, from 1
    covered: dict[str, list[int]] = {"a": [], "b": []}
    for run in runs:
        assert run.first <= run.last
        covered[run.incident] += list(range(run.first, run.last + 1))
    assert covered == {"a": [1, 2, 3, 4], "b": [1, 2, 3]}  # every event once, in seq order
    head = await feed.head()
    assert (head.epoch, head.pos) == (start.epoch, runs[-1].pos)
    assert await feed.read(head.pos, 100) == []
    assert [r.pos for r in await feed.read(2, 2)] == [3, 4]


async def test_refused_appends_and_retries_write_no_run(log_set: Backends) -> None:
    feed, log = _feed(log_set), log_set.log
    await log.append(draft("a", "a1", kind="incident.created"))
    await log.append(draft("a", "a2"))
    before = await feed.head()
    assert (await log.append(draft("a", "a2"))).duplicate
    try:
        await log.append(draft("nope", "n1"))
    except LogNotFound:
        pass
    assert await feed.head() == before


async def test_the_epoch_survives_a_restart_and_positions_go_on(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    async with running(settings) as backends:
        await backends.log.append(draft("a", "a1", kind="incident.created"))
        first = await _feed(backends).head()
    async with running(settings) as backends:
        assert await _feed(backends).head() == first
        await backends.log.append(draft("a", "a2"))
        assert (await _feed(backends).head()).pos == first.pos + 1
    async with running(embedded_settings(tmp_path / "other")) as backends:
        assert (await _feed(backends).head()).epoch != first.epoch
