"""The small stores' error contract: storage trouble is StorageUnavailable, a bug is not hidden."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from server.errors import StorageUnavailable
from server.storage.small_db import immediate, run_on


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA busy_timeout=50")
    return db


async def test_a_locked_file_is_storage_unavailable_and_nothing_is_written(tmp_path: Path) -> None:
    path = tmp_path / "small.db"
    holder, writer = _connect(path), _connect(path)
    holder.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    holder.execute("BEGIN IMMEDIATE")  # another process of the data dir, mid-write
    with ThreadPoolExecutor(1) as pool:
        with pytest.raises(StorageUnavailable, match="OperationalError: database is locked"):
            await run_on(pool, immediate, writer, lambda db: db.execute("INSERT INTO t VALUES (1)"))
        holder.execute("COMMIT")
        await run_on(pool, immediate, writer, lambda db: db.execute("INSERT INTO t VALUES (2)"))
    assert holder.execute("SELECT id FROM t").fetchall() == [(2,)]


async def test_a_closed_file_is_storage_unavailable(tmp_path: Path) -> None:
    db = _connect(tmp_path / "small.db")
    db.close()
    with ThreadPoolExecutor(1) as pool, pytest.raises(StorageUnavailable):
        await run_on(pool, db.execute, "SELECT 1")


async def test_an_integrity_error_is_left_to_the_store_and_rolled_back(tmp_path: Path) -> None:
    db = _connect(tmp_path / "small.db")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")

    def twice(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (1)")
        conn.execute("INSERT INTO t VALUES (1)")

    with ThreadPoolExecutor(1) as pool, pytest.raises(sqlite3.IntegrityError):
        await run_on(pool, immediate, db, twice)
    assert db.execute("SELECT count(*) FROM t").fetchone() == (0,)
    assert not db.in_transaction
