"""Web Push with two nodes on one Redis (SPEC 26.3): one node sends each push.

The node holding the ``push`` lease reads the subscribers' feeds and sends;
the other sends nothing, even for events written through it. Killing the
sender (kill -9: no release, no shutdown) lets the other take the lease once
it lapses (``LIAISON_PUSH_LEASE_S``) and push from the stored cursors: what
was written meanwhile arrives, once. Every wait is on something observable:
a request at the local push service, a node's metrics, the lease in Redis.
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from liaison_client import LiaisonClient
from tests.conftest import LiaisonServer, connect, new_incident
from tests.integration.push_service import PushService
from tests.integration.test_multinode import start_nodes
from tests.redis_server import RedisServer
from tests.waiting import until

LEASE_KEY = "liaison:lease:push"
#: A dead sender's lease lapses after this; the survivor claims it on its next round.
LEASE_S = 1.5


@pytest.fixture
async def push() -> AsyncIterator[PushService]:
    service = PushService()
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
def nodes(
    own_redis: RedisServer, tmp_path: Path, push: PushService
) -> Iterator[list[LiaisonServer]]:
    env = {"LIAISON_PUSH_SERVICES": push.origin, "LIAISON_PUSH_LEASE_S": str(LEASE_S)}
    started = start_nodes(own_redis, tmp_path, 2, env)
    yield started
    for node in started:
        node.stop()
    for node in started:
        assert node.errors_logged() == [], node.log_path.read_text()[-3000:]


def _sent(node: LiaisonServer) -> float:
    """The node's ``liaison_push_sent_total``: pushes it had accepted by a push service."""
    with urllib.request.urlopen(node.url + "/metrics", timeout=5) as resp:  # noqa: S310
        for line in resp.read().decode().splitlines():
            if line.startswith("liaison_push_sent_total "):
                return float(line.split()[1])
    return 0.0


async def test_one_node_sends_each_push_and_the_other_takes_over_after_a_kill(
    nodes: list[LiaisonServer],
    own_redis: RedisServer,
    push: PushService,
    clients: list[LiaisonClient],
) -> None:
    lease = redis.Redis.from_url(own_redis.url)
    try:
        # The VAPID key is the deployment's (Redis), not a node's: either node's
        # routes give the same one.
        phone = await connect(clients, nodes[0], "outreach", live=False)
        key = (await phone.request("GET", "/api/v1/push/key"))["public_key"]
        other_phone = await connect(clients, nodes[1], "outreach", live=False)
        assert (await other_phone.request("GET", "/api/v1/push/key"))["public_key"] == key
        push.server_key = key
        browser = push.subscribe()
        await phone.request("POST", "/api/v1/push/subscriptions", browser.to_json())

        await until(lambda: lease.get(LEASE_KEY) in (b"node0", b"node1"), 10, "a push sender")
        sender = 0 if lease.get(LEASE_KEY) == b"node0" else 1
        survivor = 1 - sender
        # Written through the node that does not send: the sender pushes it.
        dispatch = await connect(clients, nodes[survivor], "dispatch")
        incident = await new_incident(dispatch, "Two nodes, one push")
        await dispatch.post(incident, "First: one push only", urgent=True)
        await until(lambda: len(push.requests) >= 1, 10, "the first push")
        # A second entry behind it: once its push is in, the first one's
        # duplicate, from either node, would have come before it.
        await dispatch.post(incident, "Second: behind the first", urgent=True)
        await until(lambda: len(push.requests) >= 2, 10, "the second push")
        assert push.requests == [browser.id, browser.id]
        assert push.refused == []
        assert [p["body"] for p in push.of(browser)] == [
            "Dana Dispatcher: First: one push only",
            "Dana Dispatcher: Second: behind the first",
        ]
        assert (_sent(nodes[sender]), _sent(nodes[survivor])) == (2.0, 0.0)

        # kill -9 of the sender; what is written meanwhile waits in the feed
        # for the survivor, which sends it once the dead node's lease lapsed.
        nodes[sender].kill()
        await dispatch.post(incident, "Third: across the kill", urgent=True)
        await until(lambda: len(push.requests) >= 3, 10 + LEASE_S, "the push after the kill")
        assert lease.get(LEASE_KEY) == f"node{survivor}".encode()
        await dispatch.post(incident, "Fourth: from the new sender", urgent=True)
        await until(lambda: len(push.requests) >= 4, 10, "the fourth push")
        assert push.requests == [browser.id] * 4
        assert push.refused == []
        assert [p["body"] for p in push.of(browser)][2:] == [
            "Dana Dispatcher: Third: across the kill",
            "Dana Dispatcher: Fourth: from the new sender",
        ]
        assert _sent(nodes[survivor]) == 2.0
    finally:
        lease.close()
