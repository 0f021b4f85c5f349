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
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench.cold_start import _draft as _bench_draft
from server.domain.events import STORED_FIELDS, EventDraft
from server.storage import feed
from server.storage.integrity import check_sqlite
from server.storage.sqlite import _EVENTS_TABLE, SqliteConfig, _Writer
from tests.conftest import ROOT
from tests.processes import end_process

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "layout0" / "embedded"
COLUMNS = ", ".join(STORED_FIELDS)
OPEN_WRITER = (
    "import sys; from pathlib import Path; from server.storage.sqlite import SqliteConfig, _Writer;"
    " _Writer(SqliteConfig(Path(sys.argv[1])))"
)


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


def _old_layout(db: Path, events: int) -> None:
    """``events`` events over 50 incidents, then the table rebuilt as 0.1.0 kept it."""
    writer = _Writer(SqliteConfig(db, synchronous="OFF"))
    names = [f"inc-{i}" for i in range(50)]
    writer.commit([_bench_draft(name, 0, created=True) for name in names])
    drafts = [_bench_draft(names[k % 50], k // 50 + 1) for k in range(events)]
    for start in range(0, events, 1_000):
        writer.commit(drafts[start : start + 1_000])
    old_table = _EVENTS_TABLE.format(name="events_old").replace(");", ") WITHOUT ROWID;")
    copy = f"INSERT INTO events_old SELECT {COLUMNS} FROM events;"  # noqa: S608
    writer.db.executescript(
        f"BEGIN; {old_table} {copy} DROP TABLE events; ALTER TABLE events_old RENAME TO events;"
        " CREATE UNIQUE INDEX events_idempotency ON events (actor_user, client_id); COMMIT;"
    )
    writer.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    writer.db.close()
    assert "WITHOUT ROWID" in _table_sql(db).upper()


def test_a_kill_during_the_move_leaves_the_old_table_and_the_next_open_finishes_it(
    tmp_path: Path,
) -> None:
    db = tmp_path / "events.db"
    _old_layout(db, 100_000)
    before = _rows(db)
    wal = db.with_name("events.db-wal")
    opener = subprocess.Popen(  # the upgrade, in a process of its own
        [sys.executable, "-c", OPEN_WRITER, str(db)], cwd=ROOT
    )
    try:
        deadline = time.monotonic() + 60
        # Mid-copy: the open transaction's pages spill into the WAL.
        while not (wal.exists() and wal.stat().st_size > 4 * 1024 * 1024):
            assert opener.poll() is None, "the move ended before it could be interrupted"
            assert time.monotonic() < deadline, "the move did not start"
            time.sleep(0.001)
        end_process(opener, kill=True)
    finally:
        end_process(opener, kill=True)
    assert "WITHOUT ROWID" in _table_sql(db).upper()  # nothing of the move committed
    assert _rows(db) == before
    writer = _Writer(SqliteConfig(db))  # the next start moves them
    writer.db.close()
    assert "WITHOUT ROWID" not in _table_sql(db).upper()
    assert _rows(db) == before
    assert check_sqlite(tmp_path).events == len(before)
