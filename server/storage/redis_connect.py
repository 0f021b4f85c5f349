"""Every Redis connection a node makes, from one URL: a server, or a master Sentinel watches.

    redis://[user:pass@]host:port/db         one Redis (also rediss://, unix://)
    redis+sentinel://[user:pass@]h1:26379,h2:26379/<master name>[/db][?sentinel_password=...]

With a Sentinel URL, each connection asks the Sentinels where the master is
when it is opened (redis-py's ``SentinelConnectionPool``). After a failover,
the links to the dead master fail; the command pool's next connections, the
broker's rebuilt subscriber and the session and agreement feeds' rebuilt
links all find the promoted replica. A master that was demoted without dying
answers writes with READONLY, which redis-py turns into a connection error,
so it is dropped the same way.

Nothing else in the server calls ``Redis.from_url``: a new kind of connection
goes through ``command_client`` (shared, pooled) or ``link`` (one dedicated
connection: pub/sub, probes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

import redis.asyncio as aioredis
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

SENTINEL_SCHEME = "redis+sentinel"
SENTINEL_PORT = 26379
#: Seconds a Sentinel has to answer "where is the master?" before the next is asked.
SENTINEL_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """A master found through Sentinels: ``redis+sentinel://`` parsed."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None


def parse_sentinel(url: str) -> SentinelTarget:
    """``redis+sentinel://[user:pass@]host[:port][,host[:port]...]/service[/db]``.

    Raises ValueError with what is wrong (read at start, so a typo stops the
    node instead of leaving it on the embedded backend).
    """
    scheme, sep, rest = url.partition("://")
    if scheme != SENTINEL_SCHEME or not sep:
        raise ValueError(f"a Sentinel URL starts with {SENTINEL_SCHEME}://")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        hosts, userinfo = netloc, ""
    username, _, password = userinfo.partition(":")
    sentinels = tuple(_host_port(item) for item in hosts.split(",") if item)
    if not sentinels:
        raise ValueError("a Sentinel URL names at least one host:port")
    parts = [unquote(p) for p in path.split("/") if p]
    if not parts or len(parts) > 2:
        raise ValueError("a Sentinel URL's path is /<master name> or /<master name>/<db>")
    if len(parts) == 2 and not parts[1].isdigit():
        raise ValueError(f"the database in a Sentinel URL is a number, not {parts[1]!r}")
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    unknown = set(options) - {"sentinel_password"}
    if unknown:
        raise ValueError(f"unknown Sentinel URL options: {', '.join(sorted(unknown))}")
    return SentinelTarget(
        sentinels=sentinels,
        service=parts[0],
        db=int(parts[1]) if len(parts) == 2 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_password=options.get("sentinel_password"),
    )


def _host_port(item: str) -> tuple[str, int]:
    host, colon, port = item.rpartition(":")
    if not colon:
        return item, SENTINEL_PORT
    if not port.isdigit() or not host:
        raise ValueError(f"{item!r} is not host:port")
    return host.strip("[]"), int(port)


def is_sentinel(url: str) -> bool:
    return url.startswith(SENTINEL_SCHEME + "://")


def validate(url: str) -> None:
    """Raise ValueError if ``url`` is not a Redis URL this module can open."""
    if is_sentinel(url):
        try:
            parse_sentinel(url)
        except ValueError as exc:
            raise ValueError(f"LIAISON_REDIS_URL: {exc}") from exc
    elif url and not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(
            "LIAISON_REDIS_URL is redis://, rediss://, unix:// or redis+sentinel:// "
            "(deploy/README.md)"
        )


class BlockingSentinelConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """Sentinel discovery with a bounded pool that waits for a free connection.

    redis-py only ships a non-blocking Sentinel pool, which raises at
    ``max_connections`` (PITFALLS: 58-64 of 200 concurrent follows failed).
    """


class SentinelMaster(aioredis.Redis):
    """A client of the Sentinel-watched master that also closes its Sentinel links."""

    sentinel_manager: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel_manager is not None:
            await self.sentinel_manager.aclose()


def _master(url: str, pool_class: type[SentinelConnectionPool], **kwargs: Any) -> SentinelMaster:
    target = parse_sentinel(url)
    sentinel_kwargs: dict[str, Any] = {
        "socket_timeout": SENTINEL_TIMEOUT_S,
        "socket_connect_timeout": SENTINEL_TIMEOUT_S,
    }
    if target.sentinel_password:
        sentinel_kwargs["password"] = target.sentinel_password
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), sentinel_kwargs=sentinel_kwargs
    )
    client: SentinelMaster = sentinel.master_for(
        target.service,
        redis_class=SentinelMaster,
        connection_pool_class=pool_class,
        db=target.db,
        username=target.username,
        password=target.password,
        **kwargs,
    )
    client.sentinel_manager = sentinel
    return client


def command_client(url: str, max_connections: int, pool_timeout_s: float) -> aioredis.Redis:
    """The pooled client a node's Redis backends share (not the pub/sub one).

    Callers beyond ``max_connections`` wait up to ``pool_timeout_s`` for one.
    """
    options: dict[str, Any] = {
        "max_connections": max_connections,
        "timeout": pool_timeout_s,
        "socket_timeout": 5,
        "socket_connect_timeout": 2,
        "health_check_interval": 10,
    }
    if is_sentinel(url):
        return _master(url, BlockingSentinelConnectionPool, **options)
    pool = aioredis.BlockingConnectionPool.from_url(url, **options)
    return aioredis.Redis.from_pool(pool)


def link(url: str, **options: Any) -> aioredis.Redis:
    """A client for one dedicated connection (pub/sub, a feed's probe), found anew on open."""
    if is_sentinel(url):
        return _master(url, SentinelConnectionPool, **options)
    return aioredis.Redis.from_url(url, **options)
