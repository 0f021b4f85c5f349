"""The event log interface every storage backend implements.

``EventLog`` is the truth: append with seq, read a range, heads, the
idempotency lookup and the incident index. Live delivery is not its job: that
is the broker's (server/fanout/base.py). A log is built with a ``Deliver``
callable (the broker's ``publish``, wired by server/backends.py) and hands it
every run it commits *before* acknowledging it. The contract suite in
tests/contract checks every guarantee below against every backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from server.domain.events import AppendResult, EventDraft, StoredEvent


def is_same_action(earlier: StoredEvent, draft: EventDraft) -> bool:
    """Whether a draft is a retry of ``earlier`` rather than a reuse of its client id.

    A retried ``incident.create`` names the same incident (its id is derived
    from the client id: ``domain.decide.incident_id_for``), but its incident is
    not compared: a creation retried under another incident id is still a
    retry, answered with the incident it created (both backends; the log
    contract tests it).
    """
    if earlier.type != draft.type:
        return False
    return draft.type == "incident.created" or earlier.incident == draft.incident


#: Takes one incident's just-committed events, in seq order, before their
#: appends are acknowledged: ``Broker.publish``. Synchronous, must not block.
Deliver = Callable[[str, Sequence[StoredEvent]], None]


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
    #: Only the incidents whose ``external_ref`` is exactly this (an indexed lookup).
    ref: str | None = None
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
            and (self.ref is None or summary.get("external_ref") == self.ref)
        )


#: What stays of an archived incident in hot storage (server/services/retention.py
#: writes it): JSON-safe, with at least ``incident``, ``orgs``, ``seq``,
#: ``last_hash`` and ``state``; the rest (file, sha256, policy...) is the
#: retention service's.
Tombstone = dict[str, Any]


@dataclass(frozen=True, slots=True)
class IncidentPage:
    #: Summaries, most recently updated first.
    incidents: list[dict[str, Any]]
    #: Where the next page starts, or None if this was the last. A page may
    #: hold fewer than ``limit`` entries and still have a next one (a backend
    #: bounds the work one request may do).
    next: IndexCursor | None


class EventLog(Protocol):
    """An incident's events, durable, sequenced and chained.

    * **Durable first.** An append resolves only after its event is durable
      (SQLite committed with the configured ``synchronous``; Redis applied it,
      which is durable with ``appendfsync always``), and after ``Deliver`` got
      it: delivery before ack.
    * **Seq.** The next ``seq`` of the incident is assigned atomically with the
      store: gapless, strictly increasing from 1, also with many nodes. Drafts
      of one incident enqueued by one node get seqs in enqueue order.
      ``ts_ms`` never goes backwards within an incident.
    * **Idempotency.** Client ids are scoped to the user across all incidents
      (SPEC §12). A draft whose ``(actor_user, client_id)`` was stored before,
      for the same action (``is_same_action``), is not stored again: the
      original event comes back with ``duplicate=True`` and nothing is
      delivered. The same id for another action (another incident, another
      type) raises ClientIdReused. Concurrent uses of one id store at most one.
    * **Cancellation.** A caller may cancel its future; the write still happens
      and the writer goes on for everyone else.
    * **Closing.** ``close`` writes what is pending (for a bounded time), then
      refuses: an append after ``close`` began fails with StorageUnavailable
      (retryable, never acknowledged), it never hangs.
    * **Outcome unknown.** Where a write was sent but not answered (Redis),
      the append fails with StorageOutcomeUnknown, not StorageUnavailable: the
      client retries with the same id and gets the stored event if it was.
    """

    async def start(self) -> None: ...

    async def close(self) -> None:
        """Write what is pending (bounded by group_commit.FLUSH_TIMEOUT_S), then
        refuse further appends with StorageUnavailable."""
        ...

    def enqueue(self, draft: EventDraft) -> asyncio.Future[AppendResult]:
        """Queue an append; the future resolves once it is durable and delivered.

        The future fails with StorageUnavailable, StorageOutcomeUnknown,
        LogNotFound (no such incident; or, for ``incident.created``, one that
        exists already; its IncidentArchived for one that was archived, checked
        atomically with the store) or ClientIdReused.
        """
        ...

    async def append(self, draft: EventDraft) -> AppendResult:
        """``await enqueue(draft)``."""
        ...

    async def read(self, incident: str, after_seq: int, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` events with ``seq > after_seq``, in seq order.

        ``limit`` below 1 is read as 1 (there is no "all": callers page). An
        unknown incident, or a position at or past the head, gives ``[]``.
        """
        ...

    async def text_matches(
        self, incident: str, terms: Sequence[str], after_seq: int, before_seq: int
    ) -> list[int]:
        """Seqs in ``(after_seq, before_seq)`` of the incident's events indexed under
        every one of ``terms`` (``search_text.index_terms``), highest first.

        The index is written with the event, before its append is
        acknowledged: an acknowledged event is found. It knows nothing of
        visibility: the caller decides what a reader may see of each seq
        (server/services/search.py). ``[]`` for no terms or an unknown incident.
        """
        ...

    async def head(self, incident: str) -> LogHead | None:
        """The incident's epoch and last seq, or None if it has no log.

        The epoch changes if a log is ever reset, so old positions are refused
        rather than silently served from a different log.
        """
        ...

    async def heads(self, incidents: Sequence[str]) -> dict[str, LogHead]:
        """``head`` of each of ``incidents`` in one read; those without a log are left out.

        For rounds over many incidents (the deadline runner's, every second):
        one query or one pipelined round trip, not one per incident.
        """
        ...

    async def find(self, incident: str, actor_user: str, client_id: str) -> StoredEvent | None:
        """The event this user's client id produced in this incident, if any."""
        ...

    def health(self) -> dict[str, Any]:
        """``healthy`` (bool) plus what an operator needs to see, for /healthz."""
        ...

    async def incidents(self) -> list[str]:
        """Every incident with a log, oldest first."""
        ...

    async def participates(self, incident: str, org: str) -> bool:
        """Whether ``org`` takes part in ``incident``, from the index: one lookup.

        The same lookup answers for an incident that does not exist and for
        one the organisation is not in, so a refusal takes the same time and
        work either way (no projection is loaded before it; SPEC section 18).
        """
        ...

    async def list_incidents(self, query: IncidentQuery) -> IncidentPage:
        """A page of the incident index, most recently updated first.

        The index holds a summary per incident, equal to
        ``IncidentState.summary()`` of its log, updated with each append before
        the append is acknowledged. Listing loads no projection and subscribes
        to nothing. ``query.limit`` bounds the page; a page may come short and
        still have a ``next``.
        """
        ...

    async def archive(self, incident: str, expect_seq: int, tombstone: Tombstone) -> bool:
        """Take an incident out of hot storage, leaving ``tombstone`` in its place.

        The retention service calls it once the incident's log is written to
        a verified archive file, up to ``expect_seq``.

        * **Compare and remove.** Only if the head is still ``expect_seq``: an
          event appended after the archive was written is never lost; the
          answer is then False and nothing changes (archive again).
        * **Everything goes.** Events, head, idempotency entries of the
          incident, its index summary, organisation orders, references, search
          terms: afterwards ``head``, ``read``, ``participates``, ``find``,
          ``text_matches`` and ``list_incidents`` answer as for an incident that
          never was, and an append to it fails with LogNotFound. What stays:
          the tombstone, and the change feed's runs (positions in a gapless
          order, no content; a feed reader finds no events behind them). In
          Redis the per-user client-id claims stay too (small; a reuse of an
          old id for another action is still refused).
        * **Atomic.** SQLite: one transaction. Redis: one script removes the
          incident's own keys and writes the tombstone; the cross-slot index
          entries are removed right after, and again by any later ``archive``
          of the same incident (a crash between leaves entries the index
          already skips, as their summary is gone).
        * **Idempotent.** With the incident already archived, True, and the
          stored tombstone is kept. LogNotFound if there is neither log nor tombstone.
        """
        ...

    async def tombstone(self, incident: str) -> Tombstone | None:
        """The tombstone of an archived incident, or None."""
        ...

    async def tombstones(self, after: str, limit: int) -> list[Tombstone]:
        """Up to ``limit`` tombstones of incidents with ids greater than ``after``, by id."""
        ...

    async def update_tombstone(self, incident: str, tombstone: Tombstone) -> None:
        """Replace an existing tombstone (a purge marks it); LogNotFound if there is none."""
        ...
