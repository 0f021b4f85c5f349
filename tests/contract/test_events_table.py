"""The embedded events file's tables as this version keeps them, and older ones moved over.

The file is 0.1.0's own (tests/fixtures/layout0), where ``events`` was a
WITHOUT ROWID table. Opening it with this writer moves every row over,
column for column, in one transaction; the chains still verify, the
idempotency index still answers, and a second open changes nothing. The
feed's runs lose AUTOINCREMENT (its counter was a page written per commit)
with every position kept, and the unused ``logs_by_update`` index goes.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from server.domain.events import STORED_FIELDS, EventDraft
from server.storage import feed
from server.storage.integrity import check_sqlite
from server.storage.sqlite import SqliteConfig, _Writer

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "layout0" / "embedded"
COLUMNS = ", ".join(STORED_FIELDS)


def _table_sql(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        (sql,) = conn.execute(
            "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'events'"
        ).fetchone()
    return str(sql)


def _rows(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT {COLUMNS} FROM events ORDER BY incident, seq").fetchall()  # noqa: S608


def _indexes(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name FROM sqlite_schema WHERE tbl_name = 'events'")
        return {name for (name,) in rows}


@pytest.fixture
def old_data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(FIXTURE, data)
    return data


def test_a_new_file_keeps_events_in_a_rowid_table(tmp_path: Path) -> None:
    _Writer(SqliteConfig(tmp_path / "events.db")).db.close()
    assert "WITHOUT ROWID" not in _table_sql(tmp_path / "events.db").upper()
    assert {"events_idempotency", "sqlite_autoindex_events_1"} <= _indexes(tmp_path / "events.db")


def test_an_older_files_events_move_over_unchanged(
    old_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = old_data / "events.db"
    assert "WITHOUT ROWID" in _table_sql(db).upper()
    before = _rows(db)
    assert len(before) > 10
    writer = _Writer(SqliteConfig(db))
    writer.db.close()
    assert "WITHOUT ROWID" not in _table_sql(db).upper()
    assert _rows(db) == before
    assert {"events_idempotency", "sqlite_autoindex_events_1"} <= _indexes(db)
    with sqlite3.connect(db) as conn:
        names = {name for (name,) in conn.execute("SELECT name FROM sqlite_schema")}
    assert "logs_by_update" not in names
    assert any("moved into a rowid table" in r.getMessage() for r in caplog.records)
    checked = check_sqlite(old_data)  # every chain, from the moved rows
    assert sum(seq for seq, _ in checked.incidents.values()) == len(before)

    caplog.clear()
    _Writer(SqliteConfig(db)).db.close()  # a second open moves nothing
    assert not any("moved into a rowid table" in r.getMessage() for r in caplog.records)
    assert _rows(db) == before


def test_the_moved_table_still_refuses_a_second_event_and_answers_a_retry(old_data: Path) -> None:
    db = old_data / "events.db"
    last = dict(zip(STORED_FIELDS, _rows(db)[-1], strict=True))
    writer = _Writer(SqliteConfig(db))
    try:
        draft = EventDraft(
            incident=last["incident"],
            type=last["type"],
            actor_user=last["actor_user"],
            actor_org=last["actor_org"],
            actor_name=last["actor_name"],
            client_id=last["client_id"],
            visibility=None,
            body={"text": "the same client id again"},
        )
        [retry] = writer.commit([draft])
        assert not isinstance(retry, Exception)
        assert retry.duplicate  # the stored event, found by the idempotency index
        assert retry.event.seq == last["seq"]
        with pytest.raises(sqlite3.IntegrityError):
            writer.db.execute(
                f"INSERT INTO events ({COLUMNS}) SELECT {COLUMNS} FROM events LIMIT 1"  # noqa: S608
            )
    finally:
        writer.db.close()


def test_feed_runs_keep_their_positions_without_autoincrement(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "events.db", isolation_level=None)
    db.execute(
        "CREATE TABLE feed_runs (pos INTEGER PRIMARY KEY AUTOINCREMENT,"
        " incident TEXT NOT NULL, first INTEGER NOT NULL, last INTEGER NOT NULL)"
    )
    db.executemany(
        "INSERT INTO feed_runs (incident, first, last) VALUES (?, ?, ?)",
        [(f"inc-{i % 3}", i, i + 1) for i in range(1, 8)],
    )
    db.execute("DELETE FROM feed_runs WHERE pos = 3")  # a hole stays a hole
    before = db.execute("SELECT * FROM feed_runs ORDER BY pos").fetchall()
    feed.create_sqlite(db)
    (sql,) = db.execute("SELECT sql FROM sqlite_schema WHERE name = 'feed_runs'").fetchone()
    assert "AUTOINCREMENT" not in sql.upper()
    assert db.execute("SELECT * FROM feed_runs ORDER BY pos").fetchall() == before
    db.execute("INSERT INTO feed_runs (incident, first, last) VALUES ('inc-9', 1, 1)")
    (newest,) = db.execute("SELECT max(pos) FROM feed_runs").fetchone()
    assert newest == before[-1][0] + 1
    feed.create_sqlite(db)  # again: nothing to move
    assert len(db.execute("SELECT * FROM feed_runs").fetchall()) == len(before) + 1
    db.close()
