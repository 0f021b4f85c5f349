"""The small embedded databases' thread and transaction, in one place.

Directory, sessions, API keys, agreements, audit, push and webhooks each keep
a SQLite file on a thread of their own. Their interfaces promise that storage
trouble raises ``StorageUnavailable`` (callers retry, refuse with
``unavailable`` or serve from memory); a raw ``sqlite3.OperationalError``
("database is locked" past the busy timeout, a full disk, a closed file)
escaping instead reached code that only expected the typed error.
Integrity errors are left alone: the stores turn them into their own
conflicts inside the thread, and one that escapes is a bug to see as such.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from server.errors import StorageUnavailable


async def run_on(pool: Executor, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` on the store's thread; storage trouble as ``StorageUnavailable``."""
    try:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
    except sqlite3.IntegrityError:
        raise
    except sqlite3.Error as exc:
        raise StorageUnavailable(f"{type(exc).__name__}: {exc}") from exc


def immediate(db: sqlite3.Connection, body: Callable[[sqlite3.Connection], Any]) -> Any:
    """``body`` in one ``BEGIN IMMEDIATE`` transaction (on the store's thread):
    another process of the data dir writing the same rows waits, never interleaves."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = body(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return result
