"""``liaison migrate``, ``liaison backup`` and ``liaison restore``: the storage as a whole.

- ``migrate`` brings the storage layout up to this version (``liaison serve``
  does it at start too); ``--check`` reports without changing anything.
- ``backup FILE`` writes a consistent online backup while servers run.
- ``restore FILE`` loads one into an empty data directory or Redis
  (``--force`` replaces what is there), verifies every chain, and leaves the
  data at the backup's layout for the next start to migrate.

Both backends: the data directory (``--data-dir``), or a Redis
(``--redis-url`` / ``LIAISON_REDIS_URL``). Backup and restore are audited
(actor ``cli:<os user>``): the backup in the source's audit log, the restore
in the restored one's. Progress goes to stderr, the result to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from server.backends import node_id
from server.errors import StorageUnavailable
from server.services.accounts import cli_actor
from server.settings import Settings
from server.storage import redis_connect
from server.storage.audit import AuditEntry, AuditLog, SqliteAuditLog
from server.storage.backup import (
    BackupError,
    Summary,
    backup_redis,
    backup_sqlite,
    restore_redis,
    restore_sqlite,
)
from server.storage.layout import (
    LAYOUT_VERSION,
    LayoutLocked,
    LayoutTooNew,
    migrate_redis,
    migrate_sqlite,
    pending,
    redis_layout,
    sqlite_layout,
)
from server.storage.redis_audit import RedisAuditLog
from server.storage.sqlite import _lock_exclusively

#: The lock file the embedded server holds while it runs (server/storage/sqlite.py).
LOCK_FILE = "events.lock"
AUDIT_DB = "audit.db"


def _progress(line: str) -> None:
    print(f"liaison: {line}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def _exclusive(data_dir: Path) -> Iterator[IO[bytes]]:
    """The data directory for this process alone: no server may run on it meanwhile."""
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    handle = _lock_exclusively(data_dir / LOCK_FILE)
    try:
        yield handle
    finally:
        handle.close()


def prepare_layout(settings: Settings) -> int | None:
    """Before serving: migrate the storage; an exit status if the server must not start."""
    try:
        if settings.redis_url:
            owner = node_id(settings)
            found, now = asyncio.run(
                _on_redis(settings, lambda client: migrate_redis(client, owner, _progress))
            )
        else:
            with _exclusive(settings.data_dir):
                found, now = migrate_sqlite(settings.data_dir, _progress)
    except (LayoutTooNew, LayoutLocked, StorageUnavailable, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if found != now:
        _progress(f"storage layout migrated from {found} to {now}")
    return None


async def _on_redis(settings: Settings, action: Callable[[Any], Any]) -> Any:
    client = redis_connect.link(settings.redis_url, socket_timeout=30)
    try:
        return await action(client)
    finally:
        await client.aclose()


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    if args.check:
        if settings.redis_url:
            found = asyncio.run(_on_redis(settings, redis_layout))
        else:
            found = sqlite_layout(settings.data_dir)
        if found is None:
            print(f"no Liaison data yet; it will be created at layout {LAYOUT_VERSION}")
            return 0
        todo = pending(found)
        print(f"storage layout {found}; this Liaison's is {LAYOUT_VERSION}")
        for migration in todo:
            print(f"pending: layout {migration.version}: {migration.summary}")
        return 3 if found > LAYOUT_VERSION else (1 if todo else 0)
    refused = prepare_layout(settings)
    if refused is not None:
        return refused
    print(f"storage layout {LAYOUT_VERSION}")
    return 0


async def _audit(log: AuditLog, action: str, target: str, summary: Summary) -> None:
    await log.open()
    try:
        detail = {
            "incidents": summary.incidents,
            "events": summary.events,
            "audit_records": summary.audit_records,
        }
        await log.append(AuditEntry(cli_actor(), action, target, detail=detail), _now_ms())
    finally:
        await log.close()


def _now_ms() -> int:
    return int(time.time() * 1000)


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    out: Path = args.file.resolve()
    if out.exists() and not args.force:
        print(f"error: {out} exists (pass --force to replace it)", file=sys.stderr)
        return 2
    started = time.monotonic()
    archive_dir = None if args.without_archives else settings.archive_path
    try:
        if settings.redis_url:

            async def run(client: Any) -> Summary:
                summary = await backup_redis(client, out, _progress, archive_dir=archive_dir)
                await _audit(RedisAuditLog(client), "storage.backup", str(out), summary)
                return summary

            summary = asyncio.run(_on_redis(settings, run))
        else:
            summary = backup_sqlite(settings.data_dir, out, _progress, archive_dir=archive_dir)
            log = SqliteAuditLog(settings.data_dir / AUDIT_DB)
            asyncio.run(_audit(log, "storage.backup", str(out), summary))
    except (BackupError, LayoutTooNew, StorageUnavailable, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    files = "left out" if archive_dir is None else f"{summary.archives} (sha256 checked)"
    print(
        f"backup {out}: {summary.incidents} incidents, {summary.events} events,"
        f" {summary.audit_records} audit records, archive files {files}, {summary.bytes} bytes,"
        f" in {time.monotonic() - started:.1f} s (every chain verified)"
    )
    return 0


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    archive: Path = args.file.resolve()
    started = time.monotonic()
    try:
        if settings.redis_url:

            async def run(client: Any) -> Summary:
                summary = await restore_redis(
                    archive,
                    client,
                    force=args.force,
                    progress=_progress,
                    archive_dir=settings.archive_path,
                )
                await _audit(RedisAuditLog(client), "storage.restore", str(archive), summary)
                return summary

            summary = asyncio.run(_on_redis(settings, run))
        else:
            with _exclusive(settings.data_dir):
                summary = restore_sqlite(
                    archive,
                    settings.data_dir,
                    force=args.force,
                    progress=_progress,
                    archive_dir=settings.archive_path,
                )
                log = SqliteAuditLog(settings.data_dir / AUDIT_DB)
                asyncio.run(_audit(log, "storage.restore", str(archive), summary))
    except (BackupError, LayoutTooNew, StorageUnavailable, OSError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"restored {archive}: {summary.incidents} incidents, {summary.events} events,"
        f" {summary.audit_records} audit records, {summary.archives} archive files,"
        f" in {time.monotonic() - started:.1f} s"
        " (every chain verified)"
    )
    return 0


def add_storage_parsers(sub: Any, settings: Callable[[argparse.Namespace], Settings]) -> None:
    """``migrate``, ``backup`` and ``restore`` (one line in server/cli.py registers them)."""

    def where(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", type=Path, help="data directory (LIAISON_DATA_DIR)")
        p.add_argument("--redis-url", help="the Redis instead (LIAISON_REDIS_URL)")

    def archive_dir_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--archive-dir", help="archive files of archived incidents (LIAISON_ARCHIVE_DIR)"
        )

    def bind(command: Callable[[argparse.Namespace, Settings], int]) -> Callable[..., int]:
        return lambda args: command(args, settings(args))

    migrate = sub.add_parser("migrate", help="bring the storage layout up to this version")
    migrate.add_argument(
        "--check",
        action="store_true",
        help="only report (exit 1: migrations pending, 3: data newer than this Liaison)",
    )
    where(migrate)
    migrate.set_defaults(func=bind(cmd_migrate))
    backup = sub.add_parser("backup", help="write a consistent online backup to a file")
    backup.add_argument("file", type=Path, help="the backup file to write (a .tar.gz)")
    backup.add_argument("--force", action="store_true", help="replace an existing file")
    backup.add_argument(
        "--without-archives",
        action="store_true",
        help="leave the archive files of archived incidents out (back LIAISON_ARCHIVE_DIR"
        " up on its own)",
    )
    where(backup)
    archive_dir_flag(backup)
    backup.set_defaults(func=bind(cmd_backup))
    restore = sub.add_parser("restore", help="restore a backup into an empty data dir or Redis")
    restore.add_argument("file", type=Path, help="a file written by `liaison backup`")
    restore.add_argument(
        "--force", action="store_true", help="replace the Liaison data already there"
    )
    where(restore)
    archive_dir_flag(restore)
    restore.set_defaults(func=bind(cmd_restore))
