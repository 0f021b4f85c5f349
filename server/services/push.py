"""The push dispatcher: what the feed says "needs you" becomes a Web Push.

One place decides who is pushed what, and it decides nothing itself: for
each user with a subscription it reads that user's own feed
(``FeedService.page`` with kinds ``needs_you``: through ``audience``, the one
function of every read path, as the phone's own feed read would), so a push
holds only what its recipient may see, and an event it may not see makes no
push at all (SPEC section 26)::

    feed runs ──FeedService.page(user, cursor, needs_you)──▶ domain.push.payload
        ──bounded queue──▶ workers ──PushSender (pywebpush, aiohttp)──▶ push service
                                         404/410: subscription deleted
                                         429/5xx/no answer: retried, capped back-off

* **One node sends.** In Redis mode the node holding the ``push`` lease
  reads and sends; the others serve the subscribe routes only. A lease may
  briefly have two holders (storage/leases.py): both would send, with the
  same ``Topic`` header (domain.push.topic), which a push service uses to
  keep one of the two pending.
* **A restart sends nothing again.** Each user's cursor is stored as the
  entries are queued (before they are sent): a push is at most once, as a
  wake-up should be (the feed stays the truth, and the app reads it when
  opened). What was queued and unsent when a node stops is lost, counted in
  ``liaison_push_dropped``. A first subscription starts at the feed's head:
  no backlog.
* **Off the hot path.** The dispatcher wakes on the feed's signal (at most
  every ``poll_s``), never in an append. Each round reads one feed page per
  subscribed user: the cost to watch with many thousands of subscribers.
* **Ends with its session.** A subscription whose session ended (signed out,
  revoked, account disabled) or outlived it is deleted at the next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import orjson

from protocol.errors import ErrorCode, ProtocolError
from server.domain import feed as entries
from server.domain import push as notes
from server.domain.directory import DirectoryView
from server.errors import StorageUnavailable
from server.metrics import Metrics
from server.services.feed import FeedCursor, FeedService
from server.services.push_send import PushAnswer, PushRequest, PushSender
from server.storage.leases import Leases
from server.storage.push import PushStore, PushSubscription

log = logging.getLogger(__name__)

LEASE = "push"
#: Longest pause between two rounds while storage is unavailable.
OUTAGE_CAP_S = 10.0
#: Feed entries one round reads per user at most (the rest next round).
PAGE = 50
NEEDS_YOU = frozenset({entries.NEEDS_YOU})
#: Outcomes counted (liaison_push_<outcome>_total).
OUTCOMES = ("sent", "gone", "retried", "failed", "dropped")


@dataclass(frozen=True, slots=True)
class PushConfig:
    ttl_s: int = 3600
    poll_s: float = 0.5
    lease_s: float = 15.0
    retry_base_s: float = 1.0
    retry_cap_s: float = 60.0
    #: Tries of one push at most (the first and the retries).
    attempts: int = 5
    #: Pushes waiting for a worker at most; past it new ones are dropped.
    queue: int = 1_000
    workers: int = 4


@dataclass(slots=True)
class _Job:
    sub: PushSubscription
    push: PushRequest
    attempt: int = 0


class PushDispatcher:
    def __init__(
        self,
        *,
        store: PushStore,
        feed: FeedService,
        directory: DirectoryView,
        alive: Callable[[PushSubscription], bool],
        leases: Leases,
        node: str,
        sender: PushSender,
        config: PushConfig,
    ) -> None:
        self.store, self.feed, self.directory, self.alive = store, feed, directory, alive
        self.leases, self.node, self.sender, self.config = leases, node, sender, config
        self.queue: asyncio.Queue[_Job] = asyncio.Queue(config.queue)
        self.counts: Counter[str] = Counter()
        self.holding = False
        self._tasks: list[asyncio.Task[None]] = []
        self._retries: set[asyncio.TimerHandle] = set()

    def watch(self, metrics: Metrics) -> None:
        for outcome in OUTCOMES:
            metrics.watch(
                f"liaison_push_{outcome}",
                f"Web Push requests {outcome} (SPEC section 26).",
                lambda o=outcome: float(self.counts[o]),  # type: ignore[misc]
                counter=True,
            )
        metrics.watch("liaison_push_queued", "Pushes waiting to be sent.", self.queue.qsize)

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._supervise(), name="push-rounds")]
        self._tasks += [
            asyncio.create_task(self._work(), name=f"push-send-{i}")
            for i in range(self.config.workers)
        ]

    async def close(self) -> None:
        for handle in self._retries:
            handle.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.counts["dropped"] += self.queue.qsize() + len(self._retries)
        self._retries.clear()
        await self.sender.close()
        if self.holding:
            try:
                await self.leases.release(LEASE, self.node)
            except StorageUnavailable as exc:
                log.warning("push: could not release the lease (it will lapse): %s", exc)
            self.holding = False

    async def _supervise(self) -> None:
        pause = self.config.poll_s
        while True:
            generation = self.feed.generation
            started = time.monotonic()
            try:
                await self.round()
                pause = self.config.poll_s
            except asyncio.CancelledError:
                raise
            except StorageUnavailable as exc:
                pause = min(pause * 2, OUTAGE_CAP_S)
                log.warning("push: storage unavailable (%s); again in %.1f s", exc, pause)
                self.holding = False
            except Exception:
                pause = min(pause * 2, OUTAGE_CAP_S)
                log.exception("push: a round failed; again in %.1f s", pause)
            if pause > self.config.poll_s:
                await asyncio.sleep(pause)
                continue
            await self.feed.wait(generation, self.config.poll_s)
            # Wake on new runs, but at most every poll_s (a busy feed notifies often).
            await asyncio.sleep(max(0.0, self.config.poll_s - (time.monotonic() - started)))

    # ---------------------------------------------------------------- rounds

    async def round(self) -> None:
        """Renew the lease; if held, queue what each subscribed user's feed has new."""
        if not await self.leases.claim(LEASE, self.node, int(self.config.lease_s * 1000)):
            if self.holding:
                log.warning("push: lease lost to another node")
            self.holding = False
            return
        if not self.holding:
            log.info("push: %s sends the pushes", self.node)
            self.holding = True
        for user in await self.store.users():
            await self._user(user)

    async def _user(self, user: str) -> None:
        now_ms = int(time.time() * 1000)
        subs: list[PushSubscription] = []
        for sub in await self.store.of_user(user):
            if sub.expires_ms <= now_ms or not self.alive(sub):
                await self.store.remove(sub.endpoint, user)
                log.info("push: subscription of %s ended with its session", user)
            else:
                subs.append(sub)
        who = self.directory.user(user)
        if not subs or who is None:
            return
        raw = await self.store.cursor(user)
        cursor = FeedCursor.decode(raw) if raw else await self.feed.start_cursor()
        try:
            page = await self.feed.page(who, cursor, NEEDS_YOU, PAGE)
        except ProtocolError as exc:
            if exc.code is not ErrorCode.RESYNC_REQUIRED:
                raise
            # The feed was reset or trimmed below the cursor: go on from its head.
            await self.store.set_cursor(user, await self._head())
            return
        if page.cursor != cursor or raw is None:
            await self.store.set_cursor(user, page.cursor.encode())  # before sending: at most once
        for entry in page.entries:
            push = self._request(entry)
            for sub in subs:
                self._enqueue(_Job(sub, push))

    async def _head(self) -> str:
        return (await self.feed.start_cursor()).encode()

    def _request(self, entry: dict[str, object]) -> PushRequest:
        data = orjson.dumps(notes.payload(entry))
        return PushRequest(data, self.config.ttl_s, notes.urgency(entry), notes.topic(entry))

    def _enqueue(self, job: _Job) -> None:
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            self.counts["dropped"] += 1
            log.warning("push: queue full, a push to %s dropped", job.sub.user_id)

    # --------------------------------------------------------------- sending

    async def _work(self) -> None:
        while True:
            job = await self.queue.get()
            try:
                await self._send(job)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.counts["failed"] += 1
                log.exception("push: sending to %s failed", job.sub.user_id)

    async def _send(self, job: _Job) -> None:
        try:
            answer = await self.sender.send(job.sub, job.push)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self._retry(job, None, f"no answer: {exc!r}")
            return
        status = answer.status
        if 200 <= status < 300:
            self.counts["sent"] += 1
        elif status in (404, 410):
            # The browser unsubscribed, or the push service forgot it (RFC 8030 7.3).
            self.counts["gone"] += 1
            await self.store.remove(job.sub.endpoint)
            log.info("push: subscription of %s is gone (%d); deleted", job.sub.user_id, status)
        elif status == 429 or status >= 500:
            self._retry(job, answer, f"status {status}")
        else:
            self.counts["failed"] += 1
            log.warning("push: the push service refused a push to %s: %d", job.sub.user_id, status)

    def _retry(self, job: _Job, answer: PushAnswer | None, why: str) -> None:
        job.attempt += 1
        if job.attempt >= self.config.attempts:
            self.counts["failed"] += 1
            log.warning("push: giving up a push to %s (%s)", job.sub.user_id, why)
            return
        delay = self.config.retry_base_s * 2 ** (job.attempt - 1)
        if answer is not None and answer.retry_after_s is not None:
            delay = max(delay, answer.retry_after_s)
        delay = min(delay, self.config.retry_cap_s)
        self.counts["retried"] += 1
        loop = asyncio.get_running_loop()

        def again() -> None:
            self._retries.discard(handle)
            self._enqueue(job)

        handle = loop.call_later(delay, again)
        self._retries.add(handle)
