"""The EventLog.archive contract (server/storage/base.py), on every backend."""

from __future__ import annotations

import pytest

from server.backends import Backends
from server.errors import LogNotFound
from server.storage.base import EventLog, IncidentQuery
from tests.contract.test_event_log import draft, open_incident


@pytest.fixture
def log(log_set: Backends) -> EventLog:
    return log_set.log


def _tomb(incident: str, seq: int) -> dict[str, object]:
    return {"incident": incident, "orgs": ["o1"], "seq": seq, "last_hash": "h", "state": "archived"}


async def test_archive_takes_the_incident_out_of_hot_storage(log: EventLog) -> None:
    await open_incident(log, "gone")
    await open_incident(log, "kept")
    await log.append(draft("gone", "words", user="u1"))
    head = await log.head("gone")
    assert head is not None
    assert await log.archive("gone", head.seq, _tomb("gone", head.seq))

    assert await log.head("gone") is None
    assert await log.read("gone", 0, 10) == []
    assert not await log.participates("gone", "o1")
    assert await log.find("gone", "u1", "words") is None
    assert await log.text_matches("gone", ["words"], 0, 100) == []
    listed = await log.list_incidents(IncidentQuery(org="o1"))
    assert [i["id"] for i in listed.incidents] == ["kept"]
    assert await log.incidents() == ["kept"]
    with pytest.raises(LogNotFound):
        await log.append(draft("gone", "late"))
    assert await log.tombstone("gone") == _tomb("gone", head.seq)
    assert await log.tombstone("kept") is None
    # The other incident is untouched.
    assert len(await log.read("kept", 0, 10)) == 1


async def test_archive_refuses_a_moved_head_and_is_idempotent(log: EventLog) -> None:
    await open_incident(log, "a")
    await log.append(draft("a", "m1"))
    assert not await log.archive("a", 1, _tomb("a", 1)), "an event came after seq 1"
    assert await log.tombstone("a") is None
    assert len(await log.read("a", 0, 10)) == 2
    assert await log.archive("a", 2, _tomb("a", 2))
    assert await log.archive("a", 2, _tomb("a", 99)), "archived already: True"
    assert (await log.tombstone("a") or {})["seq"] == 2, "the first tombstone is kept"
    with pytest.raises(LogNotFound):
        await log.archive("never", 1, _tomb("never", 1))


async def test_tombstones_list_by_id_and_update(log: EventLog) -> None:
    for incident in ("c", "a", "b"):
        await open_incident(log, incident)
        assert await log.archive(incident, 1, _tomb(incident, 1))
    assert [t["incident"] for t in await log.tombstones("", 10)] == ["a", "b", "c"]
    assert [t["incident"] for t in await log.tombstones("a", 1)] == ["b"]
    await log.update_tombstone("b", {**_tomb("b", 1), "state": "purged"})
    assert (await log.tombstone("b") or {})["state"] == "purged"
    with pytest.raises(LogNotFound):
        await log.update_tombstone("zz", _tomb("zz", 1))
