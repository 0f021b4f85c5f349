"""RedisBroker: fan-out over Redis pub/sub, per-incident channels, supervised, gap-filled.

Pub/sub is only a wake-up; the log is the truth. Three rules make delivery to
this node's listeners exactly-once and in seq order anyway:

* **Feeds.** Each followed incident has a ``Feed`` remembering the last seq it
  delivered. Older events are dropped (the local fast path and the pub/sub
  echo deliver the same events twice); a jump ahead is a gap, filled from the
  log before anything newer is delivered.
* **Subscriptions are confirmed.** ``subscribe`` returns once Redis confirmed
  the channel, so the caller can read the log afterwards and miss nothing.
* **The subscriber is supervised.** A node publishes a probe to itself every
  ``probe_interval_s``; if it has not come back within ``probe_timeout_s`` the
  connection is deaf or half-open (python-socketio #1581, redis-py #2417). It
  is then dropped, rebuilt with capped exponential backoff, every channel is
  subscribed again, and every feed is filled from the log.

    ┌ node ──────────────────────────────────────────────────────────┐
    │ append ok ─▶ publish ───────┐                                   │
    │                             ├─▶ Feed(incident) ─▶ listeners     │
    │ pub/sub reader ─────────────┘      ▲  gap? read the log         │
    └────────────────────────────────────┼────────────────────────────┘
                                         Redis stream (the truth)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from server.domain.events import StoredEvent
from server.errors import StorageUnavailable
from server.fanout.base import History, Listener
from server.storage import redis_connect
from server.storage import redis_keys as keys
from server.storage.codec import unpack_events

log = logging.getLogger(__name__)

_FILL_PAGE = 1_000


@dataclass(frozen=True, slots=True)
class RedisBrokerConfig:
    #: How often the subscriber proves it is alive by receiving its own probe.
    probe_interval_s: float = 1.0
    #: Without a probe for this long the subscriber connection is rebuilt.
    probe_timeout_s: float = 4.0
    #: Reconnect backoff: doubles from ``backoff_min_s`` up to ``backoff_max_s``.
    backoff_min_s: float = 0.2
    backoff_max_s: float = 5.0
    #: How long ``subscribe`` waits for Redis to confirm before failing.
    subscribe_timeout_s: float = 5.0


@dataclass(eq=False)
class Feed:
    """In-order, exactly-once delivery of one incident to this node's listeners."""

    incident: str
    listeners: list[Listener] = field(default_factory=list)
    #: Last seq handed to the listeners; None until the subscription is confirmed.
    last: int | None = None
    filling: bool = False
    buffer: list[StoredEvent] = field(default_factory=list)

    def emit(self, events: Sequence[StoredEvent]) -> None:
        for listener in tuple(self.listeners):
            try:
                listener(events)
            except Exception:
                log.exception("listener failed for incident %s", self.incident)


class RedisBroker:
    """The Broker of the Redis backend (contract: server/fanout/base.py).

    The append script publishes each committed run on the incident's channel
    atomically with storing it; ``publish`` only hands the same run to this
    node's feeds (the fast path: no round trip before the ack). Feeds drop the
    echo that comes back over the channel.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        url: str,
        node_id: str,
        history: History,
        config: RedisBrokerConfig = RedisBrokerConfig(),
    ) -> None:
        self._redis = client
        #: A connection of its own for pub/sub, named ``liaison-sub-<node>`` in CLIENT LIST.
        self._subscriber = redis_connect.link(
            url, socket_connect_timeout=2, client_name=f"liaison-sub-{node_id}"
        )
        self._node = node_id
        self._history = history
        self.config = config
        self._feeds: dict[str, Feed] = {}
        self._pubsub: Any = None
        self._confirmations: dict[str, asyncio.Future[None]] = {}
        self._last_probe = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: Times the subscriber connection came up (1 at start; more after faults).
        self.connections = 0
        self.connected = asyncio.Event()
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="redis-broker")

    async def close(self) -> None:
        self._stopping.set()
        tasks = [t for t in (self._task, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._drop_pubsub()
        await self._subscriber.aclose()
        self._feeds.clear()

    def health(self) -> dict[str, Any]:
        connected = self.connected.is_set()
        return {
            "healthy": connected,
            "subscriber": {"connected": connected, "connections": self.connections},
        }

    # ------------------------------------------------------------ subscribing

    async def subscribe(self, incident: str, listener: Listener) -> None:
        feed = self._feeds.get(incident)
        if feed is not None:
            feed.listeners.append(listener)
            return
        feed = self._feeds[incident] = Feed(incident, [listener])
        try:
            await self._confirm(keys.channel(incident))
            head = await self._history.head(incident)
            feed.last = head.seq if head is not None else 0
        except BaseException:
            if self._feeds.get(incident) is feed:
                del self._feeds[incident]
            raise

    def unsubscribe(self, incident: str, listener: Listener) -> None:
        feed = self._feeds.get(incident)
        if feed is None or listener not in feed.listeners:
            return
        feed.listeners.remove(listener)
        if not feed.listeners:
            del self._feeds[incident]
            self._spawn(self._unsubscribe_channel(keys.channel(incident)))

    async def _confirm(self, channel: str) -> None:
        """Subscribe and wait for Redis to confirm it (or for a reconnect that does)."""
        fut = self._confirmations.get(channel)
        if fut is None or fut.done():
            fut = self._confirmations[channel] = asyncio.get_running_loop().create_future()
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.subscribe(channel)
        try:
            await asyncio.wait_for(asyncio.shield(fut), self.config.subscribe_timeout_s)
        except TimeoutError as exc:
            raise StorageUnavailable("Redis did not confirm the subscription") from exc

    async def _unsubscribe_channel(self, channel: str) -> None:
        resubscribed = any(keys.channel(i) == channel for i in self._feeds)
        if self._pubsub is not None and not resubscribed:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.unsubscribe(channel)

    # -------------------------------------------------------------- delivery

    def publish(self, incident: str, events: Sequence[StoredEvent]) -> None:
        """This node's just-committed events (they are on the channel already)."""
        self._deliver(incident, events)

    def _deliver(self, incident: str, events: Sequence[StoredEvent]) -> None:
        """Hand events to the feed; used by the pub/sub reader and local appends."""
        feed = self._feeds.get(incident)
        if feed is None or feed.last is None:
            return
        if feed.filling:
            feed.buffer.extend(events)
            return
        ready: list[StoredEvent] = []
        for i, ev in enumerate(events):
            if ev.seq <= feed.last:
                continue
            if ev.seq != feed.last + 1:
                feed.filling = True
                feed.buffer.extend(events[i:])
                self._spawn(self._fill(feed))
                break
            ready.append(ev)
            feed.last = ev.seq
        if ready:
            feed.emit(ready)

    async def _fill(self, feed: Feed) -> None:
        """Deliver from the log after ``feed.last``, then whatever was buffered.

        A gap is filled only up to the newest seq announced (the buffer's
        last): with LIAISON_REDIS_MIN_REPLICAS a later entry may still wait
        for its replicas and could be lost in a failover, while an announced
        one was confirmed with everything before it (storage/redis_replicas.py).
        """
        try:
            while self._feeds.get(feed.incident) is feed and feed.last is not None:
                cap = max((ev.seq for ev in feed.buffer), default=None)
                read = await self._history.read(feed.incident, feed.last, _FILL_PAGE)
                last = feed.last
                events = [ev for ev in read if ev.seq > last and (cap is None or ev.seq <= cap)]
                if events:
                    feed.last = events[-1].seq
                    feed.emit(events)
                if len(read) == _FILL_PAGE and (cap is None or feed.last < cap):
                    continue
                pending, feed.buffer = feed.buffer, []
                later = [ev for ev in pending if ev.seq > feed.last]
                if later and later[0].seq != feed.last + 1:
                    feed.buffer = later  # the log had not shown them yet: read again
                    await asyncio.sleep(0.01)
                    continue
                if later:
                    feed.last = later[-1].seq
                    feed.emit(later)
                if not feed.buffer:
                    break
        except (StorageUnavailable, RedisError, OSError) as exc:
            _reraise_if_cancelled()
            log.warning("filling %s from the log failed (%s); retrying", feed.incident, exc)
            feed.filling = False
            self._spawn(self._refill_later(feed))
        finally:
            feed.filling = False

    async def _refill_later(self, feed: Feed) -> None:
        """Retry a failed fill: no new event may ever come to reveal the gap."""
        await self._pause(self.config.backoff_min_s * 5)
        if self._feeds.get(feed.incident) is feed and not feed.filling:
            feed.filling = True
            await self._fill(feed)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ supervision

    async def _supervise(self) -> None:
        backoff = self.config.backoff_min_s
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                _reraise_if_cancelled()
                log.warning("Redis subscriber lost (%s); reconnecting in %.1fs", exc, backoff)
            self.connected.clear()
            await self._drop_pubsub()
            await self._drop_idle_commands()
            await self._pause(backoff)
            backoff = min(backoff * 2, self.config.backoff_max_s)
            if self.connected.is_set():
                backoff = self.config.backoff_min_s

    async def _drop_idle_commands(self) -> None:
        """Close the idle connections of the node's shared command pool.

        When Redis restarts (or fails over), every pooled connection that sat
        idle through it is dead, and the first command sent on each failed
        once after Redis was back: a login refused, an append answered
        ``outcome_unknown``, an audit record not stored. The subscriber sees
        the loss at once, so the idle ones are closed now and the next
        commands connect afresh. Connections in use are left to their
        commands, which close them on error (redis-py).
        """
        try:
            await self._redis.connection_pool.disconnect(inuse_connections=False)
        except (RedisError, OSError) as exc:
            log.warning("closing the idle Redis connections failed: %s", exc)

    async def _listen(self) -> None:
        pubsub: Any = self._subscriber.pubsub()
        channels = [keys.probe_channel(self._node), *(keys.channel(i) for i in self._feeds)]
        try:
            # The probe only runs once subscribed: a connection that goes deaf
            # during its handshake must be given up here, or the node would
            # wait on it with no liveness check at all. It is this node's own
            # pub/sub connection, dropped after the failure (PITFALLS: never
            # cancel commands on a shared one).
            async with asyncio.timeout(self.config.probe_timeout_s):
                await pubsub.subscribe(*channels)
        except BaseException:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()
            raise
        self._pubsub = pubsub
        self._last_probe = time.monotonic()
        prober = asyncio.create_task(self._probe())
        try:
            refilled = False
            while True:
                message = await pubsub.get_message(timeout=self.config.probe_interval_s)
                if message is not None:
                    self._handle(message)
                if not refilled and self._probe_ok():
                    # Subscribed again: anything published while we were away
                    # is in the log; fill every feed from it.
                    refilled = True
                    self.connected.set()
                    self.connections += 1
                    for feed in list(self._feeds.values()):
                        if feed.last is not None and not feed.filling:
                            feed.filling = True
                            self._spawn(self._fill(feed))
                if time.monotonic() - self._last_probe > self.config.probe_timeout_s:
                    raise ConnectionError("no probe seen: the subscriber is deaf")
                if self._stopping.is_set():
                    raise asyncio.CancelledError
        finally:
            prober.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await prober

    def _probe_ok(self) -> bool:
        return time.monotonic() - self._last_probe < self.config.probe_timeout_s

    async def _pause(self, seconds: float) -> None:
        """Sleep, or return early when the fan-out closes.

        Cancellation alone is not enough to stop these loops: redis-py has been
        seen to absorb a cancel that lands inside a command.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        if self._stopping.is_set():
            raise asyncio.CancelledError

    async def _probe(self) -> None:
        while True:
            try:
                await self._redis.publish(keys.probe_channel(self._node), b"1")
            except (RedisError, OSError):
                _reraise_if_cancelled()
            await self._pause(self.config.probe_interval_s)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        raw_channel = message.get("channel")
        channel = raw_channel.decode() if isinstance(raw_channel, bytes) else str(raw_channel)
        if kind == "subscribe":
            fut = self._confirmations.get(channel)
            if fut is not None and not fut.done():
                fut.set_result(None)
            if channel == keys.probe_channel(self._node):
                self._last_probe = time.monotonic()
            return
        if kind != "message":
            return
        if channel == keys.probe_channel(self._node):
            self._last_probe = time.monotonic()
            return
        try:
            events = unpack_events(message["data"])
        except Exception:
            log.exception("undecodable message on %s", channel)
            return
        if events:
            self._deliver(events[0].incident, events)

    async def _drop_pubsub(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()


def _reraise_if_cancelled() -> None:
    """redis-py may turn a cancellation into a ConnectionError; do not swallow it."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
