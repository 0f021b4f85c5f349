"""The anchor log and the node key on every backend (server/services/anchors.py).

Real logs (SQLite, Redis): the sweep anchors each moved head once, marks the
one after a close, remembers across a restart; records chain like the audit
log and every signature verifies with the standalone verifier; the key is
stable across loads (and 0600 on disk).
"""

from __future__ import annotations

import stat
from typing import Any

from protocol import liaison_verify as lv
from server.backends import NODE_KEY_FILE, Backends
from server.domain.events import EventDraft
from server.services.anchors import Anchorer, NodeSigner
from server.storage.audit import verify_records
from server.storage.sqlite import SqliteEventLog


def _draft(incident: str, cid: str, kind: str, body: dict[str, Any]) -> EventDraft:
    return EventDraft(
        incident,
        kind,
        "u1",
        "o1",
        "One",
        cid,
        None,
        body,
        epoch="ep-" + incident if kind == "incident.created" else None,
    )


async def test_the_sweep_anchors_moved_heads_once_and_marks_a_close(log_set: Backends) -> None:
    assert log_set.anchors is not None
    assert log_set.node_key is not None
    created = {"title": "t", "category": "c", "priority": "normal", "orgs": ["o1"]}
    await log_set.log.append(_draft("inc1", "c0", "incident.created", created))
    await log_set.log.append(_draft("inc1", "c1", "message.posted", {"text": "x"}))
    anchorer = Anchorer(log_set.log, log_set.anchors, log_set.node_key, 0)
    await anchorer.start()
    assert await anchorer.sweep() == 1
    assert await anchorer.sweep() == 0, "an unmoved head is not anchored again"
    status = {"status": "closed", "previous": "reported", "note": None}
    await log_set.log.append(_draft("inc1", "c2", "incident.status_changed", status))
    assert await anchorer.sweep() == 1
    records = [r.to_wire() for r in await log_set.anchors.read(0, 100)]
    assert [r["detail"]["reason"] for r in records] == ["periodic", "close"]
    assert verify_records(records) is None
    key = anchorer.signer.public_hex
    for record in records:
        statement = record["detail"]["statement"]
        assert statement["key"] == key
        assert lv.check_signature(key, record["detail"]["signature"], lv.statement_bytes(statement))
    assert records[-1]["detail"]["statement"]["seq"] == 3

    again = Anchorer(log_set.log, log_set.anchors, log_set.node_key, 0)
    await again.start()  # a restarted node
    assert again.signer.public_hex == key, "the key survives a restart"
    assert await again.sweep() == 0, "what was anchored before the restart is not repeated"


async def test_the_node_key_is_stable_and_private(log_set: Backends) -> None:
    assert log_set.node_key is not None
    first = await NodeSigner.load(log_set.node_key)
    second = await NodeSigner.load(log_set.node_key)
    assert first.public_hex == second.public_hex
    assert len(first.public_hex) == 64
    if isinstance(log_set.log, SqliteEventLog):
        path = log_set.log.config.path.parent / NODE_KEY_FILE
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
