"""The cross-incident feed (SPEC section 22) on a real server: live over Socket.IO,
REST pages, long-poll and SSE, one order for all of them, resumable, sharing rules
applied. Redis and other nodes: tests/contract/test_feed_service.py."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import orjson
import pytest

from liaison_client import CommandFailed, LiaisonClient
from tests.conftest import LiaisonServer, connect, new_incident


async def _get(srv: LiaisonServer, path: str, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as s, s.get(srv.url + path, headers=headers) as resp:
        return resp.status, await resp.json()


async def _entries_until(
    client: LiaisonClient, incident: str, count: int, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """The next ``count`` socket entries of ``incident`` (others' incidents skipped)."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        while len(got) < count:
            entry = await client.next_feed_entry(timeout)
            if entry["incident"] == incident:
                got.append(entry)
    return got


async def _rest_entries(
    client: LiaisonClient, after: str, incident: str, kinds: str = ""
) -> list[dict[str, Any]]:
    """Every REST entry of ``incident`` after ``after``, page by page."""
    out: list[dict[str, Any]] = []
    while True:
        page = await client.feed(after, kinds=kinds, limit=3)
        out += [e for e in page["entries"] if e["incident"] == incident]
        after = page["cursor"]
        if not page["more"] and not page["entries"]:
            return out


async def test_a_phone_gets_opened_changed_and_needs_you_live_and_the_same_by_rest(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    phone = await connect(clients, server, "outreach")
    start = (await phone.feed())["cursor"]
    ack = await phone.subscribe_feed(start)
    assert ack["ok"]
    assert ack["cursor"] == start
    incident = await new_incident(dispatcher, "Bridge welfare check")
    # Police-only, urgent, naming the officer: the shelter must get nothing of it.
    secret = await dispatcher.post(
        incident,
        "police only: suspect named Quentin",
        visibility=["metro-police"],
        urgent=True,
        mentions={"users": ["u_officer"]},
    )
    await dispatcher.post(incident, "Need a bed tonight", urgent=True)
    await dispatcher.post(incident, "@shelter can you come", mentions={"orgs": ["harbour-shelter"]})
    await dispatcher.post(incident, "just chat")
    await dispatcher.send({"type": "incident.update", "incident": incident, "title": "Renamed"})
    await dispatcher.send({"type": "incident.status", "incident": incident, "status": "active"})
    task = await dispatcher.send(
        {
            "type": "task.create",
            "incident": incident,
            "title": "Bring blankets",
            "assignee": {"org": "harbour-shelter"},
        }
    )
    live = await _entries_until(phone, incident, 6)
    assert [(e["kind"], e.get("reasons")) for e in live] == [
        ("incident.opened", None),
        ("needs_you", ["urgent"]),
        ("needs_you", ["mention"]),
        ("incident.changed", None),
        ("incident.changed", None),
        ("needs_you", ["task"]),
    ]
    assert live[0]["summary"]["orgs"] == ["metro-police", "harbour-shelter"]
    assert live[1]["text"] == "Need a bed tonight"
    assert live[3]["changes"]["title"] == "Renamed"  # and its label, set with it
    assert live[4]["changes"] == {"status": "active"}
    assert (live[5]["task"], live[5]["title"]) == (task["seq"], "Bring blankets")
    assert all(e["seq"] != secret["seq"] for e in live)
    wire = orjson.dumps(live)
    assert b"Quentin" not in wire
    assert b"police only" not in wire

    # REST, in pages of 3, gives the same entries with the same cursors.
    assert await _rest_entries(phone, start, incident) == live
    # Resuming from any entry's cursor gives exactly what follows it.
    assert await _rest_entries(phone, live[2]["cursor"], incident) == live[3:]
    # Every event the phone may see, for bots; the police-only one is not there at all.
    events = await _rest_entries(phone, start, incident, kinds="event")
    seqs = [e["seq"] for e in events]
    assert seqs == [s for s in range(1, task["seq"] + 1) if s != secret["seq"]]
    assert all(e["event"]["type"] != "restricted" for e in events)
    assert b"Quentin" not in orjson.dumps(events)
    # The police see the police-only one: the officer (not its author) is told it
    # needs them, as it does the urgent one after it.
    officer = await connect(clients, server, "officer", live=False)
    police = await _rest_entries(officer, start, incident, kinds="needs_you")
    assert [e["message"] for e in police if e.get("message")] == [secret["seq"], secret["seq"] + 1]


async def test_long_poll_sse_and_refusals(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    phone = await connect(clients, server, "outreach", live=False)
    incident = await new_incident(dispatcher, "Long poll")
    cursor = (await phone.feed())["cursor"]

    started = time.monotonic()
    poll = asyncio.create_task(phone.feed(cursor, wait=10, kinds="needs_you"))
    await asyncio.sleep(0.3)  # the poll is waiting (a real gap, not a sync point)
    assert not poll.done()
    await dispatcher.post(incident, "urgent one", urgent=True)
    page = await asyncio.wait_for(poll, 5)
    assert time.monotonic() - started < 5
    assert [e["text"] for e in page["entries"] if e["incident"] == incident] == ["urgent one"]
    await dispatcher.post(incident, "urgent two", urgent=True)

    # SSE from the long-poll's entry: the next one, with its cursor as the id.
    headers = {
        "Authorization": f"Bearer {phone.token}",
        "Accept": "text/event-stream",
        "Last-Event-ID": page["entries"][-1]["cursor"],
    }
    async with (
        aiohttp.ClientSession() as s,
        s.get(server.url + "/api/v1/feed?kinds=needs_you", headers=headers) as resp,
    ):
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        events: list[dict[str, str]] = []
        current: dict[str, str] = {}
        async with asyncio.timeout(10):
            async for raw in resp.content:
                line = raw.decode().rstrip("\n")
                if not line:
                    events.append(current)
                    current = {}
                    if any('"urgent two"' in e.get("data", "") for e in events):
                        break
                elif not line.startswith(":"):
                    field, _, value = line.partition(": ")
                    current[field] = value
    assert events[0]["event"] == "cursor"
    mine = [e for e in events[1:] if orjson.loads(e["data"])["incident"] == incident]
    assert [orjson.loads(e["data"])["text"] for e in mine] == ["urgent two"]
    assert mine[0]["id"] == orjson.loads(mine[0]["data"])["cursor"]

    epoch, pos, _ = cursor.split("-")
    for bad, status, code in (
        ("nope", 400, "invalid"),
        (f"{'0' * 16}-{pos}-0", 409, "resync_required"),
        (f"{epoch}-{int(pos) + 10**6}-0", 409, "resync_required"),
    ):
        got, body = await _get(server, f"/api/v1/feed?after={bad}", phone.token)
        assert (got, body["error"]["code"]) == (status, code)
    assert body["error"]["detail"]["cursor"].startswith(epoch + "-")
    got, body = await _get(server, "/api/v1/feed?kinds=gossip", phone.token)
    assert (got, body["error"]["code"]) == (400, "invalid")
    got, body = await _get(server, f"/api/v1/feed?after={cursor}&wait=31", phone.token)
    assert (got, body["error"]["code"]) == (400, "invalid")
    live = await connect(clients, server, "shelter-lead")
    with pytest.raises(CommandFailed) as refused:
        await live.subscribe_feed(f"{'0' * 16}-1-0")
    assert refused.value.code == "resync_required"
