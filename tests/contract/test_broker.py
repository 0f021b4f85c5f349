"""The Broker contract (server/fanout/base.py), run against every broker.

Each broker is wired to its log by the builder, as in a server: the log
publishes what it commits, before it acknowledges it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager

import pytest
import redis.asyncio as aioredis

from server.backends import Backends, running
from server.domain.events import StoredEvent
from server.errors import ClientIdReused, LogNotFound
from server.fanout.base import Broker
from server.fanout.memory import MemoryBroker
from server.fanout.redis import RedisBroker
from server.storage.redis_log import RedisLogReader
from tests.contract.conftest import redis_settings
from tests.contract.test_event_log import draft, open_incident
from tests.redis_server import RedisServer
from tests.waiting import until


def _typed(client: aioredis.Redis, url: str) -> None:
    """Compile-time check (mypy), never run: each implementation is a Broker."""
    memory: Broker = MemoryBroker()
    shared: Broker = RedisBroker(client, url, "typed", RedisLogReader(client))
    del memory, shared


class Seen:
    """A listener that records the seqs it was handed."""

    def __init__(self) -> None:
        self.seqs: list[int] = []

    def __call__(self, events: Sequence[StoredEvent]) -> None:
        self.seqs.extend(e.seq for e in events)


def other_node(
    broker_set: Backends, request: pytest.FixtureRequest
) -> AbstractAsyncContextManager[Backends]:
    """The backend set of a second node on the same shared storage (Redis only)."""
    if isinstance(broker_set.broker, MemoryBroker):
        pytest.skip("the memory broker is single node only")
    redis_server: RedisServer = request.getfixturevalue("redis_server")
    return running(redis_settings(redis_server, "other"))


async def test_listeners_get_events_in_seq_order_before_the_ack(broker_set: Backends) -> None:
    log, broker = broker_set.log, broker_set.broker
    await open_incident(log)
    seen = Seen()
    await broker.subscribe("inc1", seen)
    results = await asyncio.gather(*(log.append(draft("inc1", f"c{i}")) for i in range(100)))
    assert seen.seqs == [r.event.seq for r in results] == list(range(2, 102))
    one = await log.append(draft("inc1", "one"))
    assert seen.seqs[-1] == one.event.seq, "handed over before append returned"


async def test_two_listeners_each_get_everything_and_a_failing_one_hurts_neither(
    broker_set: Backends,
) -> None:
    log, broker = broker_set.log, broker_set.broker
    await open_incident(log)
    first, second = Seen(), Seen()

    def failing(events: Sequence[StoredEvent]) -> None:
        raise RuntimeError("a listener bug")

    for listener in (first, failing, second):
        await broker.subscribe("inc1", listener)
    for i in range(10):
        await log.append(draft("inc1", f"c{i}"))
    assert first.seqs == second.seqs == list(range(2, 12))


async def test_unsubscribe_stops_delivery_at_once(broker_set: Backends) -> None:
    log, broker = broker_set.log, broker_set.broker
    await open_incident(log)
    gone, stays = Seen(), Seen()
    await broker.subscribe("inc1", gone)
    await broker.subscribe("inc1", stays)
    await log.append(draft("inc1", "before"))
    broker.unsubscribe("inc1", gone)
    broker.unsubscribe("inc1", Seen())  # unknown: ignored
    await log.append(draft("inc1", "after"))
    assert (gone.seqs, stays.seqs) == ([2], [2, 3])


async def test_only_what_is_stored_is_published(broker_set: Backends) -> None:
    log, broker = broker_set.log, broker_set.broker
    await open_incident(log, "a")
    await open_incident(log, "b")
    seen = Seen()
    await broker.subscribe("a", seen)
    await log.append(draft("a", "x"))
    await log.append(draft("a", "x"))  # a retry: answered, not published again
    with pytest.raises(ClientIdReused):
        await log.append(draft("a", "x", kind="message.edited"))
    with pytest.raises(ClientIdReused):
        await log.append(draft("b", "x"))
    with pytest.raises(LogNotFound):
        await log.append(draft("ghost", "y"))
    await log.append(draft("a", "z"))
    assert seen.seqs == [e.seq for e in await log.read("a", 1, 100)] == [2, 3]


async def test_subscribe_returns_once_events_of_other_nodes_arrive(
    broker_set: Backends, request: pytest.FixtureRequest
) -> None:
    """Anything committed anywhere after subscribe returned reaches the listener."""
    async with other_node(broker_set, request) as other:
        await open_incident(broker_set.log)
        seen = Seen()
        await broker_set.broker.subscribe("inc1", seen)
        for i in range(20):
            await other.log.append(draft("inc1", f"c{i}"))
        await until(lambda: len(seen.seqs) >= 20, 10, "events of the other node")
        assert seen.seqs == list(range(2, 22))


async def test_unsubscribed_hears_nothing_from_other_nodes(
    broker_set: Backends, request: pytest.FixtureRequest
) -> None:
    async with other_node(broker_set, request) as other:
        await open_incident(broker_set.log)
        gone, stays = Seen(), Seen()
        await broker_set.broker.subscribe("inc1", gone)
        await broker_set.broker.subscribe("inc1", stays)
        broker_set.broker.unsubscribe("inc1", gone)
        for i in range(5):
            await other.log.append(draft("inc1", f"c{i}"))
        await until(lambda: len(stays.seqs) >= 5, 10, "events of the other node")
        assert (gone.seqs, stays.seqs) == ([], [2, 3, 4, 5, 6])
