"""MemoryBroker: in-process fan-out, a registry of listeners per incident.

Single node only: it knows nothing of other processes. That is all the
embedded backend needs (one process owns the SQLite files, see sqlite.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from server.domain.events import StoredEvent
from server.fanout.base import Listener

log = logging.getLogger(__name__)


class MemoryBroker:
    """Calls each listener of an incident synchronously, in registration order.

    No queue and no task per listener: the log, right after a commit, hands
    over events in seq order and every listener sees them in that order.
    Nothing can be lost between ``publish`` and the listeners, so there is no
    gap to fill. A listener that raises is logged and does not stop the others.
    """

    def __init__(self) -> None:
        self._listeners: dict[str, list[Listener]] = {}

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        self._listeners.clear()

    async def subscribe(self, incident: str, listener: Listener) -> None:
        self._listeners.setdefault(incident, []).append(listener)

    def unsubscribe(self, incident: str, listener: Listener) -> None:
        listeners = self._listeners.get(incident)
        if listeners and listener in listeners:
            listeners.remove(listener)
            if not listeners:
                del self._listeners[incident]

    def publish(self, incident: str, events: Sequence[StoredEvent]) -> None:
        for listener in tuple(self._listeners.get(incident, ())):
            try:
                listener(events)
            except Exception:
                log.exception("listener failed for incident %s", incident)

    def health(self) -> dict[str, Any]:
        return {"healthy": True}

    def subscriptions(self) -> int:
        """Incidents with at least one listener (for tests and probes)."""
        return len(self._listeners)
