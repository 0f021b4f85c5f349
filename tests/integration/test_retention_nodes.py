"""Retention with two Redis nodes (SPEC 25.4): an incident archived by one node
answers ``archived`` to writes on the other, which still held its state.

Only the archiving node forgets its projection; the other one decided on the
closed state it had cached and answered ``conflict`` ("the incident is
closed"), or, for a reopening, ``not_found``; and the creator's retried
``incident.create`` met the head it had cached (``not_found``). Found by the leak test
(tests/integration/test_leak_stateful.py) on two Redis nodes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from liaison_client import CommandFailed, LiaisonClient
from tests.conftest import ADMIN_PASSWORD, DEMO_PASSWORD
from tests.integration.test_multinode import start_nodes
from tests.redis_server import RedisServer


async def test_a_node_that_held_the_state_answers_archived(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    a, b = start_nodes(own_redis, tmp_path, 2, {"LIAISON_RETENTION_POLL_S": "0"})
    opened: list[LiaisonClient] = []
    try:
        dispatch = LiaisonClient(b.url)
        await dispatch.login("dispatch", DEMO_PASSWORD)
        await dispatch.connect()
        admin = LiaisonClient(a.url)
        await admin.login("admin", ADMIN_PASSWORD)
        opened += [dispatch, admin]
        create = {
            "type": "incident.create",
            "id": "archived-on-node-a",
            "title": "Archived on the other node",
            "category": "welfare",
            "orgs": ["metro-police", "harbour-shelter"],
        }
        incident = (await dispatch.send(dict(create)))["incident"]
        await dispatch.post(incident, "cached on node b")
        close = {"type": "incident.status", "incident": incident, "status": "closed"}
        await dispatch.send(close)
        body = {"archive_after_days": 0, "note": "test: archive at once"}
        await admin.request("PUT", "/api/v1/retention/policies/default", body)
        report = await admin.request("POST", "/api/v1/retention/run")
        assert [item["incident"] for item in report["archived"]] == [incident]

        for command in (
            {"type": "message.post", "incident": incident, "text": "late"},
            {"type": "incident.status", "incident": incident, "status": "active"},
            {"type": "message.post", "incident": incident, "text": "again"},
            create,  # its retry: node b had cached the incident's head
        ):
            with pytest.raises(CommandFailed) as info:
                await dispatch.send(command)
            assert info.value.code == "archived", (command, info.value.error)
            assert info.value.error["detail"]["incident"] == incident
    finally:
        for client in opened:
            await client.close()
        for node in (a, b):
            node.stop()
    for node in (a, b):
        assert node.errors_logged() == []
