"""Storage layout versions, and the migrations that bring older data up to date.

One number names the layout of everything Liaison stores: the SQLite files
of a data directory, and the keys of a Redis. Where it is kept:

- embedded: the file ``layout-version`` in the data directory (one line, the
  number), written atomically (a new file renamed over the old);
- Redis: the string key ``liaison:layout``.

Layout 0 is what 0.1.0 stored before versions existed (no file, no key, yet
data present). A data directory or Redis with nothing of Liaison in it is
new and gets the current version at once.

Migrations run in order, each at most once per store; every one must be
idempotent (a crash between a migration and the version write runs it
again). Data stamped with a version newer than this code's is refused with
``LayoutTooNew``: an older server must never write into a layout it does not
know (a downgrade restores a backup instead). Starting ``liaison serve``
migrates (``liaison migrate`` does the same without serving, and
``--check`` only reports); see deploy/README.md, "Upgrades".
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.storage import redis_keys as keys
from server.storage.files import FILE_MODE, private_dir

log = logging.getLogger(__name__)

#: The layout this code reads and writes.
LAYOUT_VERSION = 4
LAYOUT_FILE = "layout-version"
LAYOUT_KEY = keys.PREFIX + "layout"
#: Held (SET NX with an expiry) by the node that migrates a Redis.
LOCK_KEY = keys.PREFIX + "layout:lock"
LOCK_MS = 10 * 60 * 1000

#: Files whose presence means a data directory holds Liaison data.
SQLITE_FILES = (
    "events.db",
    "directory.db",
    "sessions.db",
    "audit.db",
    "agreements.db",
    "webhooks.db",
    "retention.db",
    "anchors.db",
    "capacity.db",
    "push.db",
)
#: Keys whose presence means a Redis holds Liaison data (an admin user, at least).
REDIS_MARKERS = (keys.USERS, keys.ORGS, keys.INCIDENTS, keys.SECRET, keys.AUDIT_LOG)

Progress = Callable[[str], None]


class LayoutTooNew(Exception):
    """The data was written by a newer Liaison than this one."""

    def __init__(self, where: str, found: int) -> None:
        super().__init__(
            f"{where} has storage layout {found}, newer than this Liaison's {LAYOUT_VERSION}:"
            " run the newer version, or restore a backup made by this one"
        )
        self.found = found


class LayoutLocked(Exception):
    """Another node is migrating this Redis right now."""


@dataclass(frozen=True, slots=True)
class Migration:
    """From ``version - 1`` to ``version``, for both backends (idempotent)."""

    version: int
    summary: str
    sqlite: Callable[[Path], None]
    redis: Callable[[Any], Awaitable[None]]


def _baseline_sqlite(_: Path) -> None:
    """Layout 1 is layout 0 with its version recorded: no data changes."""


async def _baseline_redis(_: Any) -> None:
    """As ``_baseline_sqlite``."""


def _fts_search_sqlite(data_dir: Path) -> None:
    """Layout 2: text search in an FTS5 table (``event_words``) instead of the
    ``event_terms`` B-tree. The writer builds it from the events and drops the
    old table when it opens the file (``_Writer._index_terms_missing``, one
    transaction, idempotent); the number stops an older server, whose search
    would silently find nothing in older events."""
    from server.storage.sqlite import SqliteConfig, _Writer  # only this migration needs it

    events = data_dir / "events.db"
    if events.exists():
        _Writer(SqliteConfig(events)).db.close()


async def _same_redis(_: Any) -> None:
    """Layouts 2 to 4 change nothing in Redis (its search keys stay as they are)."""


def _contentless_words_sqlite(data_dir: Path) -> None:
    """Layout 3: ``event_words`` contentless, so it no longer holds a copy of
    every event's words. Built again from the events when the writer opens
    the file, as for layout 2; an older server would try to read the words
    back (its archive deletes by rowid), so the number stops it."""
    _fts_search_sqlite(data_dir)


def _rowid_events_sqlite(data_dir: Path) -> None:
    """Layout 4: the embedded events in a rowid table, not WITHOUT ROWID (a third
    fewer pages written per commit: ``_EVENTS_TABLE`` in server/storage/sqlite.py),
    and the feed's runs without AUTOINCREMENT (``feed._RUNS_TABLE``).
    The writer moves the rows when it opens the file (``_Writer._events_with_rowids``,
    one transaction, idempotent), as for layouts 2 and 3; ``liaison migrate``
    does it before serving. An older server could read the table as it is;
    the number tells an operator that a start will take longer once."""
    _fts_search_sqlite(data_dir)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "record the layout version (0.1.0 data is layout 1 as it is)",
        _baseline_sqlite,
        _baseline_redis,
    ),
    Migration(2, "text search in an FTS5 table", _fts_search_sqlite, _same_redis),
    Migration(
        3, "the text index without a copy of the words", _contentless_words_sqlite, _same_redis
    ),
    Migration(4, "embedded events in a rowid table", _rowid_events_sqlite, _same_redis),
)
assert [m.version for m in MIGRATIONS] == list(range(1, LAYOUT_VERSION + 1))


def pending(found: int) -> list[Migration]:
    return [m for m in MIGRATIONS if m.version > found]


# ------------------------------------------------------------------ embedded


def sqlite_layout(data_dir: Path) -> int | None:
    """The data directory's layout; None if it holds no Liaison data yet."""
    path = data_dir / LAYOUT_FILE
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return 0 if any((data_dir / name).exists() for name in SQLITE_FILES) else None
    if not text.isdigit():
        raise ValueError(f"{path} should hold a layout number, not {text[:40]!r}")
    return int(text)


def write_sqlite_layout(data_dir: Path, version: int) -> None:
    """Atomically: a complete new file, fsynced, renamed over the old one."""
    private_dir(data_dir)
    target = data_dir / LAYOUT_FILE
    temp = data_dir / (LAYOUT_FILE + ".new")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w") as file:
        file.write(f"{version}\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temp, target)


def migrate_sqlite(data_dir: Path, progress: Progress | None = None) -> tuple[int, int]:
    """Bring the data directory to LAYOUT_VERSION; (found, now). The caller makes
    sure no other process uses the directory (the server's ``events.lock``)."""
    found = sqlite_layout(data_dir)
    if found is None:
        write_sqlite_layout(data_dir, LAYOUT_VERSION)
        return LAYOUT_VERSION, LAYOUT_VERSION
    if found > LAYOUT_VERSION:
        raise LayoutTooNew(str(data_dir), found)
    for migration in pending(found):
        _say(progress, f"layout {migration.version}: {migration.summary}")
        migration.sqlite(data_dir)
        write_sqlite_layout(data_dir, migration.version)
    return found, LAYOUT_VERSION


# --------------------------------------------------------------------- Redis


async def redis_layout(client: Any) -> int | None:
    """The Redis's layout; None if it holds no Liaison data yet."""
    raw = await client.get(LAYOUT_KEY)
    if raw is not None:
        return int(raw)
    return 0 if await client.exists(*REDIS_MARKERS) else None


async def migrate_redis(
    client: Any, owner: str, progress: Progress | None = None
) -> tuple[int, int]:
    """Bring the Redis to LAYOUT_VERSION under LOCK_KEY (one node migrates; the
    others wait for it or, after the lock's expiry, redo the idempotent steps)."""
    found = await redis_layout(client)
    if found is not None and found > LAYOUT_VERSION:
        raise LayoutTooNew("this Redis", found)
    if found == LAYOUT_VERSION:
        return found, found
    if found is None:
        # A new Redis: stamp it, unless another node's first start just did.
        await client.set(LAYOUT_KEY, LAYOUT_VERSION, nx=True)
        now = await redis_layout(client)
        if now is not None and now > LAYOUT_VERSION:
            raise LayoutTooNew("this Redis", now)
        return LAYOUT_VERSION, LAYOUT_VERSION
    if not await client.set(LOCK_KEY, owner, nx=True, px=LOCK_MS):
        raise LayoutLocked(
            f"another node ({(await client.get(LOCK_KEY) or b'?').decode()}) is migrating"
            " this Redis; start again when it is done"
        )
    try:
        for migration in pending(found):
            _say(progress, f"layout {migration.version}: {migration.summary}")
            await migration.redis(client)
            await client.set(LAYOUT_KEY, migration.version)
    finally:
        await client.delete(LOCK_KEY)
    return found, LAYOUT_VERSION


def _say(progress: Progress | None, line: str) -> None:
    log.info("migrating: %s", line)
    if progress is not None:
        progress(line)
