"""IncidentState per incident, loaded from the log once and kept current.

A cached projection subscribes to its incident's fan-out and applies each
committed event. If an event arrives out of line (seq != state.seq + 1, say a
fan-out link dropped events) the projection is marked stale and the next
``get`` reads the missing tail from the log: the log is the truth.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial

from server.domain.events import StoredEvent
from server.domain.incident import IncidentState
from server.storage.base import EventLog

_PAGE = 1_000


class Projections:
    def __init__(self, log: EventLog) -> None:
        self._log = log
        self._states: dict[str, IncidentState] = {}
        self._stale: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, incident: str) -> IncidentState | None:
        """The current state, or None if the incident has no log."""
        state = self._states.get(incident)
        if state is not None and incident not in self._stale:
            return state
        lock = self._locks.setdefault(incident, asyncio.Lock())
        async with lock:
            state = self._states.get(incident)
            if state is None:
                head = await self._log.head(incident)
                if head is None:
                    return None
                state = IncidentState(id=incident, epoch=head.epoch)
                await self._catch_up(state)
                self._states[incident] = state
                await self._log.subscribe(incident, partial(self._on_events, incident))
            elif incident in self._stale:
                self._stale.discard(incident)
                await self._catch_up(state)
            return state

    async def all(self) -> list[IncidentState]:
        states = []
        for incident in await self._log.incidents():
            state = await self.get(incident)
            if state is not None:
                states.append(state)
        return states

    async def _catch_up(self, state: IncidentState) -> None:
        while True:
            events = await self._log.read(state.id, state.seq, _PAGE)
            for ev in events:
                if ev.seq == state.seq + 1:
                    state.apply(ev)
            if len(events) < _PAGE:
                return

    def _on_events(self, incident: str, events: Sequence[StoredEvent]) -> None:
        state = self._states.get(incident)
        if state is None:
            return
        for ev in events:
            if ev.seq <= state.seq:
                continue
            if ev.seq != state.seq + 1 or incident in self._stale:
                self._stale.add(incident)
                return
            state.apply(ev)
