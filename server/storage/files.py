"""Files of the embedded backend: only the server's own user may read them.

The data directory holds the police data (events.db), the directory with the
password hashes and the token-signing secret. Their modes must not depend on
the umask of whoever started the server (measured: with umask 000 the SQLite
files came out 0666 and the secret was world-readable until its chmod).
Every file is created with its final mode (``os.open`` with 0600; never
written first and narrowed after), the directory with 0700, and companions
that SQLite creates later (``-wal``, ``-shm``) take the database file's mode.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from pathlib import Path

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> None:
    """Create ``path`` 0700, or narrow an existing one that others could read."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.info("narrowing %s from %o to %o", path, mode, DIR_MODE)
        path.chmod(DIR_MODE)


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if missing; narrow it if it exists.

    An existing file is never opened: closing any descriptor of a SQLite
    database drops every POSIX lock this process holds on it. Measured: a
    second store opening ``sessions.db`` in the server made the CLI believe
    it was the file's only user; it checkpointed and deleted the WAL, and
    the server's later commits went to the unlinked file (lost).
    """
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
            return
        except FileExistsError:  # created meanwhile by another process
            mode = stat.S_IMODE(path.stat().st_mode)
    if mode != FILE_MODE:
        path.chmod(FILE_MODE)


def private_sqlite(path: Path) -> None:
    """Before ``sqlite3.connect``: the database and any journal files it has, 0600."""
    private_dir(path.parent)
    private_file(path)
    for suffix in ("-wal", "-shm", "-journal"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            private_file(companion)


def write_private(path: Path, text: str) -> None:
    """Write a new file that is 0600 from its first byte (O_EXCL: never an old one)."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "w") as file:
        file.write(text)


def connect_private_sqlite(path: Path, schema: str) -> sqlite3.Connection:
    """A small embedded database (directory, sessions, audit): private file,
    autocommit (transactions are explicit), WAL, a busy timeout for the other
    processes of the data dir (the CLI), and its schema applied."""
    private_sqlite(path)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA busy_timeout=5000")
    db.executescript(schema)
    return db
