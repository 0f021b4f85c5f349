"""Connect, negotiate, post, fan out, resume and retry against a real server."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import socketio

from liaison_client import CommandFailed, LiaisonClient
from tests.conftest import LiaisonServer, connect, new_incident, resume_on


async def refused_connect(srv: LiaisonServer, auth: Any) -> dict[str, Any]:
    """Connect with ``auth`` and return the typed error of the connect_error."""
    sio = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    sio.on("connect_error", lambda data: errors.append(data))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(srv.url, auth=auth, transports=["websocket"], wait_timeout=5)
    await sio.disconnect()
    assert errors, "no connect_error received"
    # Socket.IO's connect_error carries {message, data}; data is the typed error.
    error: dict[str, Any] = errors[0]["data"]
    assert errors[0]["message"] == error["message"]
    return error


async def test_connection_without_valid_token_is_refused_with_typed_error(
    server: LiaisonServer,
) -> None:
    assert (await refused_connect(server, None))["code"] == "unauthenticated"
    assert (await refused_connect(server, {"token": "v1.abc.def"}))["code"] == "unauthenticated"


async def test_negotiation_refuses_unknown_versions_and_encodings(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    client = await connect(clients, server, "dispatch", live=False)
    err = await refused_connect(server, {"token": client.token, "versions": [99]})
    assert err["code"] == "unsupported_version"
    assert err["detail"] == {"supported": [1]}
    err = await refused_connect(server, {"token": client.token, "encoding": "xml"})
    assert err["code"] == "unsupported_encoding"


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
async def test_welcome_announces_choice_version_and_limits(
    server: LiaisonServer, clients: list[LiaisonClient], encoding: str
) -> None:
    client = await connect(clients, server, "outreach", encoding=encoding)
    assert client.welcome is not None
    assert client.welcome["v"] == 1
    assert client.welcome["encoding"] == encoding
    assert client.welcome["limits"]["max_frame_bytes"] == 65536
    assert client.welcome["user"] == {
        "id": "u_outreach",
        "org": "harbour-shelter",
        "role": "responder",
        "name": "Nia Outreach",
    }


@pytest.mark.parametrize("encoding", ["json", "msgpack"])
async def test_post_is_acked_with_seq_and_reaches_every_follower_in_order(
    server: LiaisonServer, clients: list[LiaisonClient], encoding: str
) -> None:
    dispatcher = await connect(clients, server, "dispatch", encoding=encoding)
    incident = await new_incident(dispatcher)
    followers = [
        await connect(clients, server, name, encoding=encoding)
        for name in ("outreach", "officer", "shelter-lead")
    ]
    for client in (dispatcher, *followers):
        assert (await client.follow(incident))["status"] == "ok"
        assert (await client.next_event())["type"] == "incident.created"
    acks = [await dispatcher.post(incident, f"update {i}") for i in range(30)]
    seqs = [ack["seq"] for ack in acks]
    assert seqs == list(range(2, 32)), "gapless seq after incident.created at 1"
    for client in followers:
        received = [await client.next_event() for _ in range(30)]
        assert [e["seq"] for e in received] == seqs
        assert [e["body"]["text"] for e in received] == [f"update {i}" for i in range(30)]
        assert {e["actor"]["user"] for e in received} == {"u_dispatch"}


async def test_concurrent_posters_get_gapless_seq_and_one_order_for_everyone(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    incident = await new_incident(dispatcher)
    posters = [dispatcher] + [await connect(clients, server, n) for n in ("officer", "outreach")]
    watchers = [await connect(clients, server, n) for n in ("sergeant", "shelter-super")]
    for client in posters + watchers:
        await client.follow(incident, after_seq=1)

    async def burst(client: LiaisonClient) -> list[int]:
        acks = await asyncio.gather(
            *(client.post(incident, f"{client.user} {i}") for i in range(40))
        )
        seqs = [a["seq"] for a in acks]
        assert seqs == sorted(seqs), "one connection's pipelined posts keep their order"
        return seqs

    all_seqs = sorted(s for seqs in await asyncio.gather(*map(burst, posters)) for s in seqs)
    assert all_seqs == list(range(2, 122))
    orders = []
    for watcher in watchers:
        await watcher.wait_seq(incident, 121)
        orders.append([(await watcher.next_event())["cid"] for _ in range(120)])
    assert orders[0] == orders[1]


async def test_retry_with_same_client_id_is_stored_once(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    incident = await new_incident(dispatcher)
    command = {
        "type": "message.post",
        "id": "retry-" + uuid.uuid4().hex,
        "incident": incident,
        "text": "ambulance requested",
    }
    first = await dispatcher.send(dict(command))
    again = await dispatcher.send(dict(command))
    assert first["duplicate"] is False
    assert again["duplicate"] is True
    assert again["seq"] == first["seq"]
    texts = [e["body"].get("text") for e in await dispatcher.timeline(incident)]
    assert texts.count("ambulance requested") == 1


async def test_reusing_a_client_id_for_another_action_is_a_conflict(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    first, second = await new_incident(dispatcher), await new_incident(dispatcher)
    cid = uuid.uuid4().hex
    await dispatcher.send({"type": "message.post", "id": cid, "incident": first, "text": "a"})
    for reuse in (
        {"type": "message.post", "id": cid, "incident": second, "text": "a"},
        {"type": "responder.status", "id": cid, "incident": first, "status": "available"},
    ):
        with pytest.raises(CommandFailed) as refused:
            await dispatcher.send(reuse)
        assert refused.value.code == "conflict"
    assert len(await dispatcher.timeline(second)) == 1


async def test_retry_of_a_state_change_returns_the_original(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    incident = await new_incident(dispatcher)
    command = {
        "type": "incident.status",
        "id": uuid.uuid4().hex,
        "incident": incident,
        "status": "active",
    }
    first = await dispatcher.send(dict(command))
    again = await dispatcher.send(dict(command))
    assert (again["seq"], again["duplicate"]) == (first["seq"], True)


async def test_reconnecting_client_gets_exactly_what_it_missed_then_live(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    incident = await new_incident(dispatcher)
    phone = await connect(clients, server, "outreach")
    await phone.follow(incident, after_seq=1)
    await dispatcher.post(incident, "before")
    assert (await phone.next_event())["body"]["text"] == "before"
    last = phone.positions[incident].seq

    await phone.sio.disconnect()  # the signal drops
    missed = [(await dispatcher.post(incident, f"missed {i}"))["seq"] for i in range(25)]
    await phone.connect()  # resumes every followed incident from its position
    await dispatcher.post(incident, "live again")
    received = [await phone.next_event() for _ in range(26)]
    assert [e["seq"] for e in received] == [*missed, missed[-1] + 1]
    assert received[0]["seq"] == last + 1
    assert received[-1]["body"]["text"] == "live again"
    with pytest.raises(TimeoutError):
        await phone.next_event(timeout=0.3)  # nothing twice


async def test_resume_across_kill_9_loses_no_acknowledged_event(
    fresh_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, fresh_server, "dispatch")
    incident = await new_incident(dispatcher)
    phone = await connect(clients, fresh_server, "outreach")
    await phone.follow(incident)
    acked = [(await dispatcher.post(incident, f"before crash {i}"))["seq"] for i in range(50)]
    await phone.wait_seq(incident, 10)
    await phone.sio.disconnect()
    position = phone.positions[incident].seq
    acked += [(await dispatcher.post(incident, f"unseen {i}"))["seq"] for i in range(20)]

    fresh_server.kill()
    fresh_server.start()

    survivor = await resume_on(clients, fresh_server, phone)  # same phone, new server process
    result = await survivor.follow(incident)
    assert result["status"] == "ok"
    assert result["head_seq"] == acked[-1]
    received = [await survivor.next_event() for _ in range(acked[-1] - position)]
    assert [e["seq"] for e in received] == list(range(position + 1, acked[-1] + 1))
    timeline = await survivor.timeline(incident)
    assert [e["seq"] for e in timeline] == list(range(1, acked[-1] + 1))


async def test_stale_epoch_gets_resync_required(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    incident = await new_incident(dispatcher)
    ack = await dispatcher.send(
        {
            "type": "follow",
            "incidents": [{"incident": incident, "after_seq": 1, "epoch": "not-the-epoch"}],
        }
    )
    assert ack["incidents"][0]["status"] == "resync_required"
    ack = await dispatcher.send(
        {"type": "follow", "incidents": [{"incident": incident, "after_seq": 999}]}
    )
    assert ack["incidents"][0]["status"] == "out_of_range"


async def test_unauthorised_incident_is_not_found_for_outsiders(
    server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatcher = await connect(clients, server, "dispatch")
    police_only = (
        await dispatcher.send(
            {
                "type": "incident.create",
                "title": "Police internal",
                "category": "ops",
            }
        )
    )["incident"]
    outsider = await connect(clients, server, "outreach")
    ack = await outsider.send({"type": "follow", "incidents": [{"incident": police_only}]})
    assert ack["incidents"][0]["status"] == "not_found"
    with pytest.raises(CommandFailed) as refused:
        await outsider.post(police_only, "let me in")
    assert refused.value.code == "not_found"
    assert police_only not in {i["id"] for i in await outsider.incidents()}
    with pytest.raises(CommandFailed) as hidden:
        await outsider.timeline(police_only)
    assert hidden.value.code == "not_found"
