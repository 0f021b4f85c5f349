"""The cross-incident change feed: a filtered, projected read of the feed runs.

::

    FeedLog runs (pos order) ──participates? sees?──▶ EventLog.read(run)
        ──projection at_least(run.last) → sight → audience──▶ domain.feed entries

The feed stores no content: every page is read from the durable runs
(server/storage/feed.py) and the incident logs, from the reader's cursor,
through ``audience`` (the one function of every read path), so it has the
log's guarantees. Live readers (Socket.IO, long-poll, SSE) wait on the
``FeedSignal`` and read again: there is no in-memory queue to lose.

**Cursor** ``<epoch>-<pos>-<seq>``: every run before ``pos`` is consumed and,
of run ``pos``, the events up to ``seq`` (0: none of it). Each entry carries
the cursor just after it, so a resume from any entry neither repeats nor
skips one. A cursor of another epoch, beyond the head, or below a trimmed
start gets ``resync_required`` (with the head's cursor to start again from).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from protocol.errors import ErrorCode, ProtocolError
from server.domain import feed as entries
from server.domain import summary
from server.domain.audience import Reader, event_meta
from server.domain.events import StoredEvent
from server.domain.incident import IncidentState, Sight
from server.domain.model import Principal
from server.domain.sharing import AgreementsView
from server.fanout.feed_signal import FeedSignal
from server.services.envelope import shaped
from server.services.projections import Projections
from server.services.read_audit import RestrictedReadAudit, is_restricted
from server.storage.base import EventLog
from server.storage.feed import FeedHead, FeedLog, FeedRun

log = logging.getLogger(__name__)

#: Runs one page reads at most, and events: a reader in few of many busy
#: incidents gets short pages with a cursor further on, not a long request.
RUNS_PER_PAGE = 200
EVENTS_PER_PAGE = 2_000
#: How often a node looks at the feed's head while someone waits: the
#: wake-up for runs that other nodes commit (their own runs wake at once).
POLL_S = 0.25

_CURSOR = re.compile(r"([0-9a-f]{1,32})-([0-9]{1,16})-([0-9]{1,16})")


@dataclass(frozen=True, slots=True)
class FeedCursor:
    epoch: str
    pos: int
    seq: int = 0

    def encode(self) -> str:
        return f"{self.epoch}-{self.pos}-{self.seq}"

    @classmethod
    def decode(cls, raw: str) -> FeedCursor:
        """A cursor from the wire; INVALID (not resync) for one that is not a cursor."""
        match = _CURSOR.fullmatch(raw)
        if match is None:
            raise ProtocolError(ErrorCode.INVALID, "not a feed cursor", {"field": "after"})
        return cls(match[1], int(match[2]), int(match[3]))

    @classmethod
    def after_head(cls, head: FeedHead) -> FeedCursor:
        return cls(head.epoch, head.pos + 1, 0)


@dataclass(frozen=True, slots=True)
class _Source:
    """One incident of a page, for one reader: its state, sight and events."""

    state: IncidentState
    sight: Sight
    events: dict[int, StoredEvent]


def _bounded(runs: list[FeedRun]) -> list[FeedRun]:
    """The first runs holding at most EVENTS_PER_PAGE events (at least one run)."""
    out: list[FeedRun] = []
    scanned = 0
    for run in runs:
        out.append(run)
        scanned += run.last - run.first + 1
        if scanned >= EVENTS_PER_PAGE:
            break
    return out


@dataclass(frozen=True, slots=True)
class FeedPage:
    entries: list[dict[str, Any]]
    #: Where the next page starts (the last entry's cursor, or further on).
    cursor: FeedCursor
    #: Whether the page reached the head (False: read on at once).
    at_head: bool


def parse_kinds(raw: Collection[str] | None) -> frozenset[str]:
    """The kinds a reader asked for (None: the default ones)."""
    if raw is None:
        return entries.DEFAULT_KINDS
    kinds = frozenset(raw)
    unknown = kinds - entries.KINDS
    if unknown or not kinds:
        raise ProtocolError(
            ErrorCode.INVALID,
            f"kinds must be some of {', '.join(sorted(entries.KINDS))}",
            {"field": "kinds"},
        )
    return kinds


class FeedService:
    def __init__(
        self,
        *,
        feed: FeedLog,
        log: EventLog,
        projections: Projections,
        rules: AgreementsView,
        signal: FeedSignal,
        reads: RestrictedReadAudit | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        self.feed, self.log, self.projections, self.rules = feed, log, projections, rules
        self.signal, self.reads, self.poll_s = signal, reads, poll_s
        self._poller: asyncio.Task[None] | None = None
        #: The head the poller saw last; kept between its runs, so a run that
        #: landed while it was idle still wakes (one spurious wake at worst).
        self._seen: FeedHead | None = None
        #: Set when the server stops: waits return at once, streams end.
        self.closing = False

    async def close(self) -> None:
        """Wake every waiter for good (long-polls answer, streams end), stop the poller."""
        self.closing = True
        self.signal.notify()
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None

    # ------------------------------------------------------------------ read

    async def start_cursor(self) -> FeedCursor:
        """Just after everything stored so far: where a reader without a cursor starts."""
        return FeedCursor.after_head(await self.feed.head())

    async def page(
        self, who: Principal, cursor: FeedCursor, kinds: frozenset[str], limit: int
    ) -> FeedPage:
        """Entries after ``cursor`` that ``who`` may see; at least one event's, if any."""
        head = await self.feed.head()
        resync = ProtocolError(
            ErrorCode.RESYNC_REQUIRED,
            "this feed position can no longer be served: reload the incident list"
            " and go on from the cursor given",
            {"cursor": FeedCursor.after_head(head).encode()},
        )
        if cursor.epoch != head.epoch or cursor.pos > head.pos + 1 or cursor.pos < 1:
            raise resync
        runs = _bounded(await self.feed.read(cursor.pos - 1, RUNS_PER_PAGE))
        if (runs[0].pos > cursor.pos) if runs else cursor.pos <= head.pos:
            raise resync  # trimmed below the cursor
        reader = Reader(org=who.org_id, user=who.user_id)
        done = {runs[0].incident: cursor.seq} if runs and runs[0].pos == cursor.pos else {}
        sources = await self._sources(who, reader, runs, done)
        out: list[dict[str, Any]] = []
        for run in runs:
            source = sources.get(run.incident)
            start = cursor.seq if run.pos == cursor.pos else 0
            if source is None:
                continue
            for seq in range(max(start + 1, run.first), run.last + 1):
                made = await self._entries(source, seq, reader, kinds)
                if not made:
                    continue
                at = FeedCursor(head.epoch, run.pos, seq).encode()
                for entry in made:
                    entry["cursor"] = at
                out += made
                if len(out) >= limit:
                    return FeedPage(out, FeedCursor(head.epoch, run.pos, seq), False)
        at_end = FeedCursor(head.epoch, runs[-1].pos + 1, 0) if runs else cursor
        return FeedPage(out, at_end, at_end.pos > head.pos)

    async def _sources(
        self, who: Principal, reader: Reader, runs: list[FeedRun], done: dict[str, int]
    ) -> dict[str, _Source]:
        """Per incident of the page the reader takes part in: its events of the
        page (one read: an incident's runs in a stretch of positions hold
        consecutive seqs) and its state, for the audiences."""
        spans: dict[str, list[int]] = {}
        for run in runs:
            span = spans.setdefault(
                run.incident, [max(run.first, done.get(run.incident, 0) + 1), 0]
            )
            span[1] = run.last
        out: dict[str, _Source] = {}
        now = int(time.time() * 1000)
        for incident, (low, high) in spans.items():
            if high < low or not who.sees(incident):
                continue
            if not await self.log.participates(incident, reader.org):
                continue
            events = await self.log.read(incident, low - 1, high - low + 1)
            state = await self.projections.at_least(incident, high)
            if state is not None:
                sight = state.sight(reader, self.rules, now)
                out[incident] = _Source(state, sight, {ev.seq: ev for ev in events})
        return out

    async def _entries(
        self, source: _Source, seq: int, reader: Reader, kinds: frozenset[str]
    ) -> list[dict[str, Any]]:
        """The entries the event at ``seq`` makes for ``reader``: none if it may not see it."""
        ev = source.events.get(seq)
        if ev is None:
            return []
        aud = source.sight.of(event_meta(ev))
        if not aud.visible:
            return []  # nothing at all: see server/domain/feed.py
        state = source.state
        opening = entries.opens(ev, reader, state.joined)
        wanted = kinds & {entries.OPENED, entries.ORG_ADDED}
        at = await self._summary_at(ev) if opening and wanted else None
        made = [
            e
            for e in entries.index_entries(ev, aud, reader, state.joined, at)
            if e["kind"] in kinds
        ]
        for e in made:
            is_task = e.get("reasons") == ["task"]  # an escalation quotes no title
            if e["kind"] == entries.NEEDS_YOU and is_task and e.get("title") is None:
                task = state.tasks.get(e["task"])
                e["title"] = task.title if task is not None else None
        if entries.EVENT in kinds:
            made.append(
                {
                    "kind": entries.EVENT,
                    "incident": ev.incident,
                    "seq": ev.seq,
                    "ts": ev.ts_ms,
                    "event": shaped(ev, aud),
                }
            )
        if made and self.reads is not None and is_restricted(ev.visibility, ev.body):
            self.reads.note(reader.user, ev.incident, ev.seq)
        return made

    async def _summary_at(self, ev: StoredEvent) -> dict[str, Any]:
        """The incident's summary as of ``ev``, folded from its header events.

        Not the projection's: that one moves on, and a feed entry must be the
        same bytes whenever it is read. Costs a read of the log up to ``ev``,
        once per organisation added (its creation needs only itself).
        """
        header: summary.Header = {}
        if ev.type == "incident.created":
            summary.merge(header, [ev])
        else:
            after = 0
            while after < ev.seq:
                page = await self.log.read(ev.incident, after, min(1_000, ev.seq - after))
                if not page:
                    break
                summary.merge(header, [e for e in page if e.seq <= ev.seq])
                after = page[-1].seq
        return summary.summary(ev.incident, header, ev.seq, ev.ts_ms)

    # ------------------------------------------------------------------ wait

    @property
    def generation(self) -> int:
        """Take it before reading a page; ``wait`` with it after."""
        return self.signal.generation

    async def wait(self, generation: int, timeout_s: float) -> None:
        """Until something may have been appended since ``generation`` (on any
        node), or ``timeout_s``."""
        if self.closing:
            return
        self._ensure_poller()
        await self.signal.wait(generation, timeout_s)

    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll(), name="feed-head-poll")

    async def _poll(self) -> None:
        """While someone waits, look at the head every ``poll_s``; notify when it moved.

        The wake-up for runs other nodes commit. Ends when nobody waits (the
        next ``wait`` starts it again). Storage errors are logged and retried.
        """
        while self.signal.waiters:
            try:
                head = await self.feed.head()
                if head != self._seen:
                    self.signal.notify()
                self._seen = head
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("feed: could not read the head: %s", exc)
            await asyncio.sleep(self.poll_s)
