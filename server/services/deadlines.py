"""The deadline engine: a due-time index derived from the log, and one node firing it.

Nothing pending is a timer (DESIGN.md, "Time, escalations and background
work"). The rules are pure (server/domain/deadlines.py); this runs them::

    every poll_s, on the node holding the ``deadlines`` lease:
      head walk: incidents whose head seq moved since the last look
          ──projection at that seq──▶ pending(state) ──▶ the due-time index (a heap)
      due now? ──projection at the head──▶ fire(state) ──▶ append (deterministic id)

* **Rebuilt from events.** A node that takes the lease (at start, or from a
  node that died) walks every incident and builds the index from the
  projections: a restart forgets nothing, and what fired before it is in the
  log, so it does not fire again.
* **Stored once.** The fired event's client id is (rule, incident, subject,
  due) under one system actor: two nodes that both fire (a lease lapsing
  mid-fire, a paused node) append one event; the second gets the duplicate.
* **Off the hot path.** A post costs the engine nothing: it learns of new
  events from the log's heads on its own poll. The walk reads one head per
  open incident per poll (closed ones every ``CLOSED_EVERY`` polls); that is
  the cost to watch in a deployment with many thousands of open incidents.
* **One node.** In Redis mode the lease (storage/leases.py) says which; it is
  renewed every poll and lapses ``lease_s`` after its node stops. A node
  that loses it (or storage) drops its index and rebuilds when it holds it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from dataclasses import dataclass

from server.backends import node_id
from server.domain.deadlines import Deadline, DeadlineConfig, fire, pending
from server.domain.directory import DirectoryView
from server.errors import StorageUnavailable
from server.services.projections import Projections
from server.settings import Settings
from server.storage.base import EventLog
from server.storage.leases import Leases

log = logging.getLogger(__name__)

#: The lease's name (one engine per deployment).
LEASE = "deadlines"
#: Closed incidents hold no deadlines; their heads are looked at every this
#: many polls only (an incident can be reopened).
CLOSED_EVERY = 30
#: Longest pause between two tries while storage is unavailable.
OUTAGE_CAP_S = 10.0


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    rules: DeadlineConfig
    poll_s: float = 1.0
    lease_s: float = 15.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RunnerConfig:
        rules = DeadlineConfig(settings.deadline_urgent_ack_s, settings.deadline_task_ack_s)
        return cls(rules, settings.deadline_poll_s, settings.deadline_lease_s)


class DeadlineRunner:
    def __init__(
        self,
        *,
        log: EventLog,
        projections: Projections,
        directory: DirectoryView,
        leases: Leases,
        node: str,
        config: RunnerConfig,
    ) -> None:
        self._log, self._projections, self._directory = log, projections, directory
        self._leases, self.node, self.config = leases, node, config
        self._task: asyncio.Task[None] | None = None
        self._reset()
        #: Events this node fired (tests and logs; a duplicate is not counted).
        self.fired = 0

    def _reset(self) -> None:
        self.holding = False
        #: incident -> head seq the index was built from.
        self._seen: dict[str, int] = {}
        self._closed: set[str] = set()
        #: incident -> its pending deadlines; the heap holds them by due time
        #: and stale entries (not in here any more) are skipped when popped.
        self._current: dict[str, set[Deadline]] = {}
        self._heap: list[Deadline] = []
        self._polls = 0

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="deadlines")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.holding:
            try:
                await self._leases.release(LEASE, self.node)
            except StorageUnavailable as exc:
                # Storage is down as the node stops: the lease lapses by itself
                # and another node takes over then; nothing is lost.
                log.warning("deadlines: could not release the lease (it will lapse): %s", exc)
            except Exception:
                log.exception("deadlines: could not release the lease")
        self._reset()

    def pending(self) -> list[Deadline]:
        """The deadlines in the index, soonest first (for probes and tests)."""
        return sorted(d for ds in self._current.values() for d in ds)

    async def _supervise(self) -> None:
        pause = self.config.poll_s
        while True:
            try:
                await self.round()
                pause = self.config.poll_s
            except asyncio.CancelledError:
                raise
            except StorageUnavailable as exc:
                pause = min(pause * 2, OUTAGE_CAP_S)
                log.warning("deadlines: storage unavailable (%s); again in %.1f s", exc, pause)
                self._reset()  # the lease may lapse meanwhile: rebuild when held again
            except Exception:
                pause = min(pause * 2, OUTAGE_CAP_S)
                log.exception("deadlines: a round failed; again in %.1f s", pause)
            await asyncio.sleep(pause)

    async def round(self) -> None:
        """Renew the lease; if held, bring the index up to the log and fire what is due."""
        ttl = int(self.config.lease_s * 1000)
        if not await self._leases.claim(LEASE, self.node, ttl):
            if self.holding:
                log.warning("deadlines: lease lost to another node")
            self._reset()
            return
        if not self.holding:
            log.info("deadlines: %s runs the rules; building the index from the log", self.node)
            self.holding = True
        await self._refresh()
        await self._fire_due()

    # ------------------------------------------------------------- the index

    async def _refresh(self) -> None:
        self._polls += 1
        closed_too = self._polls % CLOSED_EVERY == 1
        looked = [i for i in await self._log.incidents() if closed_too or i not in self._closed]
        heads = await self._log.heads(looked)  # one read, not one per incident
        for incident in looked:
            head = heads.get(incident)
            if head is not None and head.seq != self._seen.get(incident):
                await self._index(incident, head.seq)

    async def _index(self, incident: str, seq: int) -> None:
        state = await self._projections.at_least(incident, seq)
        if state is None:
            return
        deadlines = set(pending(state, self.config.rules, self._directory))
        for d in deadlines - self._current.get(incident, set()):
            heapq.heappush(self._heap, d)
        self._current[incident] = deadlines
        self._seen[incident] = state.seq
        if state.status == "closed":
            self._closed.add(incident)
        else:
            self._closed.discard(incident)

    # ---------------------------------------------------------------- firing

    async def _fire_due(self) -> None:
        now = int(time.time() * 1000)
        while self._heap and self._heap[0].due_ms <= now:
            d = heapq.heappop(self._heap)
            if d not in self._current.get(d.incident, ()):
                continue  # met or moved meanwhile
            try:
                await self._fire(d)
            except BaseException:
                heapq.heappush(self._heap, d)  # tried again next round
                raise

    async def _fire(self, d: Deadline) -> None:
        head = await self._log.head(d.incident)
        state = await self._projections.at_least(d.incident, head.seq if head else 0)
        draft = fire(state, d, self._directory, self.config.rules) if state else None
        if draft is not None:
            result = await self._log.enqueue(draft)
            if not result.duplicate:
                self.fired += 1
                log.info("deadlines: %s %s seq %d", draft.type, d.client_id, result.event.seq)
        self._current.get(d.incident, set()).discard(d)
        self._seen.pop(d.incident, None)  # look at it again next round


def build_deadlines(
    settings: Settings,
    event_log: EventLog,
    projections: Projections,
    directory: DirectoryView,
    leases: Leases,
) -> DeadlineRunner:
    """This node's runner. Embedded, the node is ``embedded``: a restarted
    process holds the lease at once."""
    return DeadlineRunner(
        log=event_log,
        projections=projections,
        directory=directory,
        leases=leases,
        node=node_id(settings) if settings.redis_url else "embedded",
        config=RunnerConfig.from_settings(settings),
    )
