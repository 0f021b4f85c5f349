"""The storage/fan-out interface every backend implements.

Guarantees a backend must give (the contract suite in tests/contract checks them):

* ``append`` returns only after the event is durable. It assigns the next
  ``seq`` of the incident atomically: gapless, strictly increasing from 1.
* Idempotency: a draft whose ``(actor_user, client_id)`` was stored before is not
  stored again; the original event comes back with ``duplicate=True``. If the
  stored event is a different action (``is_same_action``), append raises
  ClientIdReused instead.
* Fan-out: after an append is durable, subscribers of the incident get the
  event, per incident in ``seq`` order, each exactly once from the live path.
  The live path may still miss events (a dropped pub/sub link): subscribers
  detect the gap from ``seq`` and ``read`` the missing range. Resume is
  always served from the log, never from the fan-out.
* ``read(incident, after_seq, limit)`` returns up to ``limit`` events with
  ``seq > after_seq`` in order; ``limit`` must be >= 1.
* ``head`` returns the incident's epoch and last seq, or None if unknown.
  The epoch changes if a log is ever reset, so old positions are refused.
* The incident index (``list_incidents``) holds a summary per incident,
  equal to ``IncidentState.summary()`` of its log, updated with each append
  before the append is acknowledged. Listing loads no projection and
  subscribes to nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from server.domain.events import AppendResult, EventDraft, StoredEvent


def is_same_action(earlier: StoredEvent, draft: EventDraft) -> bool:
    """Whether a draft is a retry of ``earlier`` rather than a reuse of its client id.

    A retried ``incident.create`` decides a fresh incident id each time, so only
    its type is compared.
    """
    if earlier.type != draft.type:
        return False
    return draft.type == "incident.created" or earlier.incident == draft.incident


#: Receives committed events of one incident, in seq order. Called on the event
#: loop, synchronously: it must not block (no I/O, no awaits).
Listener = Callable[[Sequence[StoredEvent]], None]


@dataclass(frozen=True, slots=True)
class LogHead:
    """A position in an incident's log: (epoch, seq)."""

    epoch: str
    seq: int


#: Keyset position in the incident index: (updated ms, incident id) of the
#: last entry of a page. The next page holds entries strictly after it in
#: index order (updated descending, then id descending).
IndexCursor = tuple[int, str]


@dataclass(frozen=True, slots=True)
class IncidentQuery:
    """A page of the incident index for one organisation."""

    #: Only incidents this organisation takes part in.
    org: str
    status: str | None = None
    category: str | None = None
    #: Lower-case substring of the title (matched against ``title.lower()``).
    text: str = ""
    #: Only incidents updated strictly after this time (ms).
    updated_after: int | None = None
    after: IndexCursor | None = None
    limit: int = 100

    def matches(self, summary: dict[str, Any]) -> bool:
        """The filter every backend applies, in these exact semantics."""
        return (
            self.org in summary["orgs"]
            and (not self.status or summary["status"] == self.status)
            and (not self.category or summary["category"] == self.category)
            and (not self.text or self.text in summary["title"].lower())
            and (self.updated_after is None or summary["updated"] > self.updated_after)
        )


@dataclass(frozen=True, slots=True)
class IncidentPage:
    #: Summaries, most recently updated first.
    incidents: list[dict[str, Any]]
    #: Where the next page starts, or None if this was the last. A page may
    #: hold fewer than ``limit`` entries and still have a next one (a backend
    #: bounds the work one request may do).
    next: IndexCursor | None


class EventLog(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def enqueue(self, draft: EventDraft) -> asyncio.Future[AppendResult]:
        """Queue an append; the future resolves once it is durable and fanned out.

        Drafts of one incident enqueued by one node get seqs in enqueue order.
        The future fails with StorageUnavailable, LogNotFound or ClientIdReused.
        """
        ...

    async def append(self, draft: EventDraft) -> AppendResult:
        """``await enqueue(draft)``."""
        ...

    async def read(self, incident: str, after_seq: int, limit: int) -> list[StoredEvent]: ...

    async def head(self, incident: str) -> LogHead | None: ...

    async def find(self, incident: str, actor_user: str, client_id: str) -> StoredEvent | None:
        """The event this user's client id produced in this incident, if any."""
        ...

    def health(self) -> dict[str, Any]:
        """``healthy`` (bool) plus what an operator needs to see, for /healthz."""
        ...

    async def incidents(self) -> list[str]:
        """Every incident with a log, oldest first."""
        ...

    async def list_incidents(self, query: IncidentQuery) -> IncidentPage:
        """A page of the incident index, most recently updated first."""
        ...

    async def subscribe(self, incident: str, listener: Listener) -> None:
        """Deliver the incident's committed events to ``listener`` from now on.

        Returns once the live path is active: every event committed after
        this returns reaches the listener. Read the log *after* subscribing
        to get everything before, and let seq drop the overlap.
        """
        ...

    def unsubscribe(self, incident: str, listener: Listener) -> None:
        """Stop delivering to ``listener`` (takes effect at once, cleanup may lag)."""
        ...
