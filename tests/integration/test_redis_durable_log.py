"""The durable Redis log (LIAISON_REDIS_MIN_REPLICAS) against a real master and replica.

In-process, so it can see what the server cannot show a client: that an
unconfirmed run is neither acknowledged nor handed to the fan-out nor
published, and that the confirmed retry is, once.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest
import redis.asyncio as aioredis

from server.domain.events import StoredEvent
from server.errors import StorageOutcomeUnknown
from server.storage import redis_keys as keys
from server.storage.codec import unpack_events
from server.storage.redis_log import RedisConfig, RedisEventLog, connect
from tests.contract.test_event_log import draft
from tests.redis_sentinel import SentinelGroup


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    group = SentinelGroup(tmp_path_factory.mktemp("durable-pair"), replicas=1, sentinels=0)
    try:
        group.start()
        yield group
    finally:
        group.stop()


class Delivered:
    def __init__(self) -> None:
        self.seqs: list[int] = []

    def __call__(self, incident: str, events: Sequence[StoredEvent]) -> None:
        self.seqs += [ev.seq for ev in events]


@pytest.fixture
async def durable(pair: SentinelGroup) -> AsyncIterator[tuple[RedisEventLog, Delivered]]:
    config = RedisConfig(
        url=pair.master.url, node_id="durable", min_replicas=1, replica_timeout_ms=1000
    )
    client = connect(config)
    delivered = Delivered()
    log = RedisEventLog(config, client, deliver=delivered)
    await log.start()
    yield log, delivered
    await log.close()
    await client.aclose()


async def test_a_run_no_replica_confirmed_is_unknown_unannounced_then_retried_once(
    pair: SentinelGroup, durable: tuple[RedisEventLog, Delivered]
) -> None:
    log, delivered = durable
    incident = f"durable-{os.getpid()}"
    await log.append(draft(incident, "create", kind="incident.created"))
    assert delivered.seqs == [1], "a confirmed run is delivered"
    listener = aioredis.Redis.from_url(pair.master.url)
    pubsub = listener.pubsub()
    await pubsub.subscribe(keys.channel(incident))
    replica = pair.replicas[0].proc
    assert replica is not None
    os.kill(replica.pid, signal.SIGSTOP)
    try:
        with pytest.raises(StorageOutcomeUnknown, match="0 of 1 replicas"):
            await log.append(draft(incident, "paused"))
        assert delivered.seqs == [1], "an unconfirmed run is not handed to the fan-out"
    finally:
        os.kill(replica.pid, signal.SIGCONT)
    again = await log.append(draft(incident, "paused"))  # the client's retry, same id
    assert (again.event.seq, again.duplicate) == (2, True)
    assert delivered.seqs == [1, 2]
    fresh = await log.append(draft(incident, "after"))
    assert fresh.event.seq == 3
    assert delivered.seqs == [1, 2, 3], "announced once its retry was confirmed"
    assert (await log.append(draft(incident, "after"))).duplicate
    assert delivered.seqs == [1, 2, 3], "a retry of an announced event is not announced again"
    published: list[list[int]] = []
    async with asyncio.timeout(5):
        while len(published) < 2:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                published.append([ev.seq for ev in unpack_events(message["data"])])
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    await listener.aclose()
    assert published == [[2], [3]], "nothing published before its replicas confirmed it"


async def test_a_batch_shares_one_wait(
    pair: SentinelGroup, durable: tuple[RedisEventLog, Delivered]
) -> None:
    log, _ = durable
    incidents = [f"batch-{os.getpid()}-{i}" for i in range(4)]
    for incident in incidents:
        await log.append(draft(incident, "c-" + incident, kind="incident.created"))
    probe = aioredis.Redis.from_url(pair.master.url)
    before = int(await probe.get(keys.REPLICA_MARK) or 0)
    results = await asyncio.gather(
        *(log.append(draft(i, f"m{n}-{i}")) for n in range(25) for i in incidents)
    )
    waits = int(await probe.get(keys.REPLICA_MARK) or 0) - before
    await probe.aclose()
    assert len(results) == 100
    assert 1 <= waits < 10, f"{waits} WAITs for 100 appends enqueued at once"
