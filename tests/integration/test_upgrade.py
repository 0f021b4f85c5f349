"""An upgrade from the previous release's data, then a backup and restore of it under load.

``tests/fixtures/layout0`` holds SQLite files and a Redis RDB exactly as
0.1.0 (``main`` at 8ad5d26) stored them, and what they held
(``expected.json``; see its ``generate.py``). This version's ``liaison
serve`` starts on a copy of each, migrates it at start, and must then serve
every event as it was (same seq, digest and hash), with every chain verifying
from the storage, and keep the sessions, the agreement, the API key (it
still authenticates) and the webhook subscription.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import struct
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
import redis.asyncio as aioredis

from liaison_client import LiaisonClient
from server.cli import build_parser
from server.storage import redis_keys as keys
from server.storage.backup import BackupError, restore_redis, restore_sqlite
from server.storage.codec import unpack_event
from server.storage.integrity import check_redis, check_sqlite
from server.storage.layout import LAYOUT_KEY, LAYOUT_VERSION
from tests.conftest import ADMIN_PASSWORD, LiaisonServer, connect, free_port, new_incident
from tests.processes import end_process
from tests.waiting import until

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "layout0"
EXPECTED: dict[str, Any] = orjson.loads((FIXTURE / "expected.json").read_bytes())


#: What the RDB stores before a key with an expiry: this opcode, then the
#: absolute expiry (ms, little-endian), the value's type and the key's length.
RDB_EXPIRETIME_MS = 0xFC
SESSION_KEYS = b"liaison:auth:fam:"


def _sessions_unexpired(rdb: bytes) -> bytes:
    """The fixture's RDB with its session families expiring 14 h from now.

    An RDB keeps absolute expiry times, and the families were written with
    the refresh lifetime (14 h) when the fixture was made, so from then on
    redis-server would load them already expired: the test checks that an
    upgrade keeps sessions, as it would for a store upgraded the day it was
    written. The file's checksum is zeroed (redis-server then skips it).
    """
    out = bytearray(rdb)
    expiry = struct.pack("<Q", int((time.time() + 14 * 3600) * 1000))
    found, at = 0, out.find(SESSION_KEYS)
    while at != -1:
        name_len = out[at - 1]
        assert out[at - 11] == RDB_EXPIRETIME_MS, "an RDB layout this test does not know"
        assert out[at + len(SESSION_KEYS) : at + name_len].isascii()
        out[at - 10 : at - 2] = expiry
        found += 1
        at = out.find(SESSION_KEYS, at + 1)
    assert found >= 2, "the fixture's session families"
    out[-8:] = bytes(8)
    return bytes(out)


class RdbRedis:
    """A redis-server that loads the fixture's RDB (with AOF on it would start empty)."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True)
        (directory / "dump.rdb").write_bytes(
            _sessions_unexpired((FIXTURE / "redis").joinpath("dump.rdb").read_bytes())
        )
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [
                *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
                *("--dir", str(directory), "--appendonly", "no", "--save", ""),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                if client.dbsize() > 0:
                    break
            except redis.exceptions.RedisError:
                pass
            assert time.monotonic() < deadline, "redis-server did not load the fixture"
            time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        end_process(self.proc)


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LiaisonServer]]:
    """This version's server on a copy of each layout-0 fixture, started side by side."""
    base = tmp_path_factory.mktemp("upgrade")
    shutil.copytree(FIXTURE / "embedded", base / "embedded")
    rdb = RdbRedis(base / "redis")
    servers = {
        "embedded": LiaisonServer(base / "embedded"),
        "redis": LiaisonServer(base / "on-redis", {"LIAISON_REDIS_URL": rdb.url}),
    }
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(LiaisonServer.start, servers.values()))
        yield servers
    finally:
        for srv in servers.values():
            srv.stop()
        rdb.stop()
    for srv in servers.values():
        assert srv.errors_logged() == []


def _families(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return sorted(conn.execute("SELECT * FROM families").fetchall())


@pytest.mark.parametrize("backend", ["embedded", "redis"])
async def test_layout_0_is_migrated_and_everything_is_still_readable(
    upgraded: dict[str, LiaisonServer], backend: str, clients: list[LiaisonClient]
) -> None:
    srv, expected = upgraded[backend], EXPECTED[backend]
    # Migrated at start, and the chains verify straight from the storage.
    if backend == "embedded":
        assert (srv.data_dir / "layout-version").read_text().strip() == str(LAYOUT_VERSION)
        checked = check_sqlite(srv.data_dir)
        with sqlite3.connect(f"file:{srv.data_dir}/events.db?mode=ro", uri=True) as db:
            (table,) = db.execute("SELECT sql FROM sqlite_schema WHERE name = 'events'").fetchone()
        assert "WITHOUT ROWID" not in table.upper()  # moved into a rowid table at start
        assert _families(srv.data_dir / "sessions.db") == _families(
            FIXTURE / "embedded" / "sessions.db"
        )
    else:
        client = aioredis.Redis.from_url(srv.env["LIAISON_REDIS_URL"])
        try:
            assert await client.get(LAYOUT_KEY) == str(LAYOUT_VERSION).encode()
            checked = await check_redis(client)
            assert len([k async for k in client.scan_iter(match="liaison:auth:fam:*")]) >= 2
        finally:
            await client.aclose()
    for incident, links in expected["incidents"].items():
        assert checked.incidents[incident] == (links[-1][0], links[-1][2])
    assert checked.audit_records > 0

    dispatcher = await connect(clients, srv, "dispatch", live=False)
    for incident, links in expected["incidents"].items():
        events = await dispatcher.timeline(incident)
        assert [[e["seq"], e["digest"], e["hash"]] for e in events] == links
        assert [e["body"].get("text") for e in events] == expected["texts"][incident]

    police = await connect(clients, srv, "police-admin", password=ADMIN_PASSWORD, live=False)
    agreements = (await police.request("GET", "/api/v1/agreements"))["agreements"]
    assert set(expected["agreements"]) <= {a["id"] for a in agreements}
    webhooks = (await police.request("GET", "/api/v1/webhooks"))["webhooks"]
    assert set(expected["webhooks"]) <= {w["id"] for w in webhooks}
    keys = (await police.request("GET", "/api/v1/keys"))["keys"]
    assert expected["key"]["id"] in {k["id"] for k in keys}
    bot = LiaisonClient(srv.url, api_key=expected["key"]["secret"])
    clients.append(bot)
    assert (await bot.request("GET", "/api/v1/me"))["id"] == "u_cad-bot"


def _restored_client_ids(backend: str, target: str, incident: str) -> set[str]:
    if backend == "embedded":
        with sqlite3.connect(f"file:{target}/events.db?mode=ro", uri=True) as db:
            rows = db.execute("SELECT client_id FROM events WHERE incident = ?", (incident,))
            return {row[0] for row in rows}
    client = redis.Redis.from_url(target)
    try:
        entries: Any = client.xrange(keys.log_key(incident))
        return {unpack_event(fields[b"e"]).client_id for _, fields in entries}
    finally:
        client.close()


def _audit_actions(backend: str, where: str) -> list[str]:
    if backend == "embedded":
        with sqlite3.connect(f"file:{where}/audit.db?mode=ro", uri=True) as db:
            return [orjson.loads(r[0])["action"] for r in db.execute("SELECT record FROM audit")]
    client = redis.Redis.from_url(where)
    try:
        return [orjson.loads(r)["action"] for r in client.lrange(keys.AUDIT_LOG, 0, -1)]
    finally:
        client.close()


async def test_backups_under_live_writes_restore_every_acknowledged_event(
    upgraded: dict[str, LiaisonServer], clients: list[LiaisonClient], tmp_path: Path
) -> None:
    """``liaison backup`` while a client posts without pause; everything acknowledged
    before the backup began is in the restored copy, whose chains verify. Both
    backends at once (most of the time is the CLI's start)."""
    await asyncio.gather(
        *(_backup_under_load(upgraded[b], b, clients, tmp_path / b) for b in upgraded)
    )


async def _backup_under_load(
    srv: LiaisonServer, backend: str, clients: list[LiaisonClient], tmp_path: Path
) -> None:
    tmp_path.mkdir()
    files = tmp_path / "restored-archive"  # where the restore puts archive files
    if backend == "embedded":
        source, target = str(srv.data_dir), str(tmp_path / "restored")
        where, source_files = ["--data-dir"], srv.data_dir / "archive"
    else:
        source = srv.env["LIAISON_REDIS_URL"]
        target, where = source[: -len("/0")] + "/1", ["--redis-url"]
        source_files = tmp_path / "archive"  # the nodes' LIAISON_ARCHIVE_DIR: none archive here
    dispatcher = await connect(clients, srv, "dispatch")
    incident = await new_incident(dispatcher, f"Backed up under load ({backend})")
    acked: list[str] = []
    stop = asyncio.Event()

    async def post_without_pause() -> None:
        while not stop.is_set():
            cid = f"live-{uuid.uuid4().hex}"
            await dispatcher.send(
                {"type": "message.post", "id": cid, "incident": incident, "text": "live"}
            )
            acked.append(cid)
            # A steady stream, not a load test: the CLI's start must get the CPU too.
            await asyncio.sleep(0.005)

    writer = asyncio.create_task(post_without_pause())
    try:
        await until(lambda: len(acked) >= 10, 10, "posts before the backup")
        before_backup = list(acked)
        archive = tmp_path / "backup.tar.gz"
        # The commands as `liaison backup` / `restore` run them, in a thread of this
        # process (not the server's: a CLI start costs seconds on a loaded machine).
        backup = build_parser().parse_args(
            ["backup", str(archive), *where, source, "--archive-dir", str(source_files)]
        )
        assert await asyncio.to_thread(backup.func, backup) == 0
        # The writer went on through the backup (on a loaded machine a backup of
        # this size can end before the next acknowledgement, so none is required
        # inside it); what it acknowledged after the backup may or may not be in it.
        await until(lambda: len(acked) >= len(before_backup) + 3, 10, "posts after the backup")
    finally:
        stop.set()
        await writer

    args = build_parser().parse_args(
        ["restore", str(archive), *where, target, "--archive-dir", str(files)]
    )
    assert await asyncio.to_thread(args.func, args) == 0
    restored = {c for c in _restored_client_ids(backend, target, incident) if c.startswith("live-")}
    assert set(before_backup) <= restored
    assert restored <= set(acked)
    assert "storage.backup" in _audit_actions(backend, source)
    assert _audit_actions(backend, target)[-1] == "storage.restore"

    # A second restore onto what is now there is refused; --force replaces it.
    if backend == "embedded":
        with pytest.raises(BackupError, match="already holds Liaison data"):
            restore_sqlite(archive, Path(target), force=False, archive_dir=files)
        again = restore_sqlite(archive, Path(target), force=True, archive_dir=files)
        assert again.events >= len(before_backup)
    else:
        client = aioredis.Redis.from_url(target)
        try:
            with pytest.raises(BackupError, match="already holds Liaison data"):
                await restore_redis(archive, client, force=False, archive_dir=files)
            again = await restore_redis(archive, client, force=True, archive_dir=files)
            assert again.events >= len(before_backup)
        finally:
            await client.aclose()
