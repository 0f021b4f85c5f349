"""Police-only content never reaches an NGO client: live, on resume, in reads.

Every event kind that can be restricted is produced with a unique marker in its
content; the NGO side must receive a ``restricted`` placeholder at each of those
seqs, and the marker must not appear in any byte it receives.
"""

from __future__ import annotations

from typing import Any

import orjson

from liaison_client import LiaisonClient
from tests.conftest import LiaisonServer, connect, new_incident

MARKER = "CONFIDENTIAL-7f3a"
POLICE = ["metro-police"]
PLACEHOLDER_KEYS = {"v", "type", "incident", "seq", "epoch", "digest", "hash"}


def spy_on_frames(client: LiaisonClient) -> list[Any]:
    """Record every raw engine.io message the client receives."""
    frames: list[Any] = []
    original = client.sio._handle_eio_message

    async def spy(data: Any) -> None:
        frames.append(data)
        await original(data)

    client.sio.eio.on("message", spy)
    return frames


async def produce_restricted_events(
    dispatcher: LiaisonClient, officer: LiaisonClient, incident: str
) -> dict[str, int]:
    """One restricted event of every kind; returns event type -> seq."""
    seqs: dict[str, int] = {}

    async def do(client: LiaisonClient, kind: str, **fields: Any) -> int:
        ack = await client.send({"incident": incident, **fields})
        seqs.setdefault(kind, ack["seq"])
        return int(ack["seq"])

    msg = await do(
        dispatcher,
        "message.posted",
        type="message.post",
        visibility=POLICE,
        text=f"{MARKER} suspect name",
        urgent=True,
    )
    await do(
        officer,
        "message.posted(reply)",
        type="message.post",
        reply_to=msg,
        text=f"{MARKER} reply inherits the restriction",
    )
    await do(
        dispatcher, "message.edited", type="message.edit", message=msg, text=f"{MARKER} edited"
    )
    await do(officer, "message.acknowledged", type="message.ack", message=msg)
    await do(dispatcher, "message.retracted", type="message.retract", message=msg)
    task = await do(
        dispatcher,
        "task.created",
        type="task.create",
        visibility=POLICE,
        title=f"{MARKER} check the flat",
    )
    await do(
        dispatcher, "task.assigned", type="task.assign", task=task, assignee={"user": "u_officer"}
    )
    await do(officer, "task.declined", type="task.decline", task=task, note=f"{MARKER} busy")
    await do(
        dispatcher,
        "task.assigned(again)",
        type="task.assign",
        task=task,
        assignee={"user": "u_officer"},
    )
    await do(officer, "task.accepted", type="task.accept", task=task)
    await do(officer, "task.started", type="task.start", task=task)
    await do(officer, "task.completed", type="task.complete", task=task, note=f"{MARKER} done")
    other = await do(
        dispatcher,
        "task.created(2)",
        type="task.create",
        visibility=POLICE,
        title=f"{MARKER} second task",
    )
    await do(dispatcher, "task.cancelled", type="task.cancel", task=other, note=f"{MARKER} no")
    await do(
        officer,
        "responder.status",
        type="responder.status",
        visibility=POLICE,
        status="on_scene",
        position={"lat": 51.51, "lon": -0.07},
    )
    await do(
        officer,
        "responder.position",
        type="responder.position",
        visibility=POLICE,
        lat=51.512,
        lon=-0.071,
    )
    return seqs


def assert_placeholders(envelopes: list[dict[str, Any]], restricted: set[int]) -> None:
    by_seq = {e["seq"]: e for e in envelopes}
    for seq in restricted:
        assert by_seq[seq]["type"] == "restricted", by_seq[seq]
        assert set(by_seq[seq]) == PLACEHOLDER_KEYS
    assert MARKER not in orjson.dumps(envelopes).decode()


async def test_restricted_events_reach_only_their_organisations(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    officer = await connect(clients, server, "officer")
    incident = await new_incident(dispatcher)
    await dispatcher.post(incident, "visible to everyone")
    phone = await connect(clients, server, "outreach", live=False)
    frames = spy_on_frames(phone)
    await phone.connect()
    await phone.follow(incident)
    await officer.follow(incident)

    seqs = await produce_restricted_events(dispatcher, officer, incident)
    last = await dispatcher.post(incident, "all clear")
    restricted = set(seqs.values()) | set(range(min(seqs.values()), last["seq"]))

    # live
    await phone.wait_seq(incident, last["seq"])
    live = [phone.events.get_nowait() for _ in range(phone.events.qsize())]
    assert [e["seq"] for e in live] == list(range(1, last["seq"] + 1)), "gapless with placeholders"
    assert_placeholders(live, restricted)
    assert live[-1]["body"]["text"] == "all clear"
    raw = b"".join(f if isinstance(f, bytes) else f.encode() for f in frames)
    assert MARKER.encode() not in raw

    # resume from the start on another device, msgpack this time
    tablet = await connect(clients, server, "shelter-lead", encoding="msgpack")
    await tablet.follow(incident)
    await tablet.wait_seq(incident, last["seq"])
    resumed = [tablet.events.get_nowait() for _ in range(tablet.events.qsize())]
    assert_placeholders(resumed, restricted)

    # reads: timeline and the projected incident
    assert_placeholders(await phone.timeline(incident), restricted)
    view = await phone.incident(incident)
    assert MARKER not in orjson.dumps(view).decode()
    assert [t for t in view["tasks"]] == []
    assert [r["user"] for r in view["responders"]] == []

    # the police see all of it
    police_view = await dispatcher.incident(incident)
    assert {t["status"] for t in police_view["tasks"]} == {"completed", "cancelled"}
    assert police_view["responders"][0]["status"] == "on_scene"
    police_timeline = await dispatcher.timeline(incident)
    assert all(e["type"] != "restricted" for e in police_timeline)
    kinds = {e["type"] for e in police_timeline if e["seq"] in restricted}
    assert kinds == {
        "message.posted",
        "message.edited",
        "message.acknowledged",
        "message.retracted",
        "task.created",
        "task.assigned",
        "task.declined",
        "task.accepted",
        "task.started",
        "task.completed",
        "task.cancelled",
        "responder.status",
        "responder.position",
    }


async def test_ngo_cannot_act_on_what_it_cannot_see(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    incident = await new_incident(dispatcher)
    secret = await dispatcher.send(
        {
            "type": "message.post",
            "incident": incident,
            "visibility": POLICE,
            "text": "police only",
            "urgent": True,
        }
    )
    phone = await connect(clients, server, "outreach")
    for command in (
        {"type": "message.ack", "message": secret["seq"]},
        {"type": "message.post", "text": "re", "reply_to": secret["seq"]},
    ):
        ack = await phone.sio.call(
            "cmd", {"id": "x" + str(command), "incident": incident, **command}
        )
        assert ack["error"]["code"] == "not_found"
