"""IncidentState per incident, loaded from the log on demand, kept current while cached.

A cached projection subscribes to its incident's fan-out and applies each
committed event. If an event arrives out of line (seq != state.seq + 1, say a
fan-out link dropped events) the projection is marked stale and the next
``get`` reads the missing tail from the log: the log is the truth.

The cache is bounded: at most ``max_cached`` projections stay in memory, least
recently used first out, and an evicted projection is unsubscribed (on Redis
that is one channel less for this node). Two kinds are never evicted:

* pinned ones (``pin``/``unpin``): the hub pins every incident that has a
  follower on this node, so the incidents people are working on stay warm;
* ones being loaded or caught up (their per-incident lock is busy).

Memory kept per incident id is only that of cached projections: an id that
has no log leaves nothing behind (no lock, no entry), so a client asking for
made-up ids cannot grow the node.

Each projection is bounded too: it keeps its newest ``max_messages`` messages
(and the ones ``kept`` says the live rules still need: urgent ones awaiting
their acknowledgement), so a followed incident posted to all day does not grow
the node. Whatever needs an older message (the whole view, a reply to it, an
edit, an acknowledgement or a receipt of it) asks ``whole``, which folds the
log up to the cached state's seq: the same state, read from the truth.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import partial

from server.domain.events import StoredEvent
from server.domain.incident import IncidentState, MessageState
from server.fanout.base import Broker, Listener
from server.services.keyed_locks import KeyedLocks
from server.storage.base import EventLog

_PAGE = 1_000

#: Default bound of cached projections (LIAISON_PROJECTION_CACHE). A busy
#: incident's projection holds its tasks and its newest messages: up to about
#: a MB with the default message bound.
DEFAULT_MAX_CACHED = 1_000
#: Default of messages each cached projection keeps (LIAISON_PROJECTION_MESSAGES).
DEFAULT_MAX_MESSAGES = 1_000

#: Which messages a projection keeps beyond its bound (the app passes the
#: deadline rule's exact test, domain/deadlines.py ``ack_due``).
Kept = Callable[[IncidentState, MessageState], bool]


def urgent_open(state: IncidentState, msg: MessageState) -> bool:
    """Without the deadline rules at hand: every urgent message not retracted."""
    return msg.urgent and not msg.retracted


class Projections:
    def __init__(
        self,
        log: EventLog,
        broker: Broker,
        max_cached: int = DEFAULT_MAX_CACHED,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        kept: Kept = urgent_open,
    ) -> None:
        if max_cached < 1 or max_messages < 0:
            raise ValueError("max_cached must be at least 1, max_messages at least 0")
        self._log = log
        self._broker = broker
        self._max = max_cached
        #: 0: no bound. Trimmed once an eighth over it, so not on every post.
        self._max_messages = max_messages
        self._trim_at = max_messages + max_messages // 8
        self._kept = kept
        #: Least recently used first.
        self._states: OrderedDict[str, IncidentState] = OrderedDict()
        self._listeners: dict[str, Listener] = {}
        self._stale: set[str] = set()
        self._locks = KeyedLocks()
        self._pins: dict[str, int] = {}

    async def get(self, incident: str) -> IncidentState | None:
        """The current state, or None if the incident has no log."""
        state = self._states.get(incident)
        if state is not None and incident not in self._stale:
            self._states.move_to_end(incident)
            return state
        async with self._locks.hold(incident):  # busy: not evicted meanwhile
            state = self._states.get(incident)
            if state is None:
                state = await self._load(incident)
                if state is None:
                    return None
            while incident in self._stale:
                self._stale.discard(incident)
                await self._catch_up(state)
            self._states.move_to_end(incident)
        self.evict()
        return state

    async def _load(self, incident: str) -> IncidentState | None:
        """Subscribe, then read the log: nothing committed meanwhile is missed."""
        head = await self._log.head(incident)
        if head is None:
            return None  # nothing is kept for an id without a log
        listener = partial(self._on_events, incident)
        self._listeners[incident] = listener
        try:
            await self._broker.subscribe(incident, listener)
            state = IncidentState(id=incident, epoch=head.epoch)
            await self._catch_up(state)
        except BaseException:
            self._listeners.pop(incident, None)
            self._stale.discard(incident)
            self._broker.unsubscribe(incident, listener)
            raise
        self._states[incident] = state
        return state

    # ------------------------------------------------------------ bounding

    def pin(self, incident: str) -> None:
        """Keep ``incident`` cached until as many ``unpin`` calls (a follower holds it)."""
        self._pins[incident] = self._pins.get(incident, 0) + 1

    def unpin(self, incident: str) -> None:
        left = self._pins.get(incident, 0) - 1
        if left > 0:
            self._pins[incident] = left
        else:
            self._pins.pop(incident, None)
            self.evict()

    def evict(self) -> None:
        """Drop least recently used projections beyond the bound, skipping held ones."""
        excess = len(self._states) - self._max
        if excess <= 0:
            return
        victims = []
        for incident in self._states:  # least recently used first
            if incident not in self._pins and not self._locks.busy(incident):
                victims.append(incident)
                if len(victims) == excess:
                    break
        for incident in victims:
            self._drop(incident)

    def forget(self, incident: str) -> None:
        """Drop an incident taken out of the log (retention), pinned or not."""
        if incident in self._states:
            self._drop(incident)
        self._pins.pop(incident, None)

    def _drop(self, incident: str) -> None:
        del self._states[incident]
        self._stale.discard(incident)
        self._broker.unsubscribe(incident, self._listeners.pop(incident))

    async def whole(self, incident: str, seq: int = 0) -> IncidentState | None:
        """The state with every message, at least up to ``seq`` (None: no log).

        The cached state itself while it has trimmed nothing; else a new one
        folded from the log up to the cached state's seq: the same answer the
        unbounded projection gave, not kept (it is the reader's to drop).
        """
        state = await self.at_least(incident, seq)
        if state is None or not state.trimmed_upto:
            return state
        upto = state.seq
        whole = IncidentState(id=incident, epoch=state.epoch)
        while whole.seq < upto:
            before = whole.seq
            for ev in await self._log.read(incident, whole.seq, min(_PAGE, upto - whole.seq)):
                if ev.seq == whole.seq + 1 and ev.seq <= upto:
                    whole.apply(ev)
            if whole.seq == before:
                break  # the log lost its events meanwhile (archived): what it had
        return whole

    async def at_least(self, incident: str, seq: int) -> IncidentState | None:
        """The state once it has applied every event up to ``seq`` (the log's
        events a reader is about to be shown: their audience is decided on a
        state that knows who had joined by then)."""
        state = await self.get(incident)
        if state is None or state.seq >= seq:
            return state
        async with self._locks.hold(incident):
            await self._catch_up(state)
        return state

    def current(self, incident: str, events: Sequence[StoredEvent]) -> IncidentState | None:
        """The cached state with ``events`` applied first (no I/O), if it is whole.

        Fan-out decides each event's audience on the state that includes it;
        the projection's own listener may not have run yet for this batch.
        None: not cached, or stale (the caller reads through ``at_least``).
        """
        self._on_events(incident, events)
        if incident in self._stale:
            return None
        return self._states.get(incident)

    def cached(self, incident: str) -> bool:
        return incident in self._states

    def known_participant(self, incident: str, org: str) -> bool:
        """Whether a cached state already shows ``org`` taking part (no I/O)."""
        state = self._states.get(incident)
        return state is not None and state.participates(org)

    def stats(self) -> dict[str, int]:
        """Sizes of what this cache holds, for tests and /healthz-style probes."""
        return {
            "cached": len(self._states),
            "pinned": len(self._pins),
            "locks": len(self._locks),
            "max": self._max,
            "messages": sum(len(s.messages) for s in self._states.values()),
        }

    # ---------------------------------------------------------------- apply

    async def _catch_up(self, state: IncidentState) -> None:
        while True:
            events = await self._log.read(state.id, state.seq, _PAGE)
            for ev in events:
                if ev.seq == state.seq + 1:
                    state.apply(ev)
            self._trim(state)
            if len(events) < _PAGE:
                return

    def _trim(self, state: IncidentState) -> None:
        if self._max_messages and len(state.messages) > self._trim_at:
            state.trim_messages(self._max_messages, self._kept)

    def _on_events(self, incident: str, events: Sequence[StoredEvent]) -> None:
        state = self._states.get(incident)
        if state is None:
            if incident in self._listeners:  # still loading: read the log again after
                self._stale.add(incident)
            return
        for ev in events:
            if ev.seq <= state.seq:
                continue
            if ev.seq != state.seq + 1 or incident in self._stale:
                self._stale.add(incident)
                break
            state.apply(ev)
        self._trim(state)
