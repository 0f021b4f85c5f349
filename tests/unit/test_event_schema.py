"""The event schema is defined once (server/domain/events.py); every form follows it."""

from __future__ import annotations

import sqlite3

from server.domain import chain
from server.domain.events import CHAINED_FIELDS, STORED_FIELDS, EventDraft, StoredEvent
from server.services.envelope import envelope, from_envelope
from server.storage import sqlite as sqlite_log
from server.storage.codec import pack_event, unpack_event


def stored(visibility: tuple[str, ...] | None) -> StoredEvent:
    draft = EventDraft("i1", "message.posted", "u1", "o1", "U", "c1", visibility, {"text": "é"})
    return chain.ChainHead("ep", 0, chain.GENESIS, 0).append(draft, 1_000)


def test_storage_order_is_the_sqlite_columns() -> None:
    db = sqlite3.connect(":memory:")
    db.executescript(sqlite_log.SCHEMA)
    columns = tuple(row[1] for row in db.execute("PRAGMA table_info(events)"))
    assert columns == STORED_FIELDS


def test_every_form_round_trips() -> None:
    for visibility in (None, (), ("o1", "o2")):
        ev = stored(visibility)
        assert StoredEvent.from_fields(list(ev.to_fields())) == ev
        assert unpack_event(pack_event(ev)) == ev
        assert from_envelope(envelope(ev)) == ev
        assert sqlite_log._row_to_event(sqlite_log._event_to_row(ev)) == ev


def test_the_chain_commits_to_everything_but_the_name_and_the_links() -> None:
    assert set(STORED_FIELDS) - set(CHAINED_FIELDS) == {"actor_name", "digest", "hash", "salt"}
    ev = stored(None)
    assert chain.digest_of(chain.canonical_content(ev.chained()), ev.salt) == ev.digest
    assert chain.chain(chain.GENESIS, ev.digest) == ev.hash


def test_a_head_moves_with_each_event_and_never_goes_back_in_time() -> None:
    head = chain.ChainHead("ep", 0, chain.GENESIS, 5_000)
    draft = EventDraft("i1", "message.posted", "u1", "o1", "U", "c1", None, {})
    first, second = head.append(draft, 1_000), head.append(draft, 9_000)
    assert (first.seq, first.ts_ms, second.seq, second.ts_ms) == (1, 5_000, 2, 9_000)
    assert (head.seq, head.hash, head.ts_ms) == (2, second.hash, 9_000)
    assert chain.verify([(1, first.digest, first.hash), (2, second.digest, second.hash)]) is None


def test_salts_are_fresh_and_of_full_length_across_pool_refills() -> None:
    from server.domain.chain import SALT_BYTES, new_salt

    salts = [new_salt() for _ in range(1_000)]  # several refills of the pool
    assert all(len(bytes.fromhex(s)) == SALT_BYTES for s in salts)
    assert len(set(salts)) == len(salts)
