"""SqliteEventLog: the embedded default. One file, WAL, group commit.

Write path (the hot one)::

    append() ──▶ pending list ──▶ writer task takes *all* pending drafts
                                  └─▶ one thread hop: check idempotency, assign
                                      seq, chain hashes, INSERT..., one COMMIT
                 ◀── futures resolved in order, after publishing to listeners

Seq, timestamps and the hash chain are assigned inside the writer thread, in
the same transaction that stores them, so a crash can never leave a seq that
was acknowledged but not stored, nor a gap. Many posts share one fsync.
Reads use a second connection on another thread (WAL lets them run beside the
writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import sqlite3
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from server.domain import chain, summary
from server.domain.chain import ChainHead
from server.domain.events import STORED_FIELDS, AppendResult, EventDraft, StoredEvent
from server.domain.search_text import index_terms
from server.errors import ClientIdReused, IncidentArchived, LogNotFound, StorageUnavailable
from server.storage import feed
from server.storage.base import (
    Deliver,
    IncidentPage,
    IncidentQuery,
    LogHead,
    Tombstone,
    is_same_action,
)
from server.storage.files import private_file, private_sqlite
from server.storage.group_commit import GroupCommitQueue, Pending, fail, settle

log = logging.getLogger(__name__)

#: The text index. Contentless (``content=''``): FTS5 keeps its index and not
#: a second copy of every document, which cost a quarter of the writer's time
#: per event (bench/writer_cost.py: 122.7 against 91.8 µs); nothing ranks, so
#: no column sizes either. Each word is stored hex-encoded (``_fts_doc``), so
#: FTS5's tokenizer cuts exactly the words search_text cut, as the Redis
#: backend stores them, and a word is never query syntax.
_WORDS_TABLE = (
    "event_words USING fts5(words, content='', columnsize=0, detail=none, tokenize='ascii')"
)
#: ``search_built.done`` once ``event_words`` (this form of it) covers every
#: event: 1 was the B-tree ``event_terms``, 2 an FTS5 table with its content.
#: A contentless table deletes a document only when given its words again, so
#: a change to what ``index_terms`` returns must raise this too (a rebuild).
_WORDS_BUILT = 3

#: The events: a rowid table, so new rows go to its last page, with
#: (incident, seq) a small unique index. Not WITHOUT ROWID, as it was: there
#: each whole row (350 bytes and up) sat in the B-tree's interior pages too,
#: eight rows to a page, and a commit over six incidents rewrote 17 of the
#: table's pages (34 WAL frames per commit in all; 23 now, and 21% less
#: writer CPU per event: python -m bench.writer_cost). SQLite's advice is
#: WITHOUT ROWID for rows under about a twentieth of a page.
#: ``_Writer._events_with_rowids`` moves an older file's events over.
_EVENTS_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    incident   TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    epoch      TEXT NOT NULL,
    type       TEXT NOT NULL,
    ts_ms      INTEGER NOT NULL,
    actor_user TEXT NOT NULL,
    actor_org  TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    visibility TEXT,
    body       BLOB NOT NULL,
    digest     TEXT NOT NULL,
    hash       TEXT NOT NULL,
    salt       TEXT,
    PRIMARY KEY (incident, seq)
);
"""
_IDEMPOTENCY_INDEX = (
    "CREATE UNIQUE INDEX IF NOT EXISTS events_idempotency ON events (actor_user, client_id);"
)

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS logs (
    incident   TEXT PRIMARY KEY,
    epoch      TEXT NOT NULL,
    head_seq   INTEGER NOT NULL,
    head_hash  TEXT NOT NULL,
    head_ts    INTEGER NOT NULL,
    created_ms INTEGER NOT NULL
);
{_EVENTS_TABLE.format(name="events")}
{_IDEMPOTENCY_INDEX}
-- The incident index (GET /api/v1/incidents): header per incident (see
-- server/domain/summary.py), its orgs with the ts of the last event each may
-- see (its order and ``updated``), and the head (logs) for seq. Written in
-- the same transaction as the events it summarises.
CREATE TABLE IF NOT EXISTS incident_index (
    incident TEXT PRIMARY KEY,
    header   BLOB NOT NULL,
    title    TEXT NOT NULL,
    status   TEXT NOT NULL,
    category TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS incident_orgs (
    org        TEXT NOT NULL,
    incident   TEXT NOT NULL,
    updated_ts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (org, incident)
) WITHOUT ROWID;
-- External references (CAD numbers) of the incident index: ?ref= lookups.
-- Rewritten with the incident's index row, in the same transaction.
CREATE TABLE IF NOT EXISTS incident_refs (
    ref      TEXT NOT NULL,
    incident TEXT NOT NULL,
    PRIMARY KEY (ref, incident)
) WITHOUT ROWID;
-- Text search (GET /api/v1/search): each event's words (search_text.index_terms),
-- written in the transaction that stores the event, in a contentless FTS5
-- table (_WORDS_TABLE). The rowid is the log's rowid << 32 | seq, so one
-- incident's seqs are a rowid range that FTS5 seeks.
CREATE VIRTUAL TABLE IF NOT EXISTS {_WORDS_TABLE};
CREATE TABLE IF NOT EXISTS search_built (done INTEGER NOT NULL);
-- Archived incidents (EventLog.archive): what stays in hot storage.
CREATE TABLE IF NOT EXISTS archived (
    incident  TEXT PRIMARY KEY,
    tombstone BLOB NOT NULL
) WITHOUT ROWID;
"""

#: The incident's rows in every table EventLog.archive empties.
_ARCHIVE_TABLES = ("events", "incident_refs", "incident_orgs", "incident_index")
_ARCHIVE_DELETES = (
    *(f"DELETE FROM {t} WHERE incident = ?" for t in _ARCHIVE_TABLES),  # noqa: S608
    "DELETE FROM logs WHERE incident = ?",
)

#: The low bits of an ``event_words`` rowid: the seq; the log's rowid is above.
SEQ_BITS = 32
_SEQ_LIMIT = 1 << SEQ_BITS


def _fts_doc(terms: Sequence[str]) -> str:
    """The words as ``event_words`` stores them: hex, so only our cut counts."""
    return " ".join(term.encode().hex() for term in terms)


def _words_docs(events: Iterable[tuple[int, int, Mapping[str, Any]]]) -> list[tuple[int, str]]:
    """``event_words`` rows of (log rowid, seq, body) triples: events without words have none."""
    return [
        ((rowid << SEQ_BITS) | seq, _fts_doc(terms))
        for rowid, seq, body in events
        if seq < _SEQ_LIMIT and (terms := index_terms(body))
    ]


def _fts_query(terms: Sequence[str]) -> str:
    """An FTS5 query for events holding every one of ``terms``."""
    return " ".join(f'"{term.encode().hex()}"' for term in terms)


#: After the upgrade of an older file (``_Writer._add_updated_column``): an
#: organisation's list in ``updated`` order, and an incident's organisations
#: (a public event moves all of them: without it, a scan of the table).
ORDER_INDEX = """
CREATE INDEX IF NOT EXISTS incident_orgs_by_update ON incident_orgs (org, updated_ts, incident);
CREATE INDEX IF NOT EXISTS incident_orgs_by_incident ON incident_orgs (incident);
"""

#: Each organisation's ``updated``: the ts of the last event it may see.
_BACKFILL_UPDATED = """
UPDATE incident_orgs SET updated_ts = coalesce((
    SELECT max(e.ts_ms) FROM events e WHERE e.incident = incident_orgs.incident
    AND (e.visibility IS NULL
         OR EXISTS (SELECT 1 FROM json_each(e.visibility) j WHERE j.value = incident_orgs.org))
), 0)
"""

#: The ts of an incident's last public event: where an organisation joining starts.
#: Walks back from the head and stops at the first public event: at once, as
#: the header event that adds an organisation is public and already inserted.
_PUBLIC_TS = (
    "SELECT coalesce((SELECT ts_ms FROM events WHERE incident = ? AND visibility IS NULL"
    " ORDER BY seq DESC LIMIT 1), 0)"
)

_HEADER_TYPES_SQL = ",".join(f"'{t}'" for t in sorted(summary.HEADER_TYPES))

#: Client ids per idempotency query (SQLite binds at most 32,766 variables).
_IN_CHUNK = 500

#: The events table's columns are the stored fields, in storage order.
_COLUMNS = ", ".join(STORED_FIELDS)
_MARKS = ",".join("?" * len(STORED_FIELDS))
_VISIBILITY = STORED_FIELDS.index("visibility")
_BODY = STORED_FIELDS.index("body")


@dataclass(frozen=True, slots=True)
class SqliteConfig:
    path: Path
    #: "FULL" survives power loss; "NORMAL" survives a process crash (kill -9) only.
    synchronous: str = "FULL"
    #: Upper bound of drafts committed in one transaction.
    max_batch: int = 2_000


def _lower(text: str | None) -> str | None:
    return text.lower() if text is not None else None


def _row_to_event(row: Sequence[Any]) -> StoredEvent:
    """visibility and body are JSON in their columns; every other column is the field."""
    values = list(row)
    vis = values[_VISIBILITY]
    values[_VISIBILITY] = orjson.loads(vis) if vis is not None else None
    values[_BODY] = orjson.loads(values[_BODY])
    return StoredEvent.from_fields(values)


def _event_to_row(event: StoredEvent) -> list[Any]:
    values = list(event.to_fields())
    # NULL means every participant: only None may become NULL.
    vis = event.visibility
    values[_VISIBILITY] = None if vis is None else orjson.dumps(vis).decode()
    values[_BODY] = orjson.dumps(event.body)
    return values


class _Writer:
    """Owns the write connection; runs only on the writer thread."""

    def __init__(self, config: SqliteConfig) -> None:
        self.db = sqlite3.connect(config.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={config.synchronous}")
        self.db.executescript(SCHEMA)
        self._add_salt_column()
        self._events_with_rowids()
        # Unused since the index orders by each organisation's updated_ts
        # (incident_orgs), and one more page written by every commit.
        self.db.execute("DROP INDEX IF EXISTS logs_by_update")
        self._add_updated_column()
        self.db.executescript(ORDER_INDEX)
        feed.create_sqlite(self.db)
        self.heads: dict[str, ChainHead] = {}
        #: Each log's rowid: the high bits of its events' ``event_words`` rowids.
        self.log_rowids: dict[str, int] = {}
        self._index_missing()
        self._index_terms_missing()

    def _add_salt_column(self) -> None:
        """Give a data directory from before chain salts its ``salt`` column.

        Its rows stay NULL: those events keep chain rule 1 (chain.py), so
        nothing is rewritten and every stored digest and hash stays valid.
        """
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(events)")}
        if "salt" not in columns:
            self.db.execute("ALTER TABLE events ADD COLUMN salt TEXT")
            log.info("events table: added the salt column (older events keep chain rule 1)")

    def _events_with_rowids(self) -> None:
        """Move an older file's WITHOUT ROWID events into a rowid table (``_EVENTS_TABLE``).

        Once, in one transaction: a crash leaves the old table as it was, and
        the next start does it again. Rows are copied column for column, so
        every digest and hash stays as stored. It needs free disk space about
        the size of the events for the while (the old table's pages are then
        free pages the file reuses).
        """
        (sql,) = self.db.execute(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'events'"
        ).fetchone()
        if "WITHOUT ROWID" not in sql.upper():
            return
        started = time.monotonic()
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("DROP TABLE IF EXISTS events_rowid")
            self.db.execute(_EVENTS_TABLE.format(name="events_rowid"))
            moved = self.db.execute(
                f"INSERT INTO events_rowid ({_COLUMNS}) SELECT {_COLUMNS} FROM events"  # noqa: S608
            ).rowcount
            self.db.execute("DROP TABLE events")  # and its events_idempotency index
            self.db.execute("ALTER TABLE events_rowid RENAME TO events")
            self.db.execute(_IDEMPOTENCY_INDEX)
            self.db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            raise
        log.warning(
            "events table: %d events moved into a rowid table in %.1f s (once, on upgrade)",
            moved,
            time.monotonic() - started,
        )

    def _add_updated_column(self) -> None:
        """Give an index from before per-organisation ``updated`` its column, filled.

        It used to hold one head ts for everyone, which told an NGO when a
        police-only event was stored. A one-off over the events, on upgrade.
        """
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(incident_orgs)")}
        if "updated_ts" in columns:
            return
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute(
            "ALTER TABLE incident_orgs ADD COLUMN updated_ts INTEGER NOT NULL DEFAULT 0"
        )
        self.db.execute(_BACKFILL_UPDATED)
        self.db.execute("COMMIT")
        log.info("incident index: per-organisation updated times filled in")

    def archive(self, incident: str, expect_seq: int, tombstone: bytes) -> bool:
        """EventLog.archive, in one transaction on the writer thread."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            row = self.db.execute(
                "SELECT head_seq FROM logs WHERE incident = ?", (incident,)
            ).fetchone()
            if row is None:
                kept = self.db.execute(
                    "SELECT 1 FROM archived WHERE incident = ?", (incident,)
                ).fetchone()
                self.db.execute("COMMIT")
                if kept is None:
                    raise LogNotFound(f"no log for incident {incident}")
                return True
            if row[0] != expect_seq:
                self.db.execute("COMMIT")
                return False
            self._unindex_text(incident)
            for sql in _ARCHIVE_DELETES:
                self.db.execute(sql, (incident,))
            self.db.execute("INSERT OR REPLACE INTO archived VALUES (?, ?)", (incident, tombstone))
            self.db.execute("COMMIT")
        except sqlite3.Error:
            with contextlib.suppress(Exception):
                self.db.execute("ROLLBACK")
            raise
        self.heads.pop(incident, None)
        self.log_rowids.pop(incident, None)
        return True

    def update_tombstone(self, incident: str, tombstone: bytes) -> bool:
        cur = self.db.execute(
            "UPDATE archived SET tombstone = ? WHERE incident = ?", (tombstone, incident)
        )
        return cur.rowcount == 1

    def _index_missing(self) -> None:
        """Index incidents stored before the index existed (a one-off on upgrade)."""
        missing = [
            row[0]
            for row in self.db.execute(
                "SELECT incident FROM logs"
                " WHERE incident NOT IN (SELECT incident FROM incident_index)"
            )
        ]
        if not missing:
            return
        self.db.execute("BEGIN IMMEDIATE")
        for incident in missing:
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM events WHERE incident = ?"  # noqa: S608
                f" AND type IN ({_HEADER_TYPES_SQL}) ORDER BY seq",
                (incident,),
            )
            self._index(incident, [_row_to_event(row) for row in rows])
        marks = ",".join("?" * len(missing))
        self.db.execute(f"{_BACKFILL_UPDATED} WHERE incident IN ({marks})", missing)
        self.db.execute("COMMIT")
        log.info("indexed %d incidents stored before the incident index", len(missing))

    def _index_terms_missing(self) -> None:
        """(Re)build the text index when it is not of this version (a one-off on upgrade).

        ``search_built`` holds ``_WORDS_BUILT`` once ``event_words`` is of this
        form and covers every event; an older one (or the B-tree index of
        earlier versions, ``event_terms``) is dropped and built again from the
        events, in one transaction.
        """
        built = f"SELECT 1 FROM search_built WHERE done = {_WORDS_BUILT}"  # noqa: S608
        if self.db.execute(built).fetchone():
            return
        self.db.execute("BEGIN IMMEDIATE")
        self.db.execute("DROP TABLE IF EXISTS event_words")
        self.db.execute(f"CREATE VIRTUAL TABLE {_WORDS_TABLE}")
        rows = self.db.execute(
            "SELECT l.rowid, e.seq, e.body FROM logs l JOIN events e ON e.incident = l.incident"
            " ORDER BY l.rowid, e.seq"
        )
        count = 0
        while batch := rows.fetchmany(1000):
            docs = _words_docs((rowid, seq, orjson.loads(body)) for rowid, seq, body in batch)
            self.db.executemany("INSERT INTO event_words(rowid, words) VALUES (?, ?)", docs)
            count += len(docs)
        self.db.execute("DROP TABLE IF EXISTS event_terms")
        self.db.execute("DELETE FROM search_built")
        self.db.execute("INSERT INTO search_built VALUES (?)", (_WORDS_BUILT,))
        self.db.execute("COMMIT")
        if count:
            log.info("text search: indexed the words of %d older events", count)

    def _unindex_text(self, incident: str) -> None:
        """Take an incident's events out of the text index (inside the caller's transaction).

        A contentless FTS5 table forgets a document when told its words
        again: they are cut from the stored bodies as they were when indexed.
        """
        rowid = self._log_rowid(incident)
        rows = self.db.execute("SELECT seq, body FROM events WHERE incident = ?", (incident,))
        docs = _words_docs((rowid, seq, orjson.loads(body)) for seq, body in rows)
        self.db.executemany(
            "INSERT INTO event_words(event_words, rowid, words) VALUES ('delete', ?, ?)", docs
        )

    def _log_rowid(self, incident: str) -> int:
        rowid = self.log_rowids.get(incident)
        if rowid is None:
            (rowid,) = self.db.execute(
                "SELECT rowid FROM logs WHERE incident = ?", (incident,)
            ).fetchone()
            self.log_rowids[incident] = rowid
        return rowid

    def _index_text(self, by_incident: dict[str, list[StoredEvent]]) -> None:
        """Store the batch's new events' words (inside the caller's transaction).

        In rowid order: FTS5 flushes its pending terms to a new segment each
        time a rowid is not above the last one it took, which, with a batch
        spread over many incidents, was once per event and cost more than
        the B-tree it replaced.
        """
        docs = _words_docs(
            (self._log_rowid(incident), ev.seq, ev.body)
            for incident, events in by_incident.items()
            for ev in events
        )
        docs.sort()
        self.db.executemany("INSERT INTO event_words(rowid, words) VALUES (?, ?)", docs)

    def _index(self, incident: str, events: Sequence[StoredEvent]) -> None:
        """Fold header events into the incident's index row (inside the caller's transaction)."""
        row = self.db.execute(
            "SELECT header FROM incident_index WHERE incident = ?", (incident,)
        ).fetchone()
        header: summary.Header = orjson.loads(row[0]) if row else {}
        if not summary.merge(header, events) and row is not None:
            return
        wire = summary.summary(incident, header, 0, 0)
        self.db.execute(
            "INSERT OR REPLACE INTO incident_index VALUES (?, ?, ?, ?, ?)",
            (incident, orjson.dumps(header), wire["title"], wire["status"], wire["category"]),
        )
        self.db.execute("DELETE FROM incident_refs WHERE incident = ?", (incident,))
        if wire["external_ref"] is not None:
            self.db.execute(
                "INSERT INTO incident_refs VALUES (?, ?)", (wire["external_ref"], incident)
            )
        # An organisation that joins sees every public event from then on:
        # its ``updated`` starts at the last of them (this batch's included,
        # its rows are inserted by now). Only on header events, which are rare.
        (public_ts,) = self.db.execute(_PUBLIC_TS, (incident,)).fetchone()
        self.db.executemany(
            "INSERT OR IGNORE INTO incident_orgs VALUES (?, ?, ?)",
            [(org, incident, public_ts) for org in wire["orgs"]],
        )

    def _head(self, incident: str) -> ChainHead | None:
        head = self.heads.get(incident)
        if head is None:
            row = self.db.execute(
                "SELECT epoch, head_seq, head_hash, head_ts FROM logs WHERE incident = ?",
                (incident,),
            ).fetchone()
            if row is None:
                return None
            head = self.heads[incident] = ChainHead(*row)
        return head

    def _stored_before(self, drafts: Sequence[EventDraft]) -> dict[tuple[str, str], StoredEvent]:
        """Events already stored for the drafts' idempotency keys: one query per user.

        (``actor_user = ? AND client_id IN (...)`` searches the unique index; a
        row-value ``IN (VALUES ...)`` would scan it.)
        """
        by_user: dict[str, list[str]] = {}
        for draft in drafts:
            by_user.setdefault(draft.actor_user, []).append(draft.client_id)
        found: dict[tuple[str, str], StoredEvent] = {}
        for user, client_ids in by_user.items():
            for start in range(0, len(client_ids), _IN_CHUNK):
                chunk = client_ids[start : start + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                for row in self.db.execute(
                    f"SELECT {_COLUMNS} FROM events"  # noqa: S608
                    f" WHERE actor_user = ? AND client_id IN ({marks})",
                    (user, *chunk),
                ):
                    event = _row_to_event(row)
                    found[(event.actor_user, event.client_id)] = event
        return found

    def commit(self, drafts: Sequence[EventDraft]) -> list[AppendResult | Exception]:
        """Store a batch in one transaction; one result (or error) per draft."""
        results: list[AppendResult | Exception] = []
        touched: dict[str, ChainHead] = {}
        rows: list[list[Any]] = []
        try:
            self.db.execute("BEGIN IMMEDIATE")
            known = self._stored_before(drafts)
            for draft in drafts:
                results.append(self._store(draft, touched, known, rows))
            self.db.executemany(
                f"INSERT INTO events ({_COLUMNS}) VALUES ({_MARKS})",  # noqa: S608
                rows,
            )
            self.db.executemany(
                "UPDATE logs SET head_seq = ?, head_hash = ?, head_ts = ? WHERE incident = ?",
                [(h.seq, h.hash, h.ts_ms, incident) for incident, h in touched.items()],
            )
            self._index_batch(results)
            feed.record_runs(self.db, results)
            self.db.execute("COMMIT")
        except Exception:
            with contextlib.suppress(Exception):
                self.db.execute("ROLLBACK")
            self.heads.clear()  # the cache may hold seqs that were rolled back
            self.log_rowids.clear()  # and rowids of logs whose insert was undone
            raise
        return results

    def _index_batch(self, results: Sequence[AppendResult | Exception]) -> None:
        """Header events of this batch into the index, then every event into the
        ``updated`` of the organisations that see it."""
        by_incident: dict[str, list[StoredEvent]] = {}
        for r in results:
            if isinstance(r, AppendResult) and not r.duplicate:
                by_incident.setdefault(r.event.incident, []).append(r.event)
        self._index_text(by_incident)
        public: list[tuple[int, str]] = []
        restricted: list[tuple[int, str, str]] = []
        for incident, events in by_incident.items():
            header_events = [ev for ev in events if ev.type in summary.HEADER_TYPES]
            if header_events:
                self._index(incident, header_events)
            self._last_seen(incident, events, public, restricted)
        # Two statements for the whole batch, after every incident's _index
        # (a joining organisation's row exists by then), not two per incident.
        self.db.executemany(
            "UPDATE incident_orgs SET updated_ts = max(updated_ts, ?) WHERE incident = ?", public
        )
        self.db.executemany(
            "UPDATE incident_orgs SET updated_ts = max(updated_ts, ?)"
            " WHERE org = ? AND incident = ?",
            restricted,
        )

    def _last_seen(
        self,
        incident: str,
        events: Sequence[StoredEvent],
        public: list[tuple[int, str]],
        restricted: list[tuple[int, str, str]],
    ) -> None:
        """The ``updated`` of the organisations that see ``events``, as update rows."""
        joined: dict[str, int] = {}
        if summary.needs_joined(events):  # follow-ups only: one read of the header
            row = self.db.execute(
                "SELECT header FROM incident_index WHERE incident = ?", (incident,)
            ).fetchone()
            joined = summary.joined_of(orjson.loads(row[0])) if row else {}
        everyone, orgs = summary.last_seen(events, joined)
        if everyone is not None:
            public.append((everyone, incident))
        restricted.extend((ts, org, incident) for org, ts in orgs.items())

    def _store(
        self,
        draft: EventDraft,
        touched: dict[str, ChainHead],
        known: dict[tuple[str, str], StoredEvent],
        rows: list[list[Any]],
    ) -> AppendResult | Exception:
        """Sequence one draft (its row goes to ``rows``), or answer it as a retry."""
        key = (draft.actor_user, draft.client_id)
        earlier = known.get(key)
        if earlier is not None:
            if not is_same_action(earlier, draft):
                return ClientIdReused(f"id {draft.client_id!r} was used for another action")
            return AppendResult(earlier, duplicate=True)
        now = int(time.time() * 1000)
        if draft.type == "incident.created":
            assert draft.epoch is not None
            if self._head(draft.incident) is not None:
                return LogNotFound(f"incident {draft.incident} exists already")
            archived = "SELECT 1 FROM archived WHERE incident = ?"
            if self.db.execute(archived, (draft.incident,)).fetchone():
                # A retried creation (the id comes from its client id): SPEC 12, 25.4.
                return IncidentArchived(f"incident {draft.incident} was archived")
            self.db.execute(
                "INSERT INTO logs VALUES (?, ?, 0, ?, ?, ?)",
                (draft.incident, draft.epoch, chain.GENESIS, now, now),
            )
            head = self.heads[draft.incident] = ChainHead(draft.epoch, 0, chain.GENESIS, now)
        else:
            maybe_head = self._head(draft.incident)
            if maybe_head is None:
                return LogNotFound(f"no log for incident {draft.incident}")
            head = maybe_head
        event = head.append(draft, now)
        rows.append(_event_to_row(event))
        touched[draft.incident] = head
        known[key] = event
        return AppendResult(event, duplicate=False)


def _lock_exclusively(path: Path) -> IO[bytes]:
    """One process per embedded log: seq, heads and fan-out live in that process.

    A second process on the same files would assign seqs from its own cached
    heads and fan out only to its own clients, so it is refused outright.
    """
    handle = path.open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        handle.close()
        raise StorageUnavailable(
            f"{path.parent} is in use by another Liaison process; the embedded backend"
            " serves one process per data directory (use Redis for several nodes)"
        ) from exc
    return handle


class SqliteEventLog:
    """The embedded EventLog: SQLite on disk, one process (its broker: MemoryBroker)."""

    def __init__(self, config: SqliteConfig, deliver: Deliver) -> None:
        self.config = config
        self._deliver = deliver
        self._queue = GroupCommitQueue(self._commit, config.max_batch, "sqlite-group-commit")
        self._write_pool = ThreadPoolExecutor(1, thread_name_prefix="liaison-sqlite-w")
        self._read_pool = ThreadPoolExecutor(1, thread_name_prefix="liaison-sqlite-r")
        self._writer: _Writer | None = None
        self._reader: sqlite3.Connection | None = None
        self._lock: IO[bytes] | None = None

    @property
    def writer(self) -> GroupCommitQueue:
        """The group-commit writer (its ``observer`` is the app's commit metrics)."""
        return self._queue

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        private_sqlite(self.config.path)
        private_file(self.config.path.with_suffix(".lock"))
        self._lock = _lock_exclusively(self.config.path.with_suffix(".lock"))
        self._writer = await loop.run_in_executor(self._write_pool, _Writer, self.config)
        self._reader = await loop.run_in_executor(self._read_pool, self._open_reader)
        self._queue.start()

    def _open_reader(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.config.path, check_same_thread=False)
        db.execute("PRAGMA query_only=ON")
        # SQLite's lower() folds ASCII only; the index filter is Python's.
        db.create_function("py_lower", 1, _lower, deterministic=True)
        return db

    async def close(self) -> None:
        """Idempotent: a second close (a test, a failed start) finds nothing to do."""
        await self._queue.close()
        loop = asyncio.get_running_loop()
        writer, reader, self._writer, self._reader = self._writer, self._reader, None, None
        if writer is not None:
            await loop.run_in_executor(self._write_pool, writer.db.close)
        if reader is not None:
            await loop.run_in_executor(self._read_pool, reader.close)
        self._write_pool.shutdown(wait=True)
        self._read_pool.shutdown(wait=True)
        if self._lock is not None:
            self._lock.close()  # releases the flock
            self._lock = None

    # ------------------------------------------------------------------ write

    def enqueue(self, draft: EventDraft) -> asyncio.Future[AppendResult]:
        return self._queue.enqueue(draft)

    async def append(self, draft: EventDraft) -> AppendResult:
        return await self.enqueue(draft)

    async def _commit(self, batch: list[Pending]) -> None:
        assert self._writer is not None
        drafts = [draft for draft, _ in batch]
        loop = asyncio.get_running_loop()
        try:
            results = await loop.run_in_executor(self._write_pool, self._writer.commit, drafts)
        except asyncio.CancelledError:
            for _, fut in batch:
                fut.cancel()
            raise
        except Exception as exc:
            log.exception("commit of %d events failed", len(batch))
            for _, fut in batch:
                fail(fut, StorageUnavailable(str(exc)))
            return
        # Deliver first, in seq order, then acknowledge: an ack never overtakes
        # the event it acknowledges on this node.
        self._publish([r.event for r in results if isinstance(r, AppendResult) and not r.duplicate])
        for (_, fut), result in zip(batch, results, strict=True):
            if isinstance(result, Exception):
                fail(fut, result)
            else:
                settle(fut, result)

    def _publish(self, events: list[StoredEvent]) -> None:
        by_incident: dict[str, list[StoredEvent]] = {}
        for event in events:
            by_incident.setdefault(event.incident, []).append(event)
        for incident, evs in by_incident.items():
            self._deliver(incident, evs)

    # ------------------------------------------------------------------- read

    async def _query(self, sql: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        def run() -> list[tuple[Any, ...]]:
            assert self._reader is not None
            return self._reader.execute(sql, args).fetchall()

        try:
            return await asyncio.get_running_loop().run_in_executor(self._read_pool, run)
        except sqlite3.Error as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def read(self, incident: str, after_seq: int, limit: int) -> list[StoredEvent]:
        rows = await self._query(
            f"SELECT {_COLUMNS} FROM events WHERE incident = ? AND seq > ?"  # noqa: S608
            " ORDER BY seq LIMIT ?",
            (incident, after_seq, max(1, limit)),
        )
        return [_row_to_event(row) for row in rows]

    async def text_matches(
        self, incident: str, terms: Sequence[str], after_seq: int, before_seq: int
    ) -> list[int]:
        if not terms:
            return []
        found = await self._query("SELECT rowid FROM logs WHERE incident = ?", (incident,))
        if not found:
            return []
        high = found[0][0] << SEQ_BITS  # this log's seqs: [high, high + _SEQ_LIMIT)
        low = high + min(max(after_seq, -1), _SEQ_LIMIT - 1)
        top = high + min(max(before_seq, 0), _SEQ_LIMIT)
        rows = await self._query(
            "SELECT rowid FROM event_words WHERE event_words MATCH ?"
            " AND rowid > ? AND rowid < ? ORDER BY rowid DESC",
            (_fts_query(terms), low, top),
        )
        return [row[0] & (_SEQ_LIMIT - 1) for row in rows]

    async def head(self, incident: str) -> LogHead | None:
        rows = await self._query("SELECT epoch, head_seq FROM logs WHERE incident = ?", (incident,))
        return LogHead(rows[0][0], rows[0][1]) if rows else None

    async def heads(self, incidents: Sequence[str]) -> dict[str, LogHead]:
        wanted = list(dict.fromkeys(incidents))
        found: dict[str, LogHead] = {}
        for start in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = await self._query(
                f"SELECT incident, epoch, head_seq FROM logs WHERE incident IN ({marks})",  # noqa: S608
                tuple(chunk),
            )
            found.update((incident, LogHead(epoch, seq)) for incident, epoch, seq in rows)
        return found

    async def find(self, incident: str, actor_user: str, client_id: str) -> StoredEvent | None:
        rows = await self._query(
            f"SELECT {_COLUMNS} FROM events WHERE actor_user = ? AND client_id = ?"  # noqa: S608
            " AND incident = ?",
            (actor_user, client_id, incident),
        )
        return _row_to_event(rows[0]) if rows else None

    def health(self) -> dict[str, Any]:
        writer = self._queue.stats()
        return {"healthy": writer["healthy"], "backend": "sqlite", "writer": writer}

    async def incidents(self) -> list[str]:
        rows = await self._query("SELECT incident FROM logs ORDER BY created_ms, incident", ())
        return [row[0] for row in rows]

    async def participates(self, incident: str, org: str) -> bool:
        rows = await self._query(
            "SELECT 1 FROM incident_orgs WHERE org = ? AND incident = ?", (org, incident)
        )
        return bool(rows)

    async def list_incidents(self, query: IncidentQuery) -> IncidentPage:
        sql = [
            "SELECT l.incident, l.head_seq, o.updated_ts, i.header FROM incident_orgs o"
            " JOIN logs l ON l.incident = o.incident"
            " JOIN incident_index i ON i.incident = o.incident WHERE o.org = ?"
        ]
        args: list[Any] = [query.org]
        if query.status:
            sql.append("AND i.status = ?")
            args.append(query.status)
        if query.category:
            sql.append("AND i.category = ?")
            args.append(query.category)
        if query.text:
            sql.append("AND instr(py_lower(i.title), ?) > 0")
            args.append(query.text)
        if query.ref is not None:
            sql.append("AND o.incident IN (SELECT incident FROM incident_refs WHERE ref = ?)")
            args.append(query.ref)
        if query.updated_after is not None:
            sql.append("AND o.updated_ts > ?")
            args.append(query.updated_after)
        if query.after is not None:
            sql.append("AND (o.updated_ts < ? OR (o.updated_ts = ? AND o.incident < ?))")
            args += [query.after[0], query.after[0], query.after[1]]
        sql.append("ORDER BY o.updated_ts DESC, o.incident DESC LIMIT ?")
        args.append(query.limit + 1)
        rows = await self._query(" ".join(sql), tuple(args))
        page = [summary.summary(r[0], orjson.loads(r[3]), r[1], r[2]) for r in rows]
        more = len(page) > query.limit
        page = page[: query.limit]
        last = page[-1] if more and page else None
        return IncidentPage(page, (last["updated"], last["id"]) if last else None)

    # -------------------------------------------------------------- archive

    async def _on_writer(self, fn: Any, *args: Any) -> Any:
        assert self._writer is not None
        try:
            return await asyncio.get_running_loop().run_in_executor(self._write_pool, fn, *args)
        except sqlite3.Error as exc:
            raise StorageUnavailable(str(exc)) from exc

    async def archive(self, incident: str, expect_seq: int, tombstone: Tombstone) -> bool:
        assert self._writer is not None
        done: bool = await self._on_writer(
            self._writer.archive, incident, expect_seq, orjson.dumps(tombstone)
        )
        return done

    async def tombstone(self, incident: str) -> Tombstone | None:
        rows = await self._query("SELECT tombstone FROM archived WHERE incident = ?", (incident,))
        return dict(orjson.loads(rows[0][0])) if rows else None

    async def tombstones(self, after: str, limit: int) -> list[Tombstone]:
        rows = await self._query(
            "SELECT tombstone FROM archived WHERE incident > ? ORDER BY incident LIMIT ?",
            (after, max(1, limit)),
        )
        return [dict(orjson.loads(row[0])) for row in rows]

    async def update_tombstone(self, incident: str, tombstone: Tombstone) -> None:
        assert self._writer is not None
        if not await self._on_writer(
            self._writer.update_tombstone, incident, orjson.dumps(tombstone)
        ):
            raise LogNotFound(f"incident {incident} is not archived")
