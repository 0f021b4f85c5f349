"""Exports over REST and the CLI, on a real server (SPEC section 22).

One server and one joint incident for the module: police-only content, a
cell a spreadsheet would run, hostile HTML, a shared position, a close.
Each reader's JSONL export must hold exactly the envelopes the REST
timeline gives that reader (the one audience function), verify offline
against the node key, and be audited; the anchor log must hold its heads.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from liaison_client import CommandFailed, LiaisonClient
from protocol import liaison_verify as lv
from server.cli import main as cli_main
from tests.conftest import ADMIN_PASSWORD, DEMO_PASSWORD, LiaisonServer, new_incident

MARKER = "POLICE-ONLY-91c4"
HOSTILE = '<script>alert("x")</script>'
FORMULA = '=HYPERLINK("http://evil.example","click")'


@dataclass
class World:
    srv: LiaisonServer
    incident: str
    #: An incident of the police alone: the NGO must not see its anchors.
    police_only: str
    created_ms: int
    police_created_ms: int
    key: str


async def _setup(srv: LiaisonServer) -> World:
    opened: list[LiaisonClient] = []
    try:
        dispatch, outreach = LiaisonClient(srv.url), LiaisonClient(srv.url)
        opened += [dispatch, outreach]
        for client, name in ((dispatch, "dispatch"), (outreach, "outreach")):
            await client.login(name, DEMO_PASSWORD)
            await client.connect()
        incident = await new_incident(dispatch, f"Bridge {HOSTILE}")
        await dispatch.post(incident, f"{MARKER} suspect named", visibility=["metro-police"])
        await dispatch.post(incident, FORMULA)
        await dispatch.post(incident, HOSTILE)
        await dispatch.send(
            {
                "type": "task.create",
                "incident": incident,
                "title": f"Go {HOSTILE}",
                "assignee": {"org": "harbour-shelter"},
            }
        )
        for i in range(3):
            await outreach.send(
                {
                    "type": "responder.position",
                    "incident": incident,
                    "lat": 51.5 + i / 1000,
                    "lon": -0.07,
                }
            )
        await dispatch.send(
            {"type": "incident.status", "incident": incident, "status": "closed", "note": HOSTILE}
        )
        ack = await dispatch.send(
            {
                "type": "incident.create",
                "title": "Police alone",
                "category": "theft",
                "priority": "normal",
                "orgs": ["metro-police"],
            }
        )
        admin = LiaisonClient(srv.url)
        opened.append(admin)
        await admin.login("admin", ADMIN_PASSWORD)
        with contextlib.suppress(CommandFailed):  # made by an earlier module on this server
            await admin.request(
                "POST",
                "/api/v1/users",
                {
                    "username": "auditor1",
                    "org": "metro-police",
                    "name": "Au Ditor",
                    "role": "auditor",
                    "password": ADMIN_PASSWORD,
                },
            )
        view = await dispatch.incident(incident)
        police_view = await dispatch.incident(ack["incident"])
        key = (await dispatch.request("GET", "/api/v1/node-key"))["public_key"]
        return World(srv, incident, ack["incident"], view["created"], police_view["created"], key)
    finally:
        for client in opened:
            await client.close()


@pytest.fixture(scope="module")
def world(server: LiaisonServer) -> World:
    """The session's demo server (its anchor sweep is every 300 s: heads anchor at exports)."""
    return asyncio.run(_setup(server))


async def token(world: World, user: str, password: str = DEMO_PASSWORD) -> str:
    client = LiaisonClient(world.srv.url)
    try:
        await client.login(user, password)
        assert client.token is not None
        return client.token
    finally:
        await client.close()


async def get(world: World, tok: str, path: str) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(world.srv.url + path, headers={"Authorization": f"Bearer {tok}"}) as resp,
    ):
        return resp.status, dict(resp.headers), await resp.read()


async def export(world: World, user: str, fmt: str) -> bytes:
    status, headers, body = await get(
        world, await token(world, user), f"/api/v1/incidents/{world.incident}/export?format={fmt}"
    )
    assert status == 200, body
    assert "attachment" in headers["Content-Disposition"]
    return body


def jsonl(body: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in body.splitlines()]


async def timeline(world: World, user: str) -> list[dict[str, Any]]:
    client = LiaisonClient(world.srv.url)
    try:
        await client.login(user, DEMO_PASSWORD)
        return await client.timeline(world.incident)
    finally:
        await client.close()


@pytest.mark.parametrize("user", ["dispatch", "outreach"])
async def test_a_readers_export_is_their_timeline_and_verifies(world: World, user: str) -> None:
    body = await export(world, user, "jsonl")
    items = jsonl(body)
    header, envelopes, trailer = items[0], items[1:-1], items[-1]
    assert header["kind"] == "header"
    assert header["reader"]["user"] == f"u_{user}"
    assert envelopes == await timeline(world, user)
    assert trailer["events"] == len(envelopes) == envelopes[-1]["seq"]
    report = lv.verify_lines(body.decode().splitlines(), world.key)
    assert report.ok, report.problems
    if user == "outreach":
        assert MARKER.encode() not in body
        assert envelopes[1]["type"] == "restricted"
        assert "salt" not in envelopes[1]
    else:
        assert MARKER in envelopes[1]["body"]["text"]


async def test_csv_html_and_pdf_keep_the_sharing_rules_and_escape(world: World) -> None:
    csv_body = await export(world, "outreach", "csv")
    assert MARKER.encode() not in csv_body
    assert b"'" + FORMULA.replace('"', '""').encode() in csv_body
    assert b"\r\n=" not in csv_body
    assert b",=" not in csv_body
    html_body = await export(world, "outreach", "html")
    assert MARKER.encode() not in html_body
    assert b"<script>" not in html_body
    assert b"&lt;script&gt;" in html_body
    assert b"<polyline" in html_body
    assert b"(restricted entry)" in html_body
    pdf_body = await export(world, "outreach", "pdf")
    assert pdf_body.startswith(b"%PDF-")


async def test_every_export_is_audited_with_format_and_count(world: World) -> None:
    await export(world, "outreach", "csv")
    status, _, body = await get(
        world, await token(world, "auditor1", ADMIN_PASSWORD), "/api/v1/audit?limit=1000"
    )
    assert status == 200
    exports = [r for r in orjson.loads(body)["records"] if r["action"] == "incident.export"]
    mine = [r for r in exports if r["actor"] == "u_outreach" and r["detail"]["format"] == "csv"]
    assert mine, exports
    assert mine[-1]["target"] == world.incident
    assert mine[-1]["outcome"] == "ok"
    assert mine[-1]["detail"]["events"] >= 9
    assert mine[-1]["detail"]["placeholders"] == 1


async def test_a_date_range_exports_every_incident_created_in_it(world: World) -> None:
    tok = await token(world, "dispatch")
    until = world.police_created_ms + 1
    path = f"/api/v1/export?format=jsonl&from={world.created_ms}&to={until}"
    status, headers, body = await get(world, tok, path)
    assert status == 200, body
    report = lv.verify_lines(body.decode().splitlines(), world.key)
    assert report.ok, report.problems
    assert [i for i, _ in report.incidents] == [world.incident, world.police_only]
    assert int(headers["X-Liaison-Export-Events"]) == sum(n for _, n in report.incidents)
    status, _, _ = await get(world, tok, path.replace("jsonl", "csv"))
    assert status == 200


@pytest.mark.parametrize(
    ("user", "path", "status", "code"),
    [
        ("dispatch", "/api/v1/incidents/{id}/export?format=xml", 400, "invalid"),
        ("dispatch", "/api/v1/incidents/inc_nope/export", 404, "not_found"),
        ("outreach", "/api/v1/incidents/{police}/export", 404, "not_found"),
        ("auditor1", "/api/v1/incidents/{id}/export", 403, "forbidden"),
        ("dispatch", "/api/v1/export?format=html", 400, "invalid"),
        ("dispatch", "/api/v1/export?from=10&to=5", 400, "invalid"),
    ],
)
async def test_refusals_are_typed(
    world: World, user: str, path: str, status: int, code: str
) -> None:
    password = ADMIN_PASSWORD if user == "auditor1" else DEMO_PASSWORD
    tok = await token(world, user, password)
    got, _, body = await get(world, tok, path.format(id=world.incident, police=world.police_only))
    assert (got, orjson.loads(body)["error"]["code"]) == (status, code)


async def test_heads_are_signed_and_anchored_and_anchors_are_per_reader(world: World) -> None:
    tok = await token(world, "outreach")
    status, _, body = await get(world, tok, f"/api/v1/incidents/{world.incident}/head")
    signed = orjson.loads(body)
    assert status == 200
    assert signed["statement"]["key"] == world.key
    assert lv.check_signature(
        world.key, signed["signature"], lv.statement_bytes(signed["statement"])
    )

    _, _, raw = await get(world, tok, "/api/v1/anchors?limit=1000")
    records = orjson.loads(raw)["records"]
    assert world.incident in {r["target"] for r in records}
    assert world.police_only not in {r["target"] for r in records}  # the NGO is not in it
    body = await export(world, "outreach", "jsonl")
    report = lv.verify_lines(body.decode().splitlines(), world.key, records)
    assert report.ok, report.problems
    police = await token(world, "dispatch")
    assert (await get(world, police, f"/api/v1/incidents/{world.police_only}/head"))[0] == 200
    _, _, raw = await get(world, tok, "/api/v1/anchors?limit=1000")
    assert world.police_only not in {r["target"] for r in orjson.loads(raw)["records"]}
    auditor = await token(world, "auditor1", ADMIN_PASSWORD)
    _, _, raw = await get(world, auditor, "/api/v1/anchors?limit=1000")
    assert world.police_only in {r["target"] for r in orjson.loads(raw)["records"]}


def liaison(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``liaison ARGS`` in this process (the same entry point; no interpreter start-up)."""
    status = cli_main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_the_cli_exports_with_progress_and_verifies_and_catches_an_edit(
    world: World,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIAISON_PASSWORD", DEMO_PASSWORD)
    monkeypatch.setenv("COLUMNS", "200")
    out, anchors = tmp_path / "e.jsonl", tmp_path / "anchors.jsonl"
    remote = ("--url", world.srv.url, "--user", "outreach")
    status, _, err = liaison(capsys, "export", world.incident, *remote, "-o", str(out))
    assert status == 0, err
    assert re.search(r"export .* (\d+)/\1 events", err), err  # the progress bar, at its end
    assert (
        liaison(capsys, "node-key", "--data-dir", str(world.srv.data_dir))[1].strip() == world.key
    )
    assert stat.S_IMODE((world.srv.data_dir / "node-key").stat().st_mode) == 0o600
    status, _, err = liaison(capsys, "anchors", *remote, "-o", str(anchors))
    assert status == 0, err
    status, text, _ = liaison(
        capsys, "verify", str(out), "--key", world.key, "--anchors", str(anchors)
    )
    assert status == 0, text
    lines = out.read_text().splitlines()
    edited = orjson.loads(lines[3])
    edited["body"]["text"] = "nothing to see"
    lines[3] = orjson.dumps(edited).decode()
    out.write_text("\n".join(lines) + "\n")
    status, text, _ = liaison(capsys, "verify", str(out), "--key", world.key)
    assert status == 1
    assert "FAIL: line 4 (seq 3): its content does not match its digest: edited" in text
