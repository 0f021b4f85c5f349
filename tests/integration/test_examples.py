"""The bots of deploy/examples, run as an integrator would run them (issue 11).

deploy/examples/cad_bot.py (Python, REST) and deploy/examples/js_bot.cjs (the
official socket.io-client) run as real subprocesses against real servers (the CAD bot's own),
with an API key of the demo bot ``cad-bot``. The test reads what they print
and what the server stored. The webhook receiver is tested in test_webhooks.py.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from liaison_client import LiaisonClient
from tests.conftest import ROOT, LiaisonServer, connect, new_key, police_admin

EXAMPLES = ROOT / "deploy" / "examples"
NODE_MODULES = ROOT / "client_web" / "node_modules"


async def run(command: list[str], env: dict[str, str], timeout: float = 20) -> list[dict[str, Any]]:
    """Run an example to its end; its JSON lines, asserting it exited 0."""
    proc = await asyncio.create_subprocess_exec(
        *command,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, err.decode()
    return [orjson.loads(line) for line in out.splitlines()]


def one(lines: list[dict[str, Any]], field: str) -> Any:
    found = [line[field] for line in lines if field in line]
    assert len(found) == 1, (field, lines)
    return found[0]


async def bot_env(
    server: LiaisonServer, clients: list[LiaisonClient], **scope: Any
) -> dict[str, str]:
    """What an integrator sets: the server and a new key of cad-bot, scoped as the
    example's docstring says."""
    _, key = await new_key(await police_admin(clients, server), **scope)
    return {"LIAISON_URL": server.url, "LIAISON_KEY": key}


def posts_of(timeline: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    return [e for e in timeline if e["type"] == "message.posted" and e["body"]["text"] == text]


async def test_the_cad_bot_opens_once_posts_once_and_resumes_the_feed(
    fresh_server: LiaisonServer, clients: list[LiaisonClient], tmp_path: Path
) -> None:
    # A server of its own: the bot counts feed entries across every incident
    # it may see, and on the shared one another module's urgent message can
    # escalate (a deadline) while the bot reads.
    server = fresh_server
    env = await bot_env(
        server, clients, coordinator=True, commands=["incident.create", "message.post"]
    )
    ref = f"CAD-{uuid.uuid4().hex[:8]}"
    state = tmp_path / "cursor"
    bot = [sys.executable, str(EXAMPLES / "cad_bot.py"), ref, "Unit 12 on scene"]
    bot += ["--state", str(state), "--timeout", "8"]

    first = await run([*bot, "--entries", "2"], env)
    incident = one(first, "incident")
    assert one(first, "opened") is True
    posted = one(first, "posted")
    assert (posted["ok"], posted["duplicate"], posted["incident"]) == (True, False, incident)
    entries = [line["entry"] for line in first if "entry" in line]
    assert [(e["kind"], e["incident"], e["seq"]) for e in entries] == [
        ("event", incident, 1),
        ("event", incident, posted["seq"]),
    ]
    assert entries[0]["event"]["body"]["external_ref"] == ref
    assert one(first, "handled") == 2

    # Someone answers; the bot runs again with the same CAD number and text.
    dispatcher = await connect(clients, server, "dispatch", live=False)
    reply = await dispatcher.request(
        "POST",
        "/api/v1/commands",
        {"type": "message.post", "id": uuid.uuid4().hex, "incident": incident, "text": "Copy"},
    )
    again = await run([*bot, "--entries", "1"], env)
    assert one(again, "incident") == incident
    assert one(again, "opened") is False, "found by its CAD number, not opened twice"
    repost = one(again, "posted")
    assert (repost["duplicate"], repost["seq"]) == (True, posted["seq"])
    resumed = [line["entry"] for line in again if "entry" in line]
    assert [(e["incident"], e["seq"]) for e in resumed] == [(incident, reply["seq"])]
    assert resumed[0]["event"]["body"]["text"] == "Copy"
    assert state.read_text() == one(again, "cursor") != entries[-1]["cursor"]

    # What the server stored: one incident under the CAD number, one message.
    assert [i["id"] for i in await dispatcher.by_ref(ref)] == [incident]
    stored = posts_of(await dispatcher.timeline(incident), "Unit 12 on scene")
    assert [(e["seq"], e["actor"]["user"]) for e in stored] == [(posted["seq"], "u_cad-bot")]


async def test_the_js_bot_follows_posts_once_and_prints_what_it_receives(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    if shutil.which("node") is None or not (NODE_MODULES / "socket.io-client").is_dir():
        pytest.skip("node and socket.io-client are needed: run `make client`")
    key_env = await bot_env(server, clients, commands=["message.post"])
    env = {**key_env, "NODE_PATH": str(NODE_MODULES)}
    ref = f"CAD-{uuid.uuid4().hex[:8]}"
    dispatcher = await connect(clients, server, "dispatch", live=False)
    opened = await dispatcher.request(
        "POST",
        "/api/v1/incidents",
        {"id": uuid.uuid4().hex, "title": "Alarm", "category": "cad", "external_ref": ref},
    )
    incident = opened["incident"]
    bot = ["node", str(EXAMPLES / "js_bot.cjs"), ref, "Patrol 7 en route", "--timeout", "8"]

    first = await run(bot, env)
    assert one(first, "incident") == incident
    assert one(first, "welcome")["id"] == "u_cad-bot"
    posted = one(first, "posted")
    assert (posted["ok"], posted["duplicate"]) == (True, False)
    events = [line["event"] for line in first if "event" in line]
    assert [e["seq"] for e in events] == list(range(1, posted["seq"] + 1))
    assert (events[-1]["type"], events[-1]["body"]["text"]) == (
        "message.posted",
        "Patrol 7 en route",
    )
    assert one(first, "done") is True

    again = await run(bot, env)
    assert (one(again, "posted")["duplicate"], one(again, "posted")["seq"]) == (True, posted["seq"])
    stored = posts_of(await dispatcher.timeline(incident), "Patrol 7 en route")
    assert [(e["seq"], e["actor"]["user"]) for e in stored] == [(posted["seq"], "u_cad-bot")]
