"""Delivery of webhooks: derived from the log, ordered per incident, at least once.

Nothing pending is held only in memory (DESIGN.md, "Time, escalations and
background work"). A subscription's work is, for every incident its
organisation takes part in (the incident index), the events after the
subscription's cursor for that incident (``WebhookStore``)::

    every poll_s, per subscription this node holds the lease of:
      index(org): incidents whose updated moved (all of them every FULL_EVERY polls)
        ──seq > cursor?──▶ log.read(after cursor) ──audience+shaped──▶ POST
                                    ◀── 2xx: advance the cursor
                                    ◀── else: back off, retry the same event

* **Ordered per incident.** One event at a time per subscription; the next
  is sent only after the receiver accepted the one before. A failure blocks
  its subscription (every incident: one receiver) until the retry succeeds.
* **At least once.** The cursor moves only after a 2xx, so a crash between
  the answer and the write sends that event again, with the same
  ``webhook-id``: receivers deduplicate by it.
* **Restart-proof.** A restarted node (or the node that takes a lapsed lease
  over, Redis mode) reads the cursors and goes on from the log.
* **Back-off** doubles from ``retry_base_s`` to ``retry_cap_s``; it is stored
  with the subscription, so a restart does not hammer a receiver that is
  down. Failing for ``disable_after_s`` disables the subscription (an audit
  record and a notice in its delivery log); a replay enables it again.
* **Visibility** is that of a live reader of the subscription's organisation:
  ``audience`` and ``shaped``, the functions the timeline uses, with a
  synthetic user that is nobody's RED recipient. A webhook carries nothing
  its organisation may not read (placeholders, redaction markers).
* **Off the hot path.** Workers are tasks of their own reading the log; the
  hub and fan-out never wait for a receiver.
* **Observable** (``watch``): attempts delivered and failed, subscriptions
  disabled, the subscriptions this node delivers and how many of them are
  failing, how old the oldest event a failing receiver holds up is, and the
  lag from an event's commit to its receiver's 2xx.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import orjson

from protocol.webhooks import signature_header
from server import __version__
from server.backends import node_id
from server.domain.audience import Audience, Reader, event_meta
from server.domain.events import StoredEvent
from server.domain.sharing import AgreementsView
from server.errors import StorageUnavailable
from server.metrics import Metrics
from server.services.envelope import shaped
from server.services.projections import Projections
from server.services.webhooks import WebhookConfig, Webhooks, now_ms
from server.settings import Settings
from server.storage.audit import AuditEntry
from server.storage.base import EventLog, IncidentQuery
from server.storage.webhooks import DeliveryRecord, DeliveryState, Subscription, WebhookStore

log = logging.getLogger(__name__)

#: Events read from the log at once for one incident.
BATCH = 100
#: Incidents per page of the index walk.
INDEX_PAGE = 200
#: Who the audit log names for what delivery does by itself.
ACTOR = "system:webhooks"
#: Longest pause between two tries while storage is unavailable.
OUTAGE_CAP_S = 10.0
#: A pass every poll looks only at incidents whose ``updated`` moved (the
#: index order); every ``FULL_EVERY`` polls one looks at all of them. Why:
#: a full walk of an organisation's index is a page of 200 per query, and
#: closed incidents stay in it, so walking it every second costs a big
#: deployment steadily. Why still full walks: ``updated`` is what the
#: organisation may see, so a placeholder (another organisation's restricted
#: event, a RED one) does not move it; a placeholder that ends an incident's
#: burst is delivered by the next full walk, at most ``FULL_EVERY`` polls late.
FULL_EVERY = 10
#: The counters ``watch`` reports (``liaison_webhook_<name>_total``).
COUNTED = {
    "delivered": "Webhook attempts its receiver accepted (2xx).",
    "failed": "Webhook attempts that failed (no answer, a timeout, or not 2xx); retried.",
    "disabled": "Webhook subscriptions disabled after failing for LIAISON_WEBHOOK_DISABLE_AFTER_S.",
}
#: Quick passes look this far below the watermark: nodes' clocks differ, and
#: an append racing a walk may carry a ts a little older than what it saw.
SKEW_MS = 5_000


def webhook_id(sub: Subscription, ev: StoredEvent) -> str:
    """The stable id of one event for one subscription (the same on every retry)."""
    return f"{sub.id}_{ev.incident}_{ev.seq}"


def reader_of(sub: Subscription) -> Reader:
    """A reader of the subscription's organisation. Its user id is no user's, so
    it is never among a RED event's recipients (they must be participants)."""
    return Reader(org=sub.org_id, user=f"webhook:{sub.id}")


@dataclass(slots=True)
class _Job:
    """One subscription being delivered by this node, with its latest record."""

    sub: Subscription
    task: asyncio.Task[None] | None = None
    #: The newest ``updated`` of the organisation's index seen by a complete
    #: pass; None until the first. Quick passes look only above it.
    watermark: int | None = None
    #: When the next full pass is due (monotonic seconds).
    full_due: float = 0.0
    #: The ts (ms) of the event its receiver last failed to take; None once
    #: one was taken. What ``liaison_webhook_blocked_seconds`` reports.
    blocked_ms: int | None = None


@dataclass(slots=True)
class _Walk:
    """What one pass saw: the newest ``updated``, and whether it went to the end."""

    newest: int = 0
    complete: bool = True


class WebhookDispatcher:
    def __init__(
        self,
        *,
        store: WebhookStore,
        log: EventLog,
        projections: Projections,
        rules: AgreementsView,
        record: Callable[[AuditEntry], Awaitable[None]],
        node: str,
        config: WebhookConfig,
    ) -> None:
        self.store, self.log, self.projections, self.rules = store, log, projections, rules
        self.record, self.node, self.config = record, node, config
        self._jobs: dict[str, _Job] = {}
        self._woken = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self.counts = dict.fromkeys(COUNTED, 0)
        self._observe_lag: Callable[[float], None] | None = None

    def watch(self, metrics: Metrics) -> None:
        """Report what delivery does in /metrics (deploy/README.md, "Health")."""
        for name, doc in COUNTED.items():
            metrics.watch(
                f"liaison_webhook_{name}",
                doc,
                lambda n=name: float(self.counts[n]),  # type: ignore[misc]
                counter=True,
            )
        metrics.watch(
            "liaison_webhook_subscriptions_held",
            "Enabled webhook subscriptions this node holds the lease of and delivers.",
            lambda: float(sum(j.sub.state.enabled for j in self._jobs.values())),
        )
        metrics.watch(
            "liaison_webhook_failing",
            "Of those, the ones whose receiver is failing (backing off).",
            lambda: float(sum(_failing(j) for j in self._jobs.values())),
        )
        metrics.watch(
            "liaison_webhook_blocked_seconds",
            "Age of the oldest event a failing receiver of this node holds up; 0 if none.",
            self._blocked_s,
        )
        self._observe_lag = metrics.webhook_lag.observe

    def _blocked_s(self) -> float:
        blocked = [j.blocked_ms for j in self._jobs.values() if _failing(j) and j.blocked_ms]
        return max(0.0, (now_ms() - min(blocked)) / 1000) if blocked else 0.0

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open the store (the server's webhook service uses it too), then deliver."""
        await self.store.open()
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.config.timeout_s),
            headers={"User-Agent": f"Liaison-Webhooks/{__version__}"},
        )
        self._task = asyncio.create_task(self._supervise(), name="webhooks")

    async def close(self) -> None:
        tasks = [t for t in (self._task, *(j.task for j in self._jobs.values())) if t]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sub_id in list(self._jobs):
            try:
                await self.store.release(sub_id, self.node)
            except StorageUnavailable as exc:  # it lapses by itself; another node resumes
                log.warning("webhooks: could not release the lease of %s: %s", sub_id, exc)
            except Exception:
                log.exception("webhooks: could not release the lease of %s", sub_id)
        self._jobs.clear()
        if self._session is not None:
            await self._session.close()
        await self.store.close()

    def wake(self) -> None:
        """Look everywhere now rather than at the next poll (a replay, a new subscription)."""
        for job in self._jobs.values():
            job.full_due = 0.0
        self._woken.set()

    async def _nap(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, seconds)):
                await self._woken.wait()

    # ----------------------------------------------------------- supervisor

    async def _supervise(self) -> None:
        """Claim or renew the leases of enabled subscriptions; run one worker per lease."""
        pause = self.config.poll_s
        while True:
            self._woken.clear()
            try:
                await self._claim_round()
                pause = self.config.poll_s
            except asyncio.CancelledError:
                raise
            except StorageUnavailable as exc:
                # Shared storage away (a Redis restart): nothing is lost, the
                # log and the cursors are where they were. Back off, quietly.
                pause = min(pause * 2, OUTAGE_CAP_S)
                log.warning("webhooks: storage unavailable (%s); again in %.1f s", exc, pause)
            except Exception:
                pause = min(pause * 2, OUTAGE_CAP_S)
                log.exception("webhooks: the lease round failed; again in %.1f s", pause)
            await self._nap(pause)

    async def _claim_round(self) -> None:
        subs = {s.id: s for s in await self.store.all() if s.state.enabled}
        ttl = int(self.config.lease_s * 1000)
        for sub_id in list(self._jobs):
            if sub_id not in subs:
                await self._stop(sub_id)
        for sub in subs.values():
            if not await self.store.claim(sub.id, self.node, now_ms(), ttl):
                if sub.id in self._jobs:
                    log.warning("webhooks: lease of %s lost to another node", sub.id)
                    await self._stop(sub.id, release=False)
                continue
            job = self._jobs.get(sub.id)
            if job is None or job.task is None or job.task.done():
                if job is not None and job.task is not None and not job.task.cancelled():
                    failure = job.task.exception()
                    if failure is not None:
                        log.error("webhooks: worker of %s failed: %r; restarting", sub.id, failure)
                job = self._jobs[sub.id] = _Job(sub)
                job.task = asyncio.create_task(self._work(job), name=f"webhook-{sub.id}")

    async def _stop(self, sub_id: str, release: bool = True) -> None:
        job = self._jobs.pop(sub_id)
        if job.task is not None:
            job.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job.task
        if release:
            await self.store.release(sub_id, self.node)

    # --------------------------------------------------------------- worker

    async def _work(self, job: _Job) -> None:
        while True:
            sub = await self.store.get(job.sub.id)
            if sub is None or not sub.state.enabled:
                return
            job.sub = sub
            wait_ms = sub.state.next_attempt_ms - now_ms()
            if wait_ms > 0:
                await asyncio.sleep(min(wait_ms / 1000, self.config.poll_s))
                continue
            try:
                busy = await self._pass(job)
            except asyncio.CancelledError:
                raise
            except StorageUnavailable as exc:
                log.warning("webhooks: %s waits for storage: %s", sub.id, exc)
                await asyncio.sleep(OUTAGE_CAP_S / 10)
                continue
            if not busy:
                await self._nap(self.config.poll_s)

    async def _index(self, org: str, since: int | None) -> AsyncGenerator[dict[str, Any], None]:
        """The incidents ``org`` takes part in (updated after ``since``), page by page."""
        query = IncidentQuery(org=org, updated_after=since, limit=INDEX_PAGE)
        while True:
            page = await self.log.list_incidents(query)
            for summary in page.incidents:
                yield summary
            if page.next is None:
                return
            query = replace(query, after=page.next)

    async def _pass(self, job: _Job) -> bool:
        """One look at the incidents; True if something moved (look again at once)."""
        started = time.monotonic()
        full = job.watermark is None or started >= job.full_due
        since = None if full or job.watermark is None else job.watermark - SKEW_MS
        cursors = await self.store.cursors(job.sub.id)
        walk = _Walk()
        async with contextlib.aclosing(self._index(job.sub.org_id, since)) as index:
            moved = await self._walk(job, index, cursors, walk)
        if walk.complete:
            job.watermark = max(job.watermark or 0, walk.newest)
            if full:
                job.full_due = started + FULL_EVERY * self.config.poll_s
        else:
            job.full_due = 0.0  # cut short (a failure, a replay): look everywhere next time
        return moved

    async def _walk(
        self,
        job: _Job,
        index: AsyncIterator[dict[str, Any]],
        cursors: dict[str, int],
        walk: _Walk,
    ) -> bool:
        sub, moved = job.sub, False
        async for summary in index:
            walk.newest = max(walk.newest, int(summary["updated"]))
            incident = summary["id"]
            if sub.incidents is not None and incident not in sub.incidents:
                continue
            if sub.categories is not None and summary["category"] not in sub.categories:
                continue
            if summary.get("mode", "actual") not in sub.modes:
                continue  # an exercise reaches only a receiver that opted in (SPEC 28)
            cursor = cursors.get(incident)
            if cursor is None:
                cursor = await self._start_at(sub, incident)
                if not await self.store.advance(sub.id, incident, None, cursor):
                    walk.complete = False
                    return True  # replayed meanwhile: read the cursors again
            if summary["seq"] <= cursor:
                continue
            reached = await self._incident(job, incident, cursor)
            if reached is None:
                walk.complete = False
                return False  # the receiver failed: back off
            if reached < summary["seq"]:
                # More than a batch, or a replay moved the cursor: the next
                # pass must see this incident even if its ``updated`` is old.
                walk.complete = False
            moved = moved or reached > cursor
        return moved

    async def _start_at(self, sub: Subscription, incident: str) -> int:
        """Where a subscription begins in an incident: after what was written before it existed.

        Timestamps never go backwards within an incident, so this is the last
        event older than the subscription (0 for an incident created after it).
        """
        after = 0
        while events := await self.log.read(incident, after, BATCH):
            for ev in events:
                if ev.ts_ms >= sub.created_ms:
                    return after
                after = ev.seq
        return after

    async def _incident(self, job: _Job, incident: str, cursor: int) -> int | None:
        """Deliver a batch of one incident after ``cursor``; the cursor it reached.

        Less than the incident's head: more to do, or the cursor moved under
        us (a replay) and the next pass reads it again. None: the receiver
        failed and the subscription backs off.
        """
        sub = job.sub
        events = await self.log.read(incident, cursor, BATCH)
        if not events:
            return cursor
        state = await self.projections.at_least(incident, events[-1].seq)
        stored = handled = cursor
        if state is not None and state.participates(sub.org_id):
            sight = state.sight(reader_of(sub), self.rules, now_ms())
            for ev in events:
                aud = sight.of(event_meta(ev))
                env = shaped(ev, aud)
                if sub.types is None or env["type"] in sub.types:
                    if not await self._send(job, ev, env, aud):
                        if handled > stored:
                            await self.store.advance(sub.id, incident, stored, handled)
                        return None
                    if not await self.store.advance(sub.id, incident, stored, ev.seq):
                        return stored
                    stored = ev.seq
                handled = ev.seq
        else:
            handled = events[-1].seq  # no longer (or not yet) a participant: nothing to send
        if handled > stored and await self.store.advance(sub.id, incident, stored, handled):
            stored = handled
        return stored

    # ------------------------------------------------------------- sending

    async def _send(self, job: _Job, ev: StoredEvent, env: dict[str, Any], aud: Audience) -> bool:
        sub, body, msg_id = job.sub, orjson.dumps(env), webhook_id(job.sub, ev)
        now = now_ms()
        stamp = now // 1000
        keys = [s.secret for s in sub.secrets if s.valid(now)]
        headers = {
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": signature_header(keys, msg_id, stamp, body),
        }
        status, error = None, ""
        started = time.monotonic()
        assert self._session is not None, "the dispatcher is not started"
        try:
            async with self._session.post(
                sub.url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        ok = status is not None and 200 <= status < 300
        if not ok and not error:
            error = f"HTTP {status}"
        entry = DeliveryRecord(
            ts_ms=now,
            kind="attempt",
            incident=ev.incident,
            seq=ev.seq,
            webhook_id=msg_id,
            status=status,
            ok=ok,
            error=error,
            duration_ms=int((time.monotonic() - started) * 1000),
            attempt=sub.state.failures + 1,
        )
        if ok:
            self.counts["delivered"] += 1
            job.blocked_ms = None
            if self._observe_lag is not None:
                self._observe_lag(max(0.0, (now_ms() - ev.ts_ms) / 1000))
            await self._succeeded(job, entry, ev, aud)
        else:
            self.counts["failed"] += 1
            job.blocked_ms = ev.ts_ms
            await self._failed(job, entry)
        return ok

    async def _succeeded(
        self, job: _Job, entry: DeliveryRecord, ev: StoredEvent, aud: Audience
    ) -> None:
        await self.store.record(job.sub.id, entry, self.config.keep)
        if job.sub.state.failures or job.sub.state.next_attempt_ms:
            await self.store.save_state(job.sub.id, DeliveryState())
            job.sub = replace(job.sub, state=DeliveryState())
        if aud.visible and (
            ev.visibility is not None or ev.body.get("tlp") in ("AMBER+STRICT", "RED")
        ):
            # Restricted content handed out is an audit record, as on the timeline.
            detail = {"path": "webhook", "org": job.sub.org_id, "count": 1, "seqs": [ev.seq]}
            await self.record(
                AuditEntry(
                    reader_of(job.sub).user,
                    "incident.read_restricted",
                    ev.incident,
                    "ok",
                    "",
                    detail,
                )
            )

    async def _failed(self, job: _Job, entry: DeliveryRecord) -> None:
        sub, now = job.sub, entry.ts_ms
        failures = sub.state.failures + 1
        since = sub.state.failing_since_ms or now
        retry_at = now + int(self.config.backoff_s(failures) * 1000)
        state = DeliveryState(failures=failures, failing_since_ms=since, next_attempt_ms=retry_at)
        await self.store.record(sub.id, replace(entry, next_retry_ms=retry_at), self.config.keep)
        if now - since >= self.config.disable_after_s * 1000:
            await self._disable(job, state, now)
            return
        await self.store.save_state(sub.id, state)
        job.sub = replace(sub, state=state)

    async def _disable(self, job: _Job, state: DeliveryState, now: int) -> None:
        sub = job.sub
        reason = (
            f"failing since {state.failing_since_ms} (ms) for more than"
            f" {self.config.disable_after_s:g} s; last: {state.failures} attempts"
        )
        disabled = replace(state, enabled=False, disabled_ms=now, disabled_reason=reason)
        await self.store.save_state(sub.id, disabled)
        await self.store.record(
            sub.id, DeliveryRecord(now, "notice", error="disabled: " + reason), self.config.keep
        )
        detail = {"org": sub.org_id, "url": sub.url, "failures": state.failures}
        await self.record(AuditEntry(ACTOR, "webhook.disable", sub.id, "ok", "", detail))
        job.sub = replace(sub, state=disabled)
        self.counts["disabled"] += 1
        log.warning("webhooks: %s disabled: %s", sub.id, reason)


def _failing(job: _Job) -> bool:
    """An enabled subscription backing off after a failed attempt."""
    state = job.sub.state
    return state.enabled and state.failures > 0


def build_webhooks(
    settings: Settings,
    store: WebhookStore,
    event_log: EventLog,
    projections: Projections,
    rules: AgreementsView,
    record: Callable[[AuditEntry], Awaitable[None]],
) -> tuple[Webhooks, WebhookDispatcher]:
    """The admin service and this node's dispatcher, over one store.

    Embedded, the node is always called ``embedded``: a restarted process
    takes its own lease back at once instead of waiting for it to lapse.
    """
    config = WebhookConfig.from_settings(settings)
    node = node_id(settings) if settings.redis_url else "embedded"
    dispatcher = WebhookDispatcher(
        store=store,
        log=event_log,
        projections=projections,
        rules=rules,
        record=record,
        node=node,
        config=config,
    )
    webhooks = Webhooks(store, record, config)
    webhooks.on_change = dispatcher.wake
    return webhooks, dispatcher
