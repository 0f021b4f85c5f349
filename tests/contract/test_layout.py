"""Storage layout versions and backups: one contract, both backends.

- New storage is stamped with this code's layout; layout 0 (data, no version)
  is migrated; a second run changes nothing; data newer than the code is
  refused with a clear error, and so is ``liaison serve`` on it.
- A backup restores only into an empty target (unless forced) with the same
  heads, and a restore whose chain does not verify fails loudly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
import stat
import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from server.cli_storage import prepare_layout
from server.settings import Settings
from server.storage import redis_keys as keys
from server.storage.backup import (
    BackupError,
    _sqlite_tombstones,
    backup_redis,
    backup_sqlite,
    restore_redis,
    restore_sqlite,
)
from server.storage.codec import pack_event, unpack_event
from server.storage.layout import (
    LAYOUT_KEY,
    LAYOUT_VERSION,
    LayoutTooNew,
    migrate_redis,
    migrate_sqlite,
    redis_layout,
    sqlite_layout,
    write_sqlite_layout,
)
from tests.contract.conftest import embedded_settings, redis_settings
from tests.redis_server import RedisServer


@dataclass
class Target:
    """One backend's storage as the layout and backup code see it."""

    name: str
    settings: Settings
    client: Any = None

    async def layout(self) -> int | None:
        if self.client is None:
            return sqlite_layout(self.settings.data_dir)
        return await redis_layout(self.client)

    async def migrate(self) -> tuple[int, int]:
        if self.client is None:
            return migrate_sqlite(self.settings.data_dir)
        return await migrate_redis(self.client, "contract")

    async def stamp(self, version: int) -> None:
        if self.client is None:
            write_sqlite_layout(self.settings.data_dir, version)
        else:
            await self.client.set(LAYOUT_KEY, version)

    async def make_layout_0(self) -> None:
        """Data as 0.1.0 left it: Liaison's files or keys, no version."""
        if self.client is None:
            self.settings.data_dir.mkdir(parents=True, exist_ok=True)
            (self.settings.data_dir / "directory.db").touch()
        else:
            await self.client.hset(keys.USERS, "u_admin", b"x")


@pytest.fixture(params=["sqlite", "redis"])
async def target(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    if request.param == "sqlite":
        yield Target("sqlite", embedded_settings(tmp_path / "data"))
        return
    redis_server: RedisServer = request.getfixturevalue("redis_server")
    redis_server.flush()
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        yield Target("redis", redis_settings(redis_server, "contract"), client)
    finally:
        await client.aclose()


async def test_new_storage_is_stamped_with_this_layout(target: Target) -> None:
    assert await target.layout() is None
    assert await target.migrate() == (LAYOUT_VERSION, LAYOUT_VERSION)
    assert await target.layout() == LAYOUT_VERSION


async def test_layout_0_is_migrated_once(target: Target) -> None:
    await target.make_layout_0()
    assert await target.layout() == 0
    assert await target.migrate() == (0, LAYOUT_VERSION)
    assert await target.migrate() == (LAYOUT_VERSION, LAYOUT_VERSION)
    assert await target.layout() == LAYOUT_VERSION


async def test_data_newer_than_the_code_is_refused_and_so_is_serving_it(
    target: Target, capsys: pytest.CaptureFixture[str]
) -> None:
    await target.make_layout_0()
    await target.stamp(LAYOUT_VERSION + 1)
    with pytest.raises(LayoutTooNew, match=f"layout {LAYOUT_VERSION + 1}, newer than"):
        await target.migrate()
    if target.client is None:  # prepare_layout runs its own event loop (as `serve` does)
        assert prepare_layout(target.settings) == 2
        assert "newer than this Liaison's" in capsys.readouterr().err
    assert await target.layout() == LAYOUT_VERSION + 1


@pytest.fixture(params=["sqlite", "redis"])
async def filled(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Target]:
    """A backend with two incidents' events, written by the real backends."""
    from server.backends import running
    from tests.contract.test_event_log import draft, open_incident

    if request.param == "sqlite":
        settings = embedded_settings(tmp_path / "source")
        client = None
    else:
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        redis_server.flush()
        settings = redis_settings(redis_server, "contract")
        client = aioredis.Redis.from_url(redis_server.url)
    async with running(settings) as backends:
        for incident in ("inc_a", "inc_b"):
            await open_incident(backends.log, incident)
            for n in range(2):
                await backends.log.append(draft(incident, f"{incident}-{n}"))
    target = Target(request.param, settings, client)
    await target.migrate()
    try:
        yield target
    finally:
        if client is not None:
            await client.aclose()


async def _backup(target: Target, archive: Path, files: Path | None = None) -> Any:
    """``files``: the archive directory, None to leave the archive files out."""
    if target.client is None:
        return backup_sqlite(target.settings.data_dir, archive, archive_dir=files)
    return await backup_redis(target.client, archive, archive_dir=files)


async def _restore(
    target: Target, archive: Path, where: Any, force: bool = False, files: Path | None = None
) -> Any:
    """``files``: where the archive files go (a directory of the test's own by default)."""
    files = files or archive.with_name(archive.name + ".restored-archive")
    if target.client is None:
        return restore_sqlite(archive, where, force=force, archive_dir=files)
    return await restore_redis(archive, where, force=force, archive_dir=files)


async def test_a_backup_restores_into_an_empty_target_only(
    filled: Target, tmp_path: Path, redis_server: RedisServer
) -> None:
    archive = tmp_path / "backup.tar.gz"
    await _backup(filled, archive)
    empty: Any = tmp_path / "restored"
    if filled.client is not None:
        empty = aioredis.Redis.from_url(redis_server.url[: -len("/0")] + "/1")
        await empty.flushdb()
    try:
        restored = await _restore(filled, archive, empty)
        assert (restored.incidents, restored.events) == (2, 6)
        with pytest.raises(BackupError, match="already holds Liaison data"):
            await _restore(filled, archive, empty)
        assert (await _restore(filled, archive, empty, force=True)).events == 6
        # The source itself is no empty target either.
        source = filled.client if filled.client is not None else filled.settings.data_dir
        with pytest.raises(BackupError, match="already holds Liaison data"):
            await _restore(filled, archive, source)
    finally:
        if filled.client is not None:
            await empty.flushdb()
            await empty.aclose()


async def test_a_backup_of_a_broken_chain_is_refused(filled: Target, tmp_path: Path) -> None:
    """Tamper with one stored event: the backup's own verification catches it."""
    if filled.client is None:
        with sqlite3.connect(filled.settings.data_dir / "events.db") as db:
            db.execute(
                "UPDATE events SET body = ? WHERE incident = 'inc_b' AND seq = 2",
                (b'{"text":"tampered"}',),
            )
    else:
        log = keys.log_key("inc_b")
        entries = await filled.client.xrange(log)
        await filled.client.delete(log)
        for entry_id, fields in entries:
            event = unpack_event(fields[b"e"])
            if event.seq == 2:
                event = dataclasses.replace(event, body={"text": "tampered"})
            await filled.client.xadd(log, {"e": pack_event(event)}, id=entry_id)
    with pytest.raises(BackupError, match="does not verify: incident inc_b: event 2"):
        await _backup(filled, tmp_path / "backup.tar.gz")
    assert not (tmp_path / "backup.tar.gz").exists()


async def _archive_one(target: Target, incident: str, archive_dir: Path, state: str) -> str:
    """Archive ``incident`` as the retention job does: a file, then the tombstone."""
    from server.backends import running

    name = f"{incident}-test.jsonl"
    body = f'{{"incident": "{incident}", "archived": "by the test"}}\n'.encode()
    archive_dir.mkdir(parents=True, exist_ok=True)
    if state == "archived":
        (archive_dir / name).write_bytes(body)
    tombstone = {
        "incident": incident,
        "file": name,
        "sha256": hashlib.sha256(body).hexdigest(),
        "state": state,
    }
    async with running(target.settings) as backends:
        head = await backends.log.head(incident)
        assert head is not None
        assert await backends.log.archive(incident, head.seq, tombstone)
    return name


async def test_a_backup_carries_the_archive_files_and_the_restore_puts_them_back(
    filled: Target, tmp_path: Path, redis_server: RedisServer
) -> None:
    """An archived incident lives only in its file: a backup without it loses it."""
    archive_dir = tmp_path / "archive"
    name = await _archive_one(filled, "inc_a", archive_dir, "archived")
    await _archive_one(filled, "inc_b", archive_dir, "purged")  # no file: nothing to carry
    archive = tmp_path / "backup.tar.gz"
    made = await _backup(filled, archive, archive_dir)
    assert made.archives == 1
    with tarfile.open(archive, "r:gz") as tar:
        carried = [n for n in tar.getnames() if n.startswith("archive/")]
    assert carried == [f"archive/{name}"], "the purged incident has no file to carry"

    empty: Any = tmp_path / "restored"
    if filled.client is not None:
        empty = aioredis.Redis.from_url(redis_server.url[: -len("/0")] + "/1")
        await empty.flushdb()
    restored_files = tmp_path / "restored-archive"
    try:
        restored = await _restore(filled, archive, empty, files=restored_files)
        assert restored.archives == 1
        assert (restored_files / name).read_bytes() == (archive_dir / name).read_bytes()
        assert stat.S_IMODE((restored_files / name).stat().st_mode) == 0o600
        assert [p.name for p in restored_files.iterdir()] == [name], "no .partial left"

        # The same file there already is kept; a different one is replaced only if forced.
        (restored_files / name).write_bytes(b"something else")
        fresh: Any = tmp_path / "restored-again"
        if filled.client is not None:
            await empty.flushdb()
            fresh = empty
        with pytest.raises(BackupError, match="differs from the backup's: pass --force"):
            await _restore(filled, archive, fresh, files=restored_files)
        assert (await _restore(filled, archive, empty, force=True, files=restored_files)).archives
        assert (restored_files / name).read_bytes() == (archive_dir / name).read_bytes()
        assert (await _restore(filled, archive, empty, force=True, files=restored_files)).archives
    finally:
        if filled.client is not None:
            await empty.flushdb()
            await empty.aclose()


async def test_a_backup_refuses_a_missing_or_altered_archive_file_unless_told_to_leave_them_out(
    filled: Target, tmp_path: Path
) -> None:
    archive_dir = tmp_path / "archive"
    name = await _archive_one(filled, "inc_a", archive_dir, "archived")
    archive = tmp_path / "backup.tar.gz"
    (archive_dir / name).write_bytes(b"altered")
    with pytest.raises(BackupError, match=f"{name} of incident inc_a has sha256"):
        await _backup(filled, archive, archive_dir)
    (archive_dir / name).unlink()
    missing = f"{name} of incident inc_a is not in .*--without-archives"
    with pytest.raises(BackupError, match=missing):
        await _backup(filled, archive, archive_dir)
    assert not archive.exists(), "no half backup"

    made = await _backup(filled, archive, None)
    assert made.archives == 0
    with tarfile.open(archive, "r:gz") as tar:
        assert not [n for n in tar.getnames() if n.startswith("archive/")]


def test_a_backup_of_an_events_file_from_before_retention_has_no_archive_files(
    tmp_path: Path,
) -> None:
    """An events.db without the ``archived`` table (written before retention existed)."""
    data = tmp_path / "old"
    data.mkdir()
    with sqlite3.connect(data / "events.db") as db:
        db.execute("CREATE TABLE events (incident TEXT)")
    write_sqlite_layout(data, 1)
    assert _sqlite_tombstones(data) == []
