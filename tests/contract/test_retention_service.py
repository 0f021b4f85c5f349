"""The retention service over each backend, on an injected clock (SPEC section 25).

Closes an incident, lets the clock pass the policy's periods, and checks the
archive verifies, hot storage forgets the incident, a hold blocks the
purge, and the purge leaves its record.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest

from protocol.liaison_verify import main as verify
from server.backends import Backends
from server.domain.events import EventDraft
from server.domain.retention import DAY_MS
from server.services.anchors import Anchorer
from server.services.projections import Projections
from server.services.retention import Retention
from server.storage.audit import AuditEntry
from tests.contract.test_event_log import draft, open_incident


def _closed(incident: str) -> EventDraft:
    d = draft(incident, "close-" + incident, kind="incident.status_changed")
    return replace(d, body={"status": "closed", "previous": "reported"})


@pytest.fixture
async def world(log_set: Backends, tmp_path: Path) -> tuple[Retention, list[AuditEntry], list[int]]:
    assert log_set.anchors is not None
    assert log_set.node_key is not None
    assert log_set.retention is not None
    anchorer = Anchorer(log_set.log, log_set.anchors, log_set.node_key, 0)
    await anchorer.start()
    audit: list[AuditEntry] = []
    clock = [0]

    async def record(entry: AuditEntry) -> None:
        audit.append(entry)

    retention = Retention(
        log=log_set.log,
        store=log_set.retention,
        projections=Projections(log_set.log, log_set.broker),
        anchorer=anchorer,
        record=record,
        archive_dir=tmp_path / "archive",
        orgs=lambda: ["o1"],
        clock=lambda: clock[0],
    )
    return retention, audit, clock


async def test_archive_then_purge_on_the_clock(
    world: tuple[Retention, list[AuditEntry], list[int]],
) -> None:
    retention, audit, clock = world
    log = retention.log
    await open_incident(log, "inc1")
    await log.append(draft("inc1", "m1"))
    await log.append(_closed("inc1"))
    await retention.store.put(
        "policy", "default", {"id": "default", "archive_after_days": 30, "purge_after_days": 365}
    )
    closed_ms = int(time.time() * 1000)  # the log stamps events on its own clock
    clock[0] = closed_ms + 29 * DAY_MS
    assert (await retention.run()).archived == [], "not due for a month after the last event"

    clock[0] = closed_ms + 31 * DAY_MS
    report = await retention.run()
    assert [a["incident"] for a in report.archived] == ["inc1"]
    tombstone = await log.tombstone("inc1")
    assert tombstone is not None
    assert (tombstone["seq"], tombstone["state"]) == (3, "archived")
    path = retention.archive_path(tombstone)
    key = retention.anchorer.signer.public_hex
    assert verify([str(path), "--key", key]) == 0
    assert await log.head("inc1") is None
    assert await log.incidents() == []

    await retention.store.put("hold", "inc1", {"incident": "inc1", "reason": "court"})
    clock[0] += 365 * DAY_MS
    report = await retention.run()
    assert report.purged == []
    assert [s["reason"] for s in report.skipped] == ["legal_hold"]
    assert path.exists()
    await retention.store.delete("hold", "inc1")
    [purge] = (await retention.run()).purged
    assert not path.exists()
    assert (purge["seq"], purge["sha256_removed"]) == (3, tombstone["sha256"])
    assert (await log.tombstone("inc1") or {})["state"] == "purged"
    actions = [(e.action, e.target) for e in audit]
    assert ("retention.archive", "inc1") in actions
    assert ("retention.purge", "inc1") in actions
    assert (await retention.run()).purged == [], "purged once"
