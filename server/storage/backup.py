"""Online backups of either backend into one portable file, and their restore.

The file is a tar (gzip) with ``manifest.json`` first: the format, the
backend, the storage layout (server/storage/layout.py), when, and every
incident's head (seq, hash) at the backup point. Then:

- embedded: ``sqlite/<name>.db`` for each SQLite file, each copied with
  SQLite's online backup API in **one step** (one read transaction: a
  consistent snapshot of that file while the server goes on writing; a
  step-by-step copy would restart at every commit), plus ``sqlite/secret``
  and ``sqlite/layout-version``. Everything committed to a file before its
  copy began is in it; events.db is copied first.
- Redis: ``redis/keys.msgpack``, a stream of ``[key, type, pttl, value]``
  records for every ``liaison:*`` key, readable by any Redis version (no
  RDB). The keys of one incident (one hash tag ``{id}``: log, head, idem,
  summary) are read in one MULTI/EXEC, so each incident is a consistent
  snapshot: its log ends exactly at its head. Streams are append-only, so
  every event acknowledged before the backup began is in the file.

The archive files of archived incidents go with it, as ``archive/<file>``
(server/storage/backup_archives.py), unless left out on purpose.

A backup is verified as it is made (every chain, server/storage/integrity.py)
and again after a restore, whose heads must be the manifest's. A restore
goes only into an empty target unless forced (then the target's Liaison data
is deleted first).
"""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import orjson

from server.storage import backup_archives
from server.storage import redis_keys as keys
from server.storage.backup_archives import ArchiveFileError
from server.storage.files import FILE_MODE, private_dir
from server.storage.integrity import ChainBroken, Checked, check_redis, check_sqlite
from server.storage.layout import (
    LAYOUT_FILE,
    LAYOUT_KEY,
    LAYOUT_VERSION,
    LOCK_KEY,
    SQLITE_FILES,
    LayoutTooNew,
    redis_layout,
    sqlite_layout,
)

FORMAT = "liaison-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
#: Plain files of a data directory that a backup carries besides the databases:
#: the session secret, the node's Ed25519 key (server/backends.py NODE_KEY_FILE;
#: without it the restored node signs with a new key and the anchored heads no
#: longer name it), the VAPID key (NODE_KEY_FILE's neighbour VAPID_KEY_FILE:
#: without it every browser's push subscription is void) and the layout number.
SQLITE_EXTRAS = ("secret", "node-key", "vapid-private.pem", LAYOUT_FILE)
REDIS_DUMP = "redis/keys.msgpack"
#: Redis commands per pipeline round trip during a restore.
PIPELINE = 500

Progress = Callable[[str], None]


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Summary:
    incidents: int
    events: int
    audit_records: int
    bytes: int = 0
    #: Archive files carried (a backup) or put back (a restore).
    archives: int = 0


def _manifest(
    backend: str, layout: int, checked: Checked, archives: dict[str, str] | None
) -> dict[str, Any]:
    """``archives``: file name to sha256, or None when the backup leaves them out."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "backend": backend,
        "layout": layout,
        "created_ms": int(time.time() * 1000),
        "incidents": {i: list(head) for i, head in sorted(checked.incidents.items())},
        "events": checked.events,
        "audit_records": checked.audit_records,
        "archives": archives,
    }


def _write_archive(out: Path, manifest: dict[str, Any], members: list[tuple[str, Path]]) -> int:
    """Write the tar next to ``out`` and rename it into place (never a half file)."""
    temp = out.with_name(out.name + ".partial")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
        body = orjson.dumps(manifest, option=orjson.OPT_INDENT_2)
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime, info.mode = len(body), int(time.time()), FILE_MODE
        tar.addfile(info, io.BytesIO(body))
        for name, path in members:
            tar.add(path, arcname=name, recursive=False)
    os.replace(temp, out)
    return out.stat().st_size


def read_manifest(archive: Path) -> dict[str, Any]:
    with tarfile.open(archive, "r:gz") as tar:
        member = tar.extractfile(MANIFEST)
        if member is None:
            raise BackupError(f"{archive} is not a Liaison backup (no {MANIFEST})")
        manifest: dict[str, Any] = orjson.loads(member.read())
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(f"{archive} is not a Liaison backup of format {FORMAT_VERSION}")
    if int(manifest["layout"]) > LAYOUT_VERSION:
        raise LayoutTooNew(str(archive), int(manifest["layout"]))
    return manifest


def _say(progress: Progress | None, line: str) -> None:
    if progress is not None:
        progress(line)


# ------------------------------------------------------------------ embedded


def backup_sqlite(
    data_dir: Path, out: Path, progress: Progress | None = None, *, archive_dir: Path | None
) -> Summary:
    """Snapshot every SQLite file of ``data_dir`` (a server may be running) into ``out``,
    with the archive files in ``archive_dir`` (None: without them)."""
    if sqlite_layout(data_dir) is None:
        raise BackupError(f"{data_dir} holds no Liaison data")
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".liaison-backup-") as tmp:
        copies = Path(tmp)
        members: list[tuple[str, Path]] = []
        for name in SQLITE_FILES:
            source = data_dir / name
            if not source.exists():
                continue
            _say(progress, f"copying {name} ({source.stat().st_size} bytes)")
            target = copies / name
            src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)  # pages=-1: one step, one read transaction
            finally:
                dst.close()
                src.close()
            members.append((f"sqlite/{name}", target))
        for name in SQLITE_EXTRAS:
            if (data_dir / name).exists():
                shutil.copyfile(data_dir / name, copies / name)
                members.append((f"sqlite/{name}", copies / name))
        _say(progress, "verifying the copies")
        checked = _verified(check_sqlite, copies, progress)
        layout = sqlite_layout(copies) or 0
        archives = _carried(_sqlite_tombstones(copies), archive_dir, members, progress)
        size = _write_archive(out, _manifest("sqlite", layout, checked, archives), members)
    return _summary(checked, size, archives)


def _summary(checked: Checked, size: int, archives: dict[str, str] | None) -> Summary:
    carried = len(archives or {})
    return Summary(len(checked.incidents), checked.events, checked.audit_records, size, carried)


def _sqlite_tombstones(copies: Path) -> list[dict[str, Any]]:
    events = copies / "events.db"
    if not events.exists():
        return []
    db = sqlite3.connect(f"file:{events}?mode=ro", uri=True)
    try:
        exists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'archived'"
        if db.execute(exists).fetchone() is None:  # a file from before retention
            return []
        rows = db.execute("SELECT tombstone FROM archived").fetchall()
    finally:
        db.close()
    return [dict(orjson.loads(row[0])) for row in rows]


def _carried(
    tombstones: list[dict[str, Any]],
    archive_dir: Path | None,
    members: list[tuple[str, Path]],
    progress: Progress | None,
) -> dict[str, str] | None:
    """The archive files of the snapshot's tombstones, appended to ``members``."""
    if archive_dir is None:
        _say(progress, "leaving the archive files out (back the archive directory up on its own)")
        return None
    _say(progress, f"checking the archive files in {archive_dir}")
    try:
        listed, files = backup_archives.files_to_carry(tombstones, archive_dir)
    except ArchiveFileError as exc:
        raise BackupError(
            f"{exc}: put it back, or pass --without-archives and back the archive"
            " directory up on its own"
        ) from exc
    members.extend(files)
    return listed


def _verified(check: Callable[..., Checked], *args: Any) -> Checked:
    try:
        return check(*args)
    except ChainBroken as exc:
        raise BackupError(f"the data does not verify: {exc}") from exc


def sqlite_is_empty(data_dir: Path) -> bool:
    return not any((data_dir / n).exists() for n in (*SQLITE_FILES, *SQLITE_EXTRAS))


def restore_sqlite(
    archive: Path,
    data_dir: Path,
    *,
    force: bool,
    progress: Progress | None = None,
    archive_dir: Path,
) -> Summary:
    """Unpack ``archive`` into ``data_dir`` (empty, or ``force``) and its archive files
    into ``archive_dir``; the caller holds the data directory's lock."""
    manifest = read_manifest(archive)
    if manifest["backend"] != "sqlite":
        raise BackupError(f"{archive} is a backup of the {manifest['backend']} backend")
    if not sqlite_is_empty(data_dir):
        if not force:
            raise BackupError(
                f"{data_dir} already holds Liaison data: restore into an empty data directory,"
                " or pass --force to replace it"
            )
        for name in (*SQLITE_FILES, *SQLITE_EXTRAS):
            for suffix in ("", "-wal", "-shm", "-journal"):
                (data_dir / (name + suffix)).unlink(missing_ok=True)
    private_dir(data_dir)
    allowed = {f"sqlite/{n}" for n in (*SQLITE_FILES, *SQLITE_EXTRAS)}
    files = _archive_restorer(manifest, archive_dir, force, progress)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.name == MANIFEST:
                continue
            if member.name.startswith(backup_archives.PREFIX):
                _take_archive(files, tar, member, archive)
                continue
            if member.name not in allowed or not member.isfile():
                raise BackupError(f"{archive}: unexpected member {member.name!r}")
            source = tar.extractfile(member)
            assert source is not None
            _say(progress, f"restoring {member.name} ({member.size} bytes)")
            fd = os.open(
                data_dir / Path(member.name).name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE
            )
            with os.fdopen(fd, "wb") as file:
                shutil.copyfileobj(source, file)
                file.flush()
                os.fsync(file.fileno())
    _complete(files, archive)
    _say(progress, "verifying the restored data")
    checked = _verified(check_sqlite, data_dir, progress)
    _same_heads(manifest, checked)
    return Summary(
        len(checked.incidents), checked.events, checked.audit_records, archives=files.restored
    )


def _archive_restorer(
    manifest: dict[str, Any], archive_dir: Path, force: bool, progress: Progress | None
) -> backup_archives.Restorer:
    if manifest.get("archives") is None:
        _say(progress, "this backup holds no archive files (made --without-archives)")
    return backup_archives.Restorer(manifest, archive_dir, force, lambda line: _say(progress, line))


def _take_archive(
    files: backup_archives.Restorer, tar: tarfile.TarFile, member: tarfile.TarInfo, archive: Path
) -> None:
    source = tar.extractfile(member)
    if source is None:
        raise BackupError(f"{archive}: unexpected member {member.name!r}")
    try:
        files.take(member, source)
    except ArchiveFileError as exc:
        raise BackupError(f"{archive}: {exc}") from exc


def _complete(files: backup_archives.Restorer, archive: Path) -> None:
    try:
        files.check_complete()
    except ArchiveFileError as exc:
        raise BackupError(f"{archive}: {exc}") from exc


def _same_heads(manifest: dict[str, Any], checked: Checked) -> None:
    expected = {i: tuple(head) for i, head in manifest["incidents"].items()}
    if expected != checked.incidents:
        missing = sorted(set(expected) ^ set(checked.incidents))[:5]
        raise BackupError(f"the restored incidents differ from the backup's: {missing}")


# --------------------------------------------------------------------- Redis


def _tag(key: bytes) -> bytes | None:
    """The hash tag ``{...}`` of a key: the keys that one MULTI reads together."""
    start = key.find(b"{")
    end = key.find(b"}", start + 1)
    return key[start : end + 1] if start >= 0 and end > start else None


_READ = {
    b"string": lambda pipe, k: pipe.get(k),
    b"hash": lambda pipe, k: pipe.hgetall(k),
    b"list": lambda pipe, k: pipe.lrange(k, 0, -1),
    b"set": lambda pipe, k: pipe.smembers(k),
    b"zset": lambda pipe, k: pipe.zrange(k, 0, -1, withscores=True),
    b"stream": lambda pipe, k: pipe.xrange(k),
}


def _packable(kind: bytes, value: Any) -> Any:
    if kind == b"hash":
        return [[f, v] for f, v in value.items()]
    if kind == b"set":
        return sorted(value)
    if kind == b"zset":
        return [[m, s] for m, s in value]
    if kind == b"stream":
        return [
            [entry_id, [x for pair in fields.items() for x in pair]] for entry_id, fields in value
        ]
    return value


async def _liaison_keys(client: Any) -> list[bytes]:
    found = [k async for k in client.scan_iter(match=keys.PREFIX + "*", count=1000)]
    return sorted(k for k in found if k != LOCK_KEY.encode())


async def backup_redis(
    client: Any, out: Path, progress: Progress | None = None, *, archive_dir: Path | None
) -> Summary:
    """Dump every Liaison key of the Redis (nodes may be running) into ``out``, with
    the archive files in ``archive_dir`` (None: without them)."""
    layout = await redis_layout(client)
    if layout is None:
        raise BackupError("this Redis holds no Liaison data")
    names = await _liaison_keys(client)
    groups: dict[bytes | None, list[bytes]] = {}
    for name in names:
        groups.setdefault(_tag(name), []).append(name)
    _say(progress, f"{len(names)} keys, {len(groups) - (None in groups)} hash-tag groups")
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".liaison-backup-") as tmp:
        dump = Path(tmp) / "keys.msgpack"
        written = 0
        with dump.open("wb") as file:
            # Untagged (global) keys first: an incident in the index is then in the file.
            order = sorted(groups, key=lambda t: (t is not None, t or b""))
            for tag in order:
                members = groups[tag]
                batches = [[m] for m in members] if tag is None else [members]
                for batch in batches:
                    for record in await _read_group(client, batch):
                        file.write(msgpack.packb(record, use_bin_type=True))
                        written += 1
                        if written % 1000 == 0:
                            _say(progress, f"dumped {written} of {len(names)} keys")
        _say(progress, "verifying the dump")
        checked = await _check_dump(dump, progress)
        carried: list[tuple[str, Path]] = [(REDIS_DUMP, dump)]
        archives = _carried(_dump_tombstones(dump), archive_dir, carried, progress)
        size = _write_archive(out, _manifest("redis", layout, checked, archives), carried)
    return _summary(checked, size, archives)


def _dump_tombstones(dump: Path) -> list[dict[str, Any]]:
    """The tombstones (``keys.tombstone_key``: JSON strings) of a dump."""
    return [
        dict(orjson.loads(value))
        for name, kind, _, value in _records(dump)
        if kind == b"string"
        and name.startswith(keys.PREFIX.encode() + b"{")
        and name.endswith(b"}:archived")
    ]


async def _read_group(client: Any, names: list[bytes]) -> list[list[Any]]:
    """``[key, type, pttl, value]`` of each key, read in one MULTI/EXEC."""
    async with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.type(name)
        kinds = await pipe.execute()
    present = [(n, k) for n, k in zip(names, kinds, strict=True) if k in _READ]
    async with client.pipeline(transaction=True) as pipe:
        for name, kind in present:
            _READ[kind](pipe, name)
            pipe.pttl(name)
        replies = await pipe.execute()
    records = []
    for index, (name, kind) in enumerate(present):
        value, pttl = replies[2 * index], replies[2 * index + 1]
        if value is None or pttl == -2:  # gone between TYPE and MULTI
            continue
        records.append([name, kind.decode(), pttl, _packable(kind, value)])
    return records


def _records(path: Path) -> Any:
    with path.open("rb") as file:
        yield from msgpack.Unpacker(file, raw=True, use_list=True, max_buffer_size=1 << 30)


async def _check_dump(dump: Path, progress: Progress | None) -> Checked:
    """Verify the dump as it will be restored: load it into a throwaway view."""
    view = _DumpView(dump)
    return await _verified_async(view, progress)


async def _verified_async(client: Any, progress: Progress | None) -> Checked:
    try:
        return await check_redis(client, progress)
    except ChainBroken as exc:
        raise BackupError(f"the data does not verify: {exc}") from exc


class _DumpView:
    """The few reads check_redis makes, answered from a dump file (no Redis needed)."""

    def __init__(self, dump: Path) -> None:
        self.values: dict[bytes, Any] = {}
        for name, _, _, value in _records(dump):
            self.values[name] = value

    async def zrange(self, name: str, *_: Any) -> list[bytes]:
        return [m for m, _ in self.values.get(name.encode(), [])]

    async def xrange(self, name: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
        return [
            (entry_id, dict(zip(flat[::2], flat[1::2], strict=True)))
            for entry_id, flat in self.values.get(name.encode(), [])
        ]

    async def hgetall(self, name: str) -> dict[bytes, bytes]:
        return dict((f, v) for f, v in self.values.get(name.encode(), []))

    async def lrange(self, name: str, *_: Any) -> list[bytes]:
        return list(self.values.get(name.encode(), []))


async def redis_is_empty(client: Any) -> bool:
    if await client.exists(LAYOUT_KEY):
        return False
    async for _ in client.scan_iter(match=keys.PREFIX + "*", count=1000):
        return False
    return True


async def restore_redis(
    archive: Path,
    client: Any,
    *,
    force: bool,
    progress: Progress | None = None,
    archive_dir: Path,
) -> Summary:
    """Load ``archive`` into the Redis (no Liaison keys, or ``force``), and its archive
    files into ``archive_dir``; no node may run."""
    manifest = read_manifest(archive)
    if manifest["backend"] != "redis":
        raise BackupError(f"{archive} is a backup of the {manifest['backend']} backend")
    if not await redis_is_empty(client):
        if not force:
            raise BackupError(
                "this Redis already holds Liaison data: restore into an empty Redis (or database"
                " number), or pass --force to replace it"
            )
        old = await _liaison_keys(client)
        _say(progress, f"deleting {len(old)} existing Liaison keys")
        for start in range(0, len(old), PIPELINE):
            await client.unlink(*old[start : start + PIPELINE])
    files = _archive_restorer(manifest, archive_dir, force, progress)
    with tempfile.TemporaryDirectory(prefix=".liaison-restore-") as tmp:
        dump = Path(tmp) / "keys.msgpack"
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                if member.name.startswith(backup_archives.PREFIX):
                    _take_archive(files, tar, member, archive)
                elif member.name == REDIS_DUMP:
                    source = tar.extractfile(member)
                    assert source is not None
                    with dump.open("wb") as file:
                        shutil.copyfileobj(source, file)
                elif member.name != MANIFEST:
                    raise BackupError(f"{archive}: unexpected member {member.name!r}")
        if not dump.exists():
            raise BackupError(f"{archive} holds no {REDIS_DUMP}")
        _complete(files, archive)
        restored = 0
        pipe = client.pipeline(transaction=False)
        for name, kind, pttl, value in _records(dump):
            _write(pipe, name, kind.decode(), value)
            if pttl > 0:
                pipe.pexpire(name, pttl)
            restored += 1
            if len(pipe) >= PIPELINE:
                await pipe.execute()
            if restored % 1000 == 0:
                _say(progress, f"restored {restored} keys")
        await pipe.execute()
    _say(progress, f"restored {restored} keys; verifying")
    checked = await _verified_async(client, progress)
    _same_heads(manifest, checked)
    return Summary(
        len(checked.incidents), checked.events, checked.audit_records, archives=files.restored
    )


def _write(pipe: Any, name: bytes, kind: str, value: Any) -> None:
    if kind == "string":
        pipe.set(name, value)
    elif kind == "hash":
        pipe.hset(name, mapping=dict((f, v) for f, v in value))
    elif kind == "list":
        pipe.rpush(name, *value)
    elif kind == "set":
        pipe.sadd(name, *value)
    elif kind == "zset":
        pipe.zadd(name, {m: s for m, s in value})
    elif kind == "stream":
        for entry_id, flat in value:
            pipe.xadd(name, dict(zip(flat[::2], flat[1::2], strict=True)), id=entry_id)
    else:
        raise BackupError(f"a key of unknown type {kind!r} in the dump")
