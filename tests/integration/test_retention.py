"""Retention on a real server (SPEC section 25): archive, typed reads, export, hold, purge.

One server of the module's own (the policies here archive every closed
incident at once, which the shared server's other tests would not expect),
with the scheduled job off: runs are asked for over REST and the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from liaison_client import CommandFailed, LiaisonClient
from protocol import liaison_verify
from server.cli import main as cli_main
from tests.conftest import ADMIN_PASSWORD, DEMO_PASSWORD, LiaisonServer, new_incident

MARKER = "POLICE-ONLY-retention-7d1"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiaisonServer]:
    server = LiaisonServer(
        tmp_path_factory.mktemp("retention"), env={"LIAISON_RETENTION_POLL_S": "0"}
    )
    server.start()
    yield server
    server.stop()
    assert server.errors_logged() == []


async def _login(srv: LiaisonServer, user: str, password: str = DEMO_PASSWORD) -> LiaisonClient:
    client = LiaisonClient(srv.url)
    await client.login(user, password)
    return client


async def _refused(client: LiaisonClient, method: str, path: str, body: Any = None) -> str:
    with pytest.raises(CommandFailed) as info:
        await client.request(method, path, body)
    return info.value.code


async def _export(srv: LiaisonServer, client: LiaisonClient, incident: str) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {client.token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{srv.url}/api/v1/incidents/{incident}/export", headers=headers) as resp,
    ):
        return resp.status, await resp.text()


def _cli(srv: LiaisonServer, *argv: str) -> int:
    return cli_main(["retention", *argv, "--url", srv.url, "--user", "admin"])


async def test_archive_read_export_hold_purge(
    srv: LiaisonServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIAISON_PASSWORD", ADMIN_PASSWORD)
    opened: list[LiaisonClient] = []
    try:
        dispatch = await _login(srv, "dispatch")
        await dispatch.connect()
        admin = await _login(srv, "admin", ADMIN_PASSWORD)
        sergeant, shelter_super, outreach = [
            await _login(srv, name) for name in ("sergeant", "shelter-super", "outreach")
        ]
        outreach_live = outreach
        await outreach_live.connect()
        opened += [dispatch, admin, sergeant, shelter_super, outreach]

        gone, held, still_open = [await new_incident(dispatch, t) for t in ("Gone", "Held", "Open")]
        await dispatch.post(gone, f"{MARKER} named", visibility=["metro-police"])
        await dispatch.post(gone, "shared words")
        for incident in (gone, held):
            await dispatch.send(
                {"type": "incident.status", "incident": incident, "status": "closed"}
            )
        key = (await dispatch.request("GET", "/api/v1/node-key"))["public_key"]

        # Only the deployment's administrators manage retention.
        assert await _refused(sergeant, "POST", "/api/v1/retention/run") == "forbidden"
        body = {"archive_after_days": 0, "note": "test: archive at once"}
        await admin.request("PUT", "/api/v1/retention/policies/default", body)
        assert await _refused(admin, "PUT", f"/api/v1/retention/holds/{held}", {}) == "invalid"
        await admin.request("PUT", f"/api/v1/retention/holds/{held}", {"reason": "litigation 42"})

        # A dry run says what it would do and changes nothing.
        capsys.readouterr()
        assert await asyncio.to_thread(_cli, srv, "run", "--dry-run") == 0
        out = capsys.readouterr().out
        assert f"would archive {gone}" in out
        assert f"skip archive of {held}: legal_hold" in out
        assert still_open not in out
        assert (await dispatch.incident(gone))["id"] == gone

        report = await admin.request("POST", "/api/v1/retention/run")
        archived = {item["incident"]: item for item in report["archived"]}
        assert gone in archived
        assert held not in archived
        assert still_open not in archived
        assert {"incident": held, "reason": "legal_hold"}.items() <= report["skipped"][0].items()

        # The archive verifies offline, with the standalone verifier and the pinned key.
        archive = srv.data_dir / "archive" / archived[gone]["file"]
        assert liaison_verify.main([str(archive), "--key", key]) == 0
        assert MARKER in archive.read_text(), "the archive holds the whole log"

        # Reads answer `archived` to participants, `not_found` to others.
        for client in (dispatch, outreach):
            assert await _refused(client, "GET", f"/api/v1/incidents/{gone}") == "archived"
        code = await _refused(dispatch, "GET", f"/api/v1/incidents/{gone}/timeline")
        assert code == "archived"
        follow = await dispatch.follow(gone)
        assert follow["status"] == "archived"
        assert follow["detail"]["incident"] == gone
        with pytest.raises(CommandFailed) as info:
            await dispatch.post(gone, "late")
        assert info.value.code == "archived"
        listed = [i["id"] for i in await dispatch.incidents()]
        assert gone not in listed
        assert held in listed
        assert still_open in listed

        # Supervisors export it from the archive, each as they may see it; audited.
        status, police_copy = await _export(srv, sergeant, gone)
        assert status == 200
        assert MARKER in police_copy
        status, ngo_copy = await _export(srv, shelter_super, gone)
        assert status == 200
        assert MARKER not in ngo_copy
        for copy, name in ((police_copy, "police.jsonl"), (ngo_copy, "ngo.jsonl")):
            (tmp_path / name).write_text(copy)
            assert liaison_verify.main([str(tmp_path / name), "--key", key]) == 0
        status, _ = await _export(srv, dispatch, gone)
        assert status == 403

        # A purge due is held back by a hold, then leaves its record when it goes.
        body = {"archive_after_days": 0, "purge_after_days": 0}
        await admin.request("PUT", "/api/v1/retention/policies/default", body)
        await admin.request("PUT", f"/api/v1/retention/holds/{gone}", {"reason": "appeal"})
        report = await admin.request("POST", "/api/v1/retention/run")
        assert report["purged"] == []
        assert archive.exists()
        assert {"incident": gone, "action": "purge", "reason": "legal_hold"} in [
            {k: s[k] for k in ("incident", "action", "reason")} for s in report["skipped"]
        ]
        await admin.request("DELETE", f"/api/v1/retention/holds/{gone}")
        report = await admin.request("POST", "/api/v1/retention/run")
        [purge] = report["purged"]
        assert purge["incident"] == gone
        assert purge["sha256_removed"] == purge["sha256"]
        assert not archive.exists()
        purged = await admin.request("GET", "/api/v1/retention/archived?state=purged")
        assert [t["incident"] for t in purged["archived"]] == [gone]
        assert await _refused(dispatch, "GET", f"/api/v1/incidents/{gone}") == "archived"

        # The audit log keeps each step, the purge record with what was removed.
        await _auditor(admin)
        auditor = await _login(srv, "auditor-r", ADMIN_PASSWORD)
        opened.append(auditor)
        records = (await auditor.request("GET", "/api/v1/audit?limit=1000"))["records"]
        actions = [(r["action"], r["target"]) for r in records]
        for action in ("retention.archive", "retention.purge", "retention.hold.set"):
            assert (action, gone) in actions
        assert ("retention.policy.set", "default") in actions
        [record] = [r for r in records if r["action"] == "retention.purge"]
        assert record["detail"]["last_hash"] == purge["last_hash"]
        assert record["detail"]["seq"] == purge["seq"] == 4
    finally:
        for client in opened:
            await client.close()


async def _auditor(admin: LiaisonClient) -> None:
    with contextlib.suppress(CommandFailed):
        await admin.request(
            "POST",
            "/api/v1/users",
            {
                "username": "auditor-r",
                "org": "metro-police",
                "name": "Audrey Auditor",
                "role": "auditor",
                "password": ADMIN_PASSWORD,
            },
        )
