"""Organisations, users and their password hashes.

The directory is small (thousands of rows) and read on every command, so
``Directory`` keeps all of it in memory; writes go to a ``DirectoryStorage``
first (SQLite for one node, Redis for many), then into memory.

Rows written by another process (the ``liaison`` CLI) or node are picked up
by change detection, never by re-reading on a login miss (that made every
unknown username a full reload: an enumeration oracle and a denial of service,
167 ms against 56 ms with 20,000 users). ``DirectoryStorage.version`` is a
cheap change token (SQLite's ``PRAGMA data_version``, a counter key in Redis);
``Directory`` compares it every ``refresh_s`` and on a login miss
(``catch_up``), and reloads only when it moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from server.domain.model import Org, Principal, Role
from server.domain.sharing import DEFAULT_ORG_LABEL, Label
from server.storage.files import connect_private_sqlite
from server.storage.small_db import run_on

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    org_id: str
    name: str
    role: Role
    password_hash: str
    disabled: bool
    #: Expertise tags (server/domain/expertise.py), set by an admin.
    tags: tuple[str, ...] = ()
    #: A number to call (tap-to-call for an incident's liaison): E.164 or as
    #: dialled locally; None if not given. Shown to one's own organisation and,
    #: for a liaison, to the incident's participants (services/contacts.py).
    phone: str | None = None

    @property
    def principal(self) -> Principal:
        return Principal(user_id=self.id, org_id=self.org_id, role=self.role, name=self.name)

    @property
    def deleted(self) -> bool:
        return self.password_hash == DELETED

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "org": self.org_id,
            "name": self.name,
            "role": self.role.value,
            "disabled": self.disabled,
            "tags": list(self.tags),
            "phone": self.phone,
        }

    def to_row(self) -> list[Any]:
        return [
            self.id,
            self.username,
            self.org_id,
            self.name,
            self.role.value,
            self.password_hash,
            self.disabled,
            list(self.tags),
            self.phone,
        ]

    @classmethod
    def from_row(cls, row: Any) -> User:
        """A row of ``to_row``: [..., disabled, tags, phone]. One stored before
        tags existed has seven items, one stored before phone numbers eight."""
        tags = _tags_of(row[7]) if len(row) > 7 else ()
        phone = row[8] if len(row) > 8 else None
        return cls(row[0], row[1], row[2], row[3], Role(row[4]), row[5], bool(row[6]), tags, phone)


def _tags_of(value: Any) -> tuple[str, ...]:
    """Stored tags: a list (msgpack) or its JSON text (SQLite)."""
    if isinstance(value, str):
        value = json.loads(value or "[]")
    return tuple(str(tag) for tag in value or ())


#: The password hash of a deleted account: no password matches it. The row is
#: kept as a tombstone so the id is never given to someone else and authorship
#: in incident logs and the audit log stays resolvable.
DELETED = "!deleted"


class DirectoryConflict(Exception):
    """A username or organisation id is taken already."""


class DirectoryStorage(Protocol):
    """Where the directory is kept (SQLite for one node, Redis for many).

    * Durable: what an add stored is in every later ``load``, by any process or
      node of the deployment, after restarts too.
    * Unique: an organisation id, a user id and a username are each taken once
      across the deployment, also when two nodes add at once; an add of a
      taken one raises DirectoryConflict and changes nothing visible.
    * ``load`` returns everything (the directory is small); order is unspecified.
    * Nothing is cached here: ``Directory`` keeps the in-memory copy and decides
      when to re-read (``Backends.directory_refresh_s``).
    * ``version`` is cheap (no rows read) and changes after every write that
      another process or node of the deployment committed; equal tokens mean
      nothing changed. Every write method must keep that true.
    """

    async def open(self) -> None: ...

    async def load(self) -> tuple[list[Org], list[User]]: ...

    async def add_org(self, org: Org) -> None: ...

    async def add_user(self, user: User) -> None: ...

    async def version(self) -> object: ...

    async def replace_password_hash(self, user_id: str, old: str, new: str) -> bool:
        """Compare-and-set: False (nothing written) if the stored hash is not ``old``."""
        ...

    async def update_user(self, user: User) -> None:
        """Replace the row of ``user.id`` (name, role, hash, disabled, tags); the
        id, username and organisation never change. Durable like an add."""

    async def update_org(self, org: Org) -> None:
        """Replace the row of ``org.id`` (name, kind, default label, tags); the id
        never changes. Durable like an add."""

    async def close(self) -> None: ...


class Directory:
    """Implements domain.directory.DirectoryView plus the admin operations."""

    def __init__(self, storage: DirectoryStorage, refresh_s: float = 0.0) -> None:
        self.storage = storage
        #: The storage's change token is compared this often, so organisations
        #: and users added by the CLI or another node appear here too; 0 = only
        #: on a login miss.
        self.refresh_s = refresh_s
        #: Full re-reads so far (in /healthz): a login miss must not add one.
        self.reloads = 0
        self._version: object = None
        self._refresher: asyncio.Task[None] | None = None
        self.orgs: dict[str, Org] = {}
        self.users: dict[str, User] = {}
        self._by_username: dict[str, User] = {}

    async def start(self) -> None:
        await self.storage.open()
        await self.reload()
        if self.refresh_s > 0:
            self._refresher = asyncio.create_task(self._refresh(), name="directory-refresh")

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
        await self.storage.close()

    async def _refresh(self) -> None:
        # Once a second now (it was every 5 s, Redis only): one warning per
        # outage, not one per tick, and a line when it is over.
        failing = False
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.catch_up()
            except Exception as exc:  # storage away: keep serving from memory
                if not failing:
                    log.warning("directory refresh failed (serving from memory): %s", exc)
                failing = True
            else:
                if failing:
                    log.info("directory refresh works again")
                failing = False

    async def catch_up(self) -> None:
        """Reload if another process or node wrote since the last load; cheap otherwise."""
        if await self.storage.version() != self._version:
            await self.reload()

    async def reload(self) -> None:
        """Pick up rows written by another process or node."""
        # The token first: a write landing during the load is caught next time.
        self._version = await self.storage.version()
        self.reloads += 1
        orgs, users = await self.storage.load()
        self.orgs = {org.id: org for org in orgs}
        self.users = {user.id: user for user in users}
        self._by_username = {user.username: user for user in users}

    # ------------------------------------------------------------ DirectoryView

    def org(self, org_id: str) -> Org | None:
        return self.orgs.get(org_id)

    def user(self, user_id: str) -> Principal | None:
        user = self.users.get(user_id)
        return user.principal if user is not None and not user.disabled else None

    def by_username(self, username: str) -> User | None:
        return self._by_username.get(username)

    # ------------------------------------------------------------------ writes

    async def add_org(self, org: Org) -> Org:
        if org.id in self.orgs:
            raise DirectoryConflict(f"organisation {org.id!r} exists")
        await self.storage.add_org(org)
        self.orgs[org.id] = org
        return org

    async def add_user(self, user: User) -> User:
        if user.org_id not in self.orgs:
            await self.reload()
            if user.org_id not in self.orgs:
                raise DirectoryConflict(f"no organisation {user.org_id!r}")
        if user.id in self.users or user.username in self._by_username:
            raise DirectoryConflict(f"user {user.username!r} exists")
        await self.storage.add_user(user)
        self.users[user.id] = user
        self._by_username[user.username] = user
        return user

    async def replace_password_hash(self, user: User, new_hash: str) -> None:
        """Store a stronger hash of the same password (re-hash at login)."""
        if await self.storage.replace_password_hash(user.id, user.password_hash, new_hash):
            updated = dataclasses.replace(user, password_hash=new_hash)
            self.users[user.id] = updated
            self._by_username[user.username] = updated

    async def update_user(self, user: User) -> User:
        """Store a changed row of an existing user (disable, password, delete)."""
        await self.storage.update_user(user)
        self.users[user.id] = user
        self._by_username[user.username] = user
        return user

    async def update_org(self, org: Org) -> Org:
        """Store a changed row of an existing organisation (its default label)."""
        await self.storage.update_org(org)
        self.orgs[org.id] = org
        return org


SCHEMA = """
CREATE TABLE IF NOT EXISTS orgs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, kind TEXT NOT NULL, created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    org_id TEXT NOT NULL REFERENCES orgs(id),
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL
);
"""

#: Columns added since the first schema, applied on open: (table, column, definition).
MIGRATIONS = (
    ("orgs", "default_label", f"TEXT NOT NULL DEFAULT '{DEFAULT_ORG_LABEL.value}'"),
    ("orgs", "tags", "TEXT NOT NULL DEFAULT '[]'"),
    ("users", "tags", "TEXT NOT NULL DEFAULT '[]'"),
    ("users", "phone", "TEXT"),
)


def _migrate(db: sqlite3.Connection) -> None:
    """Add the columns an older directory.db lacks (each in its own statement)."""
    for table, column, definition in MIGRATIONS:
        present = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
        if column not in present:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")


def org_from_row(row: Any) -> Org:
    """[id, name, kind, label?, tags?]; a missing label (an older row) or one
    this version does not know reads as the default, missing tags as none."""
    label = DEFAULT_ORG_LABEL
    if len(row) > 3:
        try:
            label = Label(row[3])
        except ValueError:
            log.warning("organisation %s: unknown default label %r", row[0], row[3])
    return Org(row[0], row[1], row[2], label, _tags_of(row[4]) if len(row) > 4 else ())


class SqliteDirectoryStorage:
    """The directory in a SQLite file, written on a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="liaison-directory")
        self._db: sqlite3.Connection | None = None

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await run_on(self._pool, fn, *args)

    async def open(self) -> None:
        self._db = await self._run(connect_private_sqlite, self.path, SCHEMA)
        await self._run(_migrate, self._db)

    async def load(self) -> tuple[list[Org], list[User]]:
        def read() -> tuple[list[Org], list[User]]:
            assert self._db is not None
            orgs = [
                org_from_row(row)
                for row in self._db.execute("SELECT id, name, kind, default_label, tags FROM orgs")
            ]
            users = [
                User.from_row(row)
                for row in self._db.execute(
                    "SELECT id, username, org_id, name, role, password_hash, disabled, tags,"
                    " phone FROM users"
                )
            ]
            return orgs, users

        result: tuple[list[Org], list[User]] = await self._run(read)
        return result

    async def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        def write() -> None:
            assert self._db is not None
            try:
                self._db.execute(sql, args)
            except sqlite3.IntegrityError as exc:
                raise DirectoryConflict(str(exc)) from exc

        await self._run(write)

    async def add_org(self, org: Org) -> None:
        await self._write(
            "INSERT INTO orgs (id, name, kind, created_ms, default_label, tags)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                org.id,
                org.name,
                org.kind,
                int(time.time() * 1000),
                org.default_label.value,
                json.dumps(list(org.tags)),
            ),
        )

    async def add_user(self, user: User) -> None:
        await self._write(
            "INSERT INTO users (id, username, org_id, name, role, password_hash, disabled,"
            " created_ms, tags, phone) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                *user.to_row()[:6],
                int(user.disabled),
                int(time.time() * 1000),
                json.dumps(list(user.tags)),
                user.phone,
            ),
        )

    async def version(self) -> object:
        """``PRAGMA data_version``: moves when another connection (the CLI) commits."""

        def read() -> int:
            assert self._db is not None
            row = self._db.execute("PRAGMA data_version").fetchone()
            return int(row[0])

        return await self._run(read)

    async def replace_password_hash(self, user_id: str, old: str, new: str) -> bool:
        def write() -> bool:
            assert self._db is not None
            cur = self._db.execute(
                "UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?",
                (new, user_id, old),
            )
            return cur.rowcount == 1

        changed: bool = await self._run(write)
        return changed

    async def update_user(self, user: User) -> None:
        await self._write(
            "UPDATE users SET name = ?, role = ?, password_hash = ?, disabled = ?, tags = ?,"
            " phone = ? WHERE id = ?",
            (
                user.name,
                user.role.value,
                user.password_hash,
                int(user.disabled),
                json.dumps(list(user.tags)),
                user.phone,
                user.id,
            ),
        )

    async def update_org(self, org: Org) -> None:
        await self._write(
            "UPDATE orgs SET name = ?, kind = ?, default_label = ?, tags = ? WHERE id = ?",
            (org.name, org.kind, org.default_label.value, json.dumps(list(org.tags)), org.id),
        )

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
        self._pool.shutdown(wait=True)
