"""Deadlines, receipts and lone-worker check-ins on real servers (SPEC "Deadlines").

Two nodes on one Redis, for the whole module (server starts are most of the
time these tests take): one of them holds the rules' lease, and the last test
kills it. Deadlines are a second or so here (LIAISON_DEADLINE_*): tests wait
for the escalation to appear in the log, never for a fixed time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from liaison_client import CommandFailed, LiaisonClient
from tests.conftest import LiaisonServer, connect, new_incident
from tests.integration.test_multinode import start_nodes
from tests.redis_server import RedisServer
from tests.waiting import until_true

FAST = {
    "LIAISON_DEADLINE_URGENT_ACK_S": "1",
    "LIAISON_DEADLINE_TASK_ACK_S": "1",
    "LIAISON_DEADLINE_POLL_S": "0.1",
    "LIAISON_DEADLINE_LEASE_S": "1.5",
}
SHELTER = "harbour-shelter"
POS = {"lat": 51.5058, "lon": -0.0761, "accuracy_m": 12.0}


@pytest.fixture(scope="module")
def module_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    srv = RedisServer(tmp_path_factory.mktemp("deadlines-redis"))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def nodes(
    module_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[LiaisonServer]]:
    started = start_nodes(module_redis, tmp_path_factory.mktemp("deadlines"), 2, FAST)
    yield started
    for node in started:
        node.stop()
    for node in started:
        assert node.errors_logged() == [], node.log_path.read_text()[-3000:]


@pytest.fixture
def fast_server(nodes: list[LiaisonServer]) -> LiaisonServer:
    return nodes[0]


async def of_type(client: LiaisonClient, incident: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in await client.timeline(incident) if e["type"] == kind]


async def wait_for(
    client: LiaisonClient, incident: str, kind: str, count: int = 1, timeout: float = 10.0
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []

    async def arrived() -> bool:
        nonlocal found
        found = await of_type(client, incident, kind)
        return len(found) >= count

    await until_true(arrived, timeout, f"{count} {kind} in {incident}")
    return found


async def test_an_unacknowledged_urgent_message_shows_receipts_then_escalates(
    fast_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatch = await connect(clients, fast_server, "dispatch")
    phone = await connect(clients, fast_server, "outreach")
    incident = await new_incident(dispatch)
    sent = await dispatch.post(incident, "Need a worker", urgent=True, mentions={"orgs": [SHELTER]})
    first = await phone.receipt(incident, "delivered", message=sent["seq"])
    again = await phone.receipt(incident, "delivered", message=sent["seq"])  # a second device
    assert again["duplicate"]
    assert again["seq"] == first["seq"]
    await phone.receipt(incident, "seen", message=sent["seq"])
    with pytest.raises(CommandFailed) as refused:
        await dispatch.receipt(incident, "seen", message=sent["seq"])
    assert refused.value.code == "invalid"  # the sender's own devices send none
    [escalation] = await wait_for(dispatch, incident, "escalation.unacknowledged")
    body = escalation["body"]
    assert body["message"] == sent["seq"]
    assert body["orgs"] == [SHELTER]
    assert "u_dispatch" in body["notify"]["users"]
    assert SHELTER in body["notify"]["orgs"]
    assert escalation["cid"].startswith("dl-ack-")
    view = await dispatch.incident(incident)
    [msg] = [m for m in view["messages"] if m["seq"] == sent["seq"]]
    assert set(msg["receipts"]) == {"delivered", "seen"}
    assert msg["receipts"]["delivered"]["u_outreach"] <= msg["receipts"]["seen"]["u_outreach"]
    assert [e["seq"] for e in msg["escalations"]] == [escalation["seq"]]
    # Acknowledged in time: a second urgent message never escalates.
    other = await dispatch.post(incident, "Second", urgent=True, mentions={"orgs": [SHELTER]})
    await phone.ack(incident, other["seq"])
    task = await dispatch.send(
        {
            "type": "task.create",
            "incident": incident,
            "title": "Debrief",
            "assignee": {"org": SHELTER},
            "due_in_s": 1,
        }
    )
    await wait_for(dispatch, incident, "escalation.overdue")
    # The task's own acknowledgement deadline fires on its own poll: the
    # overdue escalation may come first.
    escalations = await wait_for(dispatch, incident, "escalation.unacknowledged", count=2)
    assert {e["body"].get("message") or e["body"].get("task") for e in escalations} == {
        sent["seq"],
        task["seq"],
    }


async def test_an_escalation_about_a_red_message_is_a_placeholder_outside_red(
    fast_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatch = await connect(clients, fast_server, "dispatch")
    shelter = await connect(clients, fast_server, "shelter-lead")
    officer = await connect(clients, fast_server, "officer")
    incident = await new_incident(dispatch)
    secret = "Informant Jo Bloggs at the north steps"
    sent = await dispatch.post(incident, secret, urgent=True, tlp="RED", recipients=["u_officer"])
    [escalation] = await wait_for(officer, incident, "escalation.unacknowledged")
    assert escalation["body"]["message"] == sent["seq"]
    assert secret not in str(escalation)  # it names the message, never quotes it
    seen_by_shelter = {e["seq"]: e for e in await shelter.timeline(incident)}
    assert seen_by_shelter[escalation["seq"]]["type"] == "restricted"
    assert seen_by_shelter[sent["seq"]]["type"] == "restricted"
    assert secret not in str(await shelter.incident(incident))


async def test_a_missed_check_in_escalates_with_the_last_position_until_resolved(
    fast_server: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatch = await connect(clients, fast_server, "dispatch")
    phone = await connect(clients, fast_server, "outreach")
    incident = await new_incident(dispatch)
    await phone.checkin(incident, "start", interval_s=1, position=POS)
    [missed] = await wait_for(dispatch, incident, "checkin.missed")
    assert missed["body"]["user"] == "u_outreach"
    assert missed["body"]["notify"]["orgs"][0] == SHELTER
    view = await dispatch.incident(incident)
    [alarm] = view["checkins"]
    assert alarm["status"] == "missed"
    assert alarm["alarm"]["seq"] == missed["seq"]
    await dispatch.checkin(incident, "resolve", user="u_outreach", note="Reached by phone")
    [resolved] = (await dispatch.incident(incident))["checkins"]
    assert resolved["status"] == "resolved"
    assert resolved["resolved"]["by"] == "u_dispatch"
    # Duress, without a timer: at once, and only someone else resolves it.
    raised = await phone.checkin(incident, "duress", position=POS)
    with pytest.raises(CommandFailed) as refused:
        await phone.checkin(incident, "resolve", user="u_outreach")
    assert refused.value.code == "forbidden"
    duress = [e for e in await dispatch.timeline(incident) if e["seq"] == raised["seq"]]
    assert duress[0]["type"] == "checkin.duress"
    assert "u_dispatch" in str(duress[0]["body"])
    await dispatch.checkin(incident, "resolve", user="u_outreach")
    assert [c["status"] for c in (await dispatch.incident(incident))["checkins"]] == [
        "resolved",
        "resolved",
    ]
    assert len(await of_type(dispatch, incident, "checkin.missed")) == 1


async def test_a_killed_holder_is_taken_over_and_a_restart_never_fires_twice(
    nodes: list[LiaisonServer], module_redis: RedisServer, clients: list[LiaisonClient]
) -> None:
    """Last of the module: kills the node holding the lease, restarts it."""
    lease = redis.Redis.from_url(module_redis.url)
    try:
        a = await connect(clients, nodes[0], "dispatch")
        earlier = await new_incident(a)
        await a.post(earlier, "Fired before the kill", urgent=True)
        await wait_for(a, earlier, "escalation.unacknowledged")
        holder = lease.get("liaison:lease:deadlines")
        assert holder in (b"node0", b"node1")
        dying = 0 if holder == b"node0" else 1
        other = nodes[1 - dying]
        near = await connect(clients, other, "dispatch")
        incident = await new_incident(near)
        await near.post(incident, "Pending across the kill", urgent=True)
        nodes[dying].kill()  # kill -9 of the holder: its lease lapses after 1.5 s
        await wait_for(near, incident, "escalation.unacknowledged")
        assert lease.get("liaison:lease:deadlines") == f"node{1 - dying}".encode()
        # The killed node comes back, and the survivor stops (releasing the
        # lease): the restarted one rebuilds the index from the log, fires
        # what is new and nothing it fired before.
        nodes[dying].start()
        other.stop()
        back = await connect(clients, nodes[dying], "dispatch")
        second = await back.post(incident, "After the restart", urgent=True)
        found = await wait_for(back, incident, "escalation.unacknowledged", count=2)
        assert [e["body"]["message"] for e in found][1] == second["seq"]
        assert len(found) == 2
        assert len({e["cid"] for e in found}) == 2
        assert len(await of_type(back, earlier, "escalation.unacknowledged")) == 1
        assert lease.get("liaison:lease:deadlines") == f"node{dying}".encode()
    finally:
        lease.close()
