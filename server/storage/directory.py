"""Organisations, users and their password hashes, in SQLite.

The whole directory is small (thousands of rows) and read on every command,
so it lives in memory; writes go to disk first (on a worker thread), then
into memory.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.domain.model import Org, Principal, Role

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
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class User:
    id: str
    username: str
    org_id: str
    name: str
    role: Role
    password_hash: str
    disabled: bool

    @property
    def principal(self) -> Principal:
        return Principal(user_id=self.id, org_id=self.org_id, role=self.role, name=self.name)

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "username": self.username,
            "org": self.org_id,
            "name": self.name,
            "role": self.role.value,
            "disabled": self.disabled,
        }


class DirectoryConflict(Exception):
    """A username or organisation id is taken already."""


class Directory:
    """Implements domain.directory.DirectoryView plus the admin operations."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="liaison-directory")
        self._db: sqlite3.Connection | None = None
        self.orgs: dict[str, Org] = {}
        self.users: dict[str, User] = {}
        self._by_username: dict[str, User] = {}

    async def start(self) -> None:
        await self._run(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.executescript(SCHEMA)
        self._db = db
        self._load()

    async def reload(self) -> None:
        """Pick up rows written by another process (the ``liaison`` CLI)."""
        await self._run(self._load)

    def _load(self) -> None:
        db = self._db
        assert db is not None
        for oid, name, kind in db.execute("SELECT id, name, kind FROM orgs"):
            self.orgs[oid] = Org(oid, name, kind)
        for row in db.execute(
            "SELECT id, username, org_id, name, role, password_hash, disabled FROM users"
        ):
            self._remember(User(row[0], row[1], row[2], row[3], Role(row[4]), row[5], bool(row[6])))

    async def close(self) -> None:
        if self._db is not None:
            await self._run(self._db.close)
        self._pool.shutdown(wait=True)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _remember(self, user: User) -> None:
        old = self.users.get(user.id)
        if old is not None:
            self._by_username.pop(old.username, None)
        self.users[user.id] = user
        self._by_username[user.username] = user

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

        def write() -> None:
            assert self._db is not None
            self._db.execute(
                "INSERT INTO orgs VALUES (?, ?, ?, ?)",
                (org.id, org.name, org.kind, int(time.time() * 1000)),
            )

        await self._run(write)
        self.orgs[org.id] = org
        return org

    async def add_user(self, user: User) -> User:
        if user.org_id not in self.orgs:
            raise DirectoryConflict(f"no organisation {user.org_id!r}")
        if user.id in self.users or user.username in self._by_username:
            raise DirectoryConflict(f"user {user.username!r} exists")

        def write() -> None:
            assert self._db is not None
            self._db.execute(
                "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    user.id,
                    user.username,
                    user.org_id,
                    user.name,
                    user.role.value,
                    user.password_hash,
                    int(user.disabled),
                    int(time.time() * 1000),
                ),
            )

        await self._run(write)
        self._remember(user)
        return user

    async def set_password(self, user_id: str, password_hash: str) -> None:
        def write() -> None:
            assert self._db is not None
            self._db.execute(
                "UPDATE users SET password_hash = ? WHERE id = ?", (password_hash, user_id)
            )

        await self._run(write)
        old = self.users[user_id]
        self._remember(
            User(old.id, old.username, old.org_id, old.name, old.role, password_hash, old.disabled)
        )

    async def setting(self, key: str) -> str | None:
        def read() -> str | None:
            assert self._db is not None
            row = self._db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
            return row[0] if row else None

        value: str | None = await self._run(read)
        return value

    async def set_setting(self, key: str, value: str) -> None:
        def write() -> None:
            assert self._db is not None
            self._db.execute(
                "INSERT INTO settings VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = ?",
                (key, value, value),
            )

        await self._run(write)
