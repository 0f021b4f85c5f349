"""LIAISON_REDIS_URL parsing: Sentinel URLs, and clear errors for bad ones."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.settings import Settings
from server.storage.redis_connect import SentinelTarget, parse_sentinel, validate


@pytest.mark.parametrize(
    ("url", "target"),
    [
        (
            "redis+sentinel://h1:26379,h2:26380/mymaster/2",
            SentinelTarget((("h1", 26379), ("h2", 26380)), "mymaster", 2),
        ),
        ("redis+sentinel://h1/mymaster", SentinelTarget((("h1", 26379),), "mymaster", 0)),
        (
            "redis+sentinel://liaison:p%40ss@[::1]:26379/m?sentinel_password=s",
            SentinelTarget((("::1", 26379),), "m", 0, "liaison", "p@ss", "s"),
        ),
        (
            "redis+sentinel://:secret@h1:1,h2:2,h3:3/m/0",
            SentinelTarget((("h1", 1), ("h2", 2), ("h3", 3)), "m", 0, None, "secret"),
        ),
    ],
)
def test_sentinel_urls_parse(url: str, target: SentinelTarget) -> None:
    assert parse_sentinel(url) == target


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("redis+sentinel://h1:26379", "master name"),
        ("redis+sentinel:///mymaster", "at least one host"),
        ("redis+sentinel://h1:port/mymaster", "host:port"),
        ("redis+sentinel://h1/mymaster/zero", "number"),
        ("redis+sentinel://h1/m/0/extra", "master name"),
        ("redis+sentinel://h1/m?socket_timeout=1", "unknown Sentinel URL options"),
        ("sentinel://h1/m", r"unix:// or redis\+sentinel://"),
    ],
)
def test_bad_redis_urls_stop_the_node_with_the_reason(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        Settings(redis_url=url)


def test_durable_setting_refuses_a_timeout_that_would_block_forever() -> None:
    with pytest.raises(ValueError, match="REPLICA_TIMEOUT_MS"):
        Settings(redis_min_replicas=1, redis_replica_timeout_ms=0)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=60))
def test_any_url_is_accepted_or_refused_with_a_value_error(tail: str) -> None:
    for url in (tail, "redis+sentinel://" + tail):
        try:
            validate(url)
        except ValueError:
            pass


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "redis+sentinel://127.0.0.1:1/m"])
def test_redis_replies_are_parsed_by_hiredis(url: str) -> None:
    """redis-py falls back to its pure-Python parser, silently, when hiredis
    cannot be imported; the cross-node figures in bench/ assume the C one."""
    from redis._parsers.hiredis import _AsyncHiredisParser

    from server.storage.redis_connect import command_client, link

    for client in (command_client(url, 4, 1.0), link(url)):
        connection = client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
        assert isinstance(connection._parser, _AsyncHiredisParser)
