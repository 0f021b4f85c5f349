"""/metrics moves by the right amounts, /readyz proves the write path, on real servers."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from liaison_client import CommandFailed, LiaisonClient
from tests.conftest import ROOT, LiaisonServer, connect, new_incident
from tests.integration.test_multinode import start_nodes
from tests.integration.test_slow_consumer import flood, stalled_follower, wait_for_log
from tests.redis_server import RedisServer
from tests.waiting import until_true

Samples = dict[str, float]


async def scrape(srv: LiaisonServer, token: str = "") -> Samples:
    """Every sample of /metrics, keyed ``name{label="value",...}`` (labels sorted)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.get(srv.url + "/metrics", headers=headers) as resp,
    ):
        assert resp.status == 200, await resp.text()
        assert resp.headers["Content-Type"].startswith("text/plain; version=")
        text = await resp.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return samples


def moved(before: Samples, after: Samples, name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


async def readyz(srv: LiaisonServer) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as http, http.get(srv.url + "/readyz") as resp:
        body: dict[str, object] = await resp.json()
        return resp.status, body


def dashboard_metrics() -> set[str]:
    """Every series deploy/grafana/liaison.json queries."""
    text = (ROOT / "deploy" / "grafana" / "liaison.json").read_text()
    return set(re.findall(r"\b(?:liaison|process)_[a-z_]+", text))


@pytest.fixture(params=["embedded", "redis"])
def throttled_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiaisonServer]:
    """A server of its own (exact counts), throttling a username after 3 failures."""
    env = {"LIAISON_LOGIN_MAX_FAILURES": "3"}
    if request.param == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        redis_server.flush()
        env["LIAISON_REDIS_URL"] = redis_server.url
    srv = LiaisonServer(tmp_path / "data", env=env)
    srv.start()
    yield srv
    srv.stop()


async def test_posts_follows_and_logins_move_the_counters(
    throttled_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    srv = throttled_server
    dispatcher = await connect(clients, srv, "dispatch")
    incident = await new_incident(dispatcher)
    follower = await connect(clients, srv, "officer")
    before = await scrape(srv)

    assert (await follower.follow(incident, after_seq=1))["status"] == "ok"
    beyond = await follower.send(
        {"type": "follow", "incidents": [{"incident": incident, "after_seq": 999}]}
    )
    other_log = await follower.send(
        {"type": "follow", "incidents": [{"incident": incident, "after_seq": 1, "epoch": "x"}]}
    )
    assert beyond["incidents"][0]["status"] == "out_of_range"
    assert other_log["incidents"][0]["status"] == "resync_required"
    await follower.follow(incident, after_seq=1)  # served again, from the same position
    acks = [await dispatcher.post(incident, f"metrics {i}") for i in range(5)]
    await follower.wait_seq(incident, acks[-1]["seq"])

    for _ in range(4):  # 3 wrong passwords, then the username is throttled
        guesser = LiaisonClient(srv.url)
        clients.append(guesser)
        with pytest.raises(CommandFailed):
            await guesser.login("shelter-lead", "wrong password")
    after = await scrape(srv)

    assert moved(before, after, "liaison_events_appended_total") == 5
    commits = moved(before, after, "liaison_commits_total")
    assert 1 <= commits <= 5
    assert moved(before, after, "liaison_commit_latency_seconds_count") == commits
    assert moved(before, after, "liaison_commit_batch_size_sum") == 5
    # One delivered batch per commit: the follower's incident is in every one.
    assert moved(before, after, "liaison_fanout_latency_seconds_count") == commits
    assert moved(before, after, 'liaison_follow_outcomes_total{outcome="served"}') == 2
    assert moved(before, after, 'liaison_follow_outcomes_total{outcome="out_of_range"}') == 1
    assert moved(before, after, 'liaison_follow_outcomes_total{outcome="resync_required"}') == 1
    assert moved(before, after, 'liaison_login_failures_total{reason="unauthenticated"}') == 3
    assert moved(before, after, 'liaison_login_failures_total{reason="rate_limited"}') == 1
    assert after["liaison_connections"] == 2
    assert after["liaison_follows"] == 1
    assert after["liaison_followed_incidents"] == 1
    assert after["liaison_writer_up"] == 1
    assert after["liaison_ready"] == 1
    assert after["liaison_writer_restarts_total"] == 0
    redis_mode = "LIAISON_REDIS_URL" in srv.env
    assert ("liaison_redis_subscriber_up" in after) == redis_mode  # embedded: none

    await follower.close()
    await until_true(
        lambda: _gauge(srv, "liaison_follows", 0), 10, "the follow ended with its connection"
    )


async def _gauge(srv: LiaisonServer, name: str, value: float) -> bool:
    return (await scrape(srv)).get(name) == value


@pytest.fixture
def small_buffer_server(tmp_path: Path) -> Iterator[LiaisonServer]:
    env = {"LIAISON_MAX_PENDING_BYTES": "1048576", "LIAISON_LOG_LEVEL": "INFO"}
    srv = LiaisonServer(tmp_path / "data", env=env)
    srv.start()
    yield srv
    srv.stop()


async def test_a_slow_consumer_cut_off_is_counted_once(
    small_buffer_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    srv = small_buffer_server
    dispatcher = await connect(clients, srv, "dispatch")
    incident = await new_incident(dispatcher)
    slow = await connect(clients, srv, "outreach", live=False)
    assert slow.token is not None
    before = await scrape(srv)
    stalled = await stalled_follower(srv, slow.token, incident)
    try:
        await flood(dispatcher, incident)
        await asyncio.to_thread(wait_for_log, srv, "cut off slow consumer")
    finally:
        stalled.close()
    after = await scrape(srv)
    assert moved(before, after, "liaison_slow_consumer_cutoffs_total") == 1
    assert moved(before, after, "liaison_events_appended_total") == 600


async def test_metrics_require_the_token_when_one_is_set(tmp_path: Path) -> None:
    srv = LiaisonServer(tmp_path / "data", env={"LIAISON_METRICS_TOKEN": "scrape-me-please"})
    srv.start()
    try:
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {"Authorization": "Bearer wrong"}):
                async with http.get(srv.url + "/metrics", headers=headers) as resp:
                    assert resp.status == 401
                    assert (await resp.json())["error"]["code"] == "unauthenticated"
        assert (await scrape(srv, token="scrape-me-please"))["liaison_ready"] == 1
    finally:
        srv.stop()


async def test_readyz_goes_503_while_redis_is_down_and_back_after(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    (node,) = start_nodes(own_redis, tmp_path, 1)
    try:
        assert await readyz(node) == (200, {"status": "ready"})
        first = await scrape(node)
        assert first["liaison_redis_subscriber_up"] == 1
        assert first["liaison_revocation_feed_up"] == 1
        names = {key.split("{")[0] for key in first}
        assert dashboard_metrics() <= names, "the Grafana dashboard plots what a node exports"

        own_redis.kill()

        async def not_ready() -> bool:
            status, body = await readyz(node)
            return status == 503 and "redis_subscriber_down" in str(body["reasons"])

        await until_true(not_ready, 20, "/readyz said the Redis link is down")
        down = await scrape(node)
        assert down["liaison_redis_subscriber_up"] == 0
        assert down["liaison_ready"] == 0

        own_redis.start()

        async def ready() -> bool:
            return (await readyz(node))[0] == 200

        await until_true(ready, 30, "/readyz was 200 again once Redis was back")
        back = await scrape(node)
        assert back["liaison_redis_subscriber_up"] == 1
        assert back["liaison_redis_subscriber_reconnects_total"] >= 1
    finally:
        node.stop()


async def test_the_collector_is_set_and_startup_frozen_as_settings_say(
    server: LiaisonServer, tmp_path: Path
) -> None:
    """LIAISON_GC_YOUNG (default 20,000) reaches the served process; 0 keeps CPython's own."""
    tuned = await scrape(server)
    assert tuned["liaison_gc_young_threshold"] == 20_000
    assert tuned["liaison_gc_frozen_objects"] > 10_000  # modules, code, the seed
    assert 'python_gc_collections_total{generation="0"}' in tuned
    # The startup freeze's full collection ran while the pause timer was installed.
    assert tuned['liaison_gc_pause_seconds_count{generation="2"}'] >= 1
    assert 'liaison_gc_pause_seconds_bucket{generation="0",le="0.001"}' in tuned
    plain = LiaisonServer(tmp_path / "plain", env={"LIAISON_GC_YOUNG": "0"})
    plain.start()
    try:
        defaults = await scrape(plain)
    finally:
        plain.stop()
    assert defaults["liaison_gc_young_threshold"] == 700
    assert defaults["liaison_gc_frozen_objects"] == 0
