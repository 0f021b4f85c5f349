"""``liaison backup`` carries every file the embedded server keeps, and a
restored copy serves what the original did.

A new store (a new ``*.db`` in the data directory) that the backup forgets is
silent data loss at the worst moment, the restore; this test names the file.
"""

from __future__ import annotations

import asyncio
import tarfile
from pathlib import Path

import aiohttp

from liaison_client import LiaisonClient
from server.cli import build_parser
from tests.conftest import ADMIN_PASSWORD, LiaisonServer, connect, new_incident

MARKER = "POLICE-ONLY-backed-up-archive-3c9"

#: What a data directory holds that is not data: SQLite's own side files, the
#: writer's lock, the test server's log and the first start's admin password.
NOT_DATA_SUFFIXES = ("-wal", "-shm", "-journal", ".lock", ".log")
NOT_DATA = {"initial-admin-password"}


def _data_files(data_dir: Path) -> set[str]:
    return {
        p.name
        for p in data_dir.iterdir()
        if p.is_file() and not p.name.endswith(NOT_DATA_SUFFIXES) and p.name not in NOT_DATA
    }


def _members(archive: Path) -> set[str]:
    with tarfile.open(archive, "r:gz") as tar:
        return {m.name.removeprefix("sqlite/") for m in tar if m.name.startswith("sqlite/")}


async def _board(clients: list[LiaisonClient], srv: LiaisonServer) -> object:
    dispatcher = await connect(clients, srv, "dispatch", live=False)
    return await dispatcher.request("GET", "/api/v1/capacity")


async def _node_key(clients: list[LiaisonClient], srv: LiaisonServer) -> object:
    dispatcher = await connect(clients, srv, "dispatch", live=False)
    return await dispatcher.request("GET", "/api/v1/node-key")


async def test_backup_holds_every_data_file_and_the_restore_serves_them(
    fresh_server: LiaisonServer, tmp_path: Path, clients: list[LiaisonClient]
) -> None:
    board, key = await _board(clients, fresh_server), await _node_key(clients, fresh_server)
    assert board, "the demo publishes capacity"
    archive = tmp_path / "backup.tar.gz"
    where = ["--data-dir", str(fresh_server.data_dir)]
    backup = build_parser().parse_args(["backup", str(archive), *where])
    assert await asyncio.to_thread(backup.func, backup) == 0

    missing = _data_files(fresh_server.data_dir) - _members(archive)
    assert missing == set(), f"liaison backup leaves out {sorted(missing)}"

    target = tmp_path / "restored"
    restore = build_parser().parse_args(["restore", str(archive), "--data-dir", str(target)])
    assert await asyncio.to_thread(restore.func, restore) == 0
    fresh_server.stop()
    restored = LiaisonServer(target)
    restored.start()
    try:
        assert await _board(clients, restored) == board
        assert await _node_key(clients, restored) == key
    finally:
        restored.stop()


async def _export(srv: LiaisonServer, client: LiaisonClient, incident: str) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {client.token}"}
    url = f"{srv.url}/api/v1/incidents/{incident}/export"
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as resp:
        return resp.status, await resp.text()


async def test_an_archived_incident_survives_backup_and_restore(
    fresh_server: LiaisonServer, tmp_path: Path, clients: list[LiaisonClient]
) -> None:
    """It lives only in its archive file: the backup carries the file, the restore
    puts it back, and the restored server exports the incident from it."""
    dispatch = await connect(clients, fresh_server, "dispatch")
    gone = await new_incident(dispatch, "Archived, then backed up")
    await dispatch.post(gone, f"{MARKER} named", visibility=["metro-police"])
    await dispatch.send({"type": "incident.status", "incident": gone, "status": "closed"})
    admin = await connect(clients, fresh_server, "admin", password=ADMIN_PASSWORD, live=False)
    body = {"archive_after_days": 0, "note": "test: archive at once"}
    await admin.request("PUT", "/api/v1/retention/policies/default", body)
    report = await admin.request("POST", "/api/v1/retention/run")
    [item] = [a for a in report["archived"] if a["incident"] == gone]

    archive = tmp_path / "backup.tar.gz"
    where = ["--data-dir", str(fresh_server.data_dir)]
    backup = build_parser().parse_args(["backup", str(archive), *where])
    assert await asyncio.to_thread(backup.func, backup) == 0
    with tarfile.open(archive, "r:gz") as tar:
        assert f"archive/{item['file']}" in tar.getnames()

    fresh_server.stop()
    target = tmp_path / "restored"
    restore = build_parser().parse_args(["restore", str(archive), "--data-dir", str(target)])
    assert await asyncio.to_thread(restore.func, restore) == 0
    assert (target / "archive" / item["file"]).is_file()
    restored = LiaisonServer(target)
    restored.start()
    try:
        sergeant = await connect(clients, restored, "sergeant", live=False)
        status, copy = await _export(restored, sergeant, gone)
        assert status == 200
        assert MARKER in copy
    finally:
        restored.stop()
