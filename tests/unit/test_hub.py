"""Follow registration is all or nothing (the hub on a real SQLite log)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

from protocol.v1 import FollowTarget
from server.backends import Backends, running
from server.domain.events import EventDraft, StoredEvent
from server.domain.sharing import NoAgreements
from server.errors import StorageUnavailable
from server.fanout.memory import MemoryBroker
from server.fanout.presence import MemoryPresence
from server.services import hub as hub_module
from server.services.hub import Hub, Piece
from server.services.projections import Projections
from server.settings import Settings
from server.storage.base import EventLog


class FailingPresence(MemoryPresence):
    """Fault injection: presence that cannot record a join."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    async def join(self, incident: str, user: str, connection: str) -> None:
        raise self.error


class Phone:
    """A Subscriber that keeps what it is sent."""

    org, user, connection, encoding = "o1", "u1", "c1", "json"

    def __init__(self) -> None:
        self.pieces: list[Piece] = []
        self.told_to_resume: list[str] = []

    def sees(self, incident: str) -> bool:
        return True

    def push(self, piece: Piece) -> bool:
        self.pieces.append(piece)
        return True

    def push_many(self, pieces: Sequence[Piece]) -> int:
        self.pieces.extend(pieces)
        return len(pieces)

    async def push_backlog(self, piece: Piece) -> bool:
        return self.push(piece)

    def resume_required(self, incident: str) -> None:
        self.told_to_resume.append(incident)

    def seqs(self) -> list[int]:
        return [orjson.loads(p)["seq"] for p in self.pieces]


class FlakyLog:
    """The real log, whose reads fail while ``failures`` is above 0 (counting down)."""

    def __init__(self, log: EventLog, failures: int) -> None:
        self.log, self.failures = log, failures

    async def read(self, incident: str, after_seq: int, limit: int) -> list[StoredEvent]:
        if self.failures > 0:
            self.failures -= 1
            raise StorageUnavailable("the disk is gone for a moment")
        return await self.log.read(incident, after_seq, limit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.log, name)


def draft(cid: str, kind: str = "message.posted") -> EventDraft:
    creating = kind == "incident.created"
    return EventDraft(
        incident="inc",
        type=kind,
        actor_user="u1",
        actor_org="o1",
        actor_name="U",
        client_id=cid,
        visibility=None,
        body={"title": "t", "category": "c", "priority": "normal", "orgs": ["o1"]}
        if creating
        else {"text": cid},
        epoch="ep" if creating else None,
    )


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[Backends]:
    async with running(Settings(data_dir=tmp_path, sqlite_synchronous="NORMAL")) as backends:
        await backends.log.append(draft("create", "incident.created"))
        yield backends


def hub_on(backends: Backends, presence: MemoryPresence) -> Hub:
    return Hub(
        backends.log,
        backends.broker,
        Projections(backends.log, backends.broker),
        presence,
        NoAgreements(),
    )


@pytest.mark.parametrize(
    "error", [StorageUnavailable("presence is down"), RuntimeError("a bug")], ids=type
)
async def test_a_failed_join_leaves_nothing_registered(
    embedded: Backends, error: BaseException
) -> None:
    hub = hub_on(embedded, FailingPresence(error))
    phone = Phone()
    target = FollowTarget(incident="inc", after_seq=0, epoch=None)
    if isinstance(error, StorageUnavailable):
        result = await hub.follow(phone, target)
        assert (result["status"], result["retryable"]) == ("unavailable", True)
    else:
        with pytest.raises(RuntimeError):
            await hub.follow(phone, target)
    assert hub.following(phone) == {}
    for i in range(3):
        await embedded.log.append(draft(f"after-{i}"))
    assert phone.pieces == [], "nothing is delivered (nor buffered) for a failed follow"
    assert hub._followers == {}, "and the incident's subscription was given back"
    await hub.close()


async def test_a_refollow_counts_one_presence(embedded: Backends) -> None:
    """Following again (after a gap, a resync) must not count the connection twice."""
    presence = MemoryPresence()
    hub = hub_on(embedded, presence)
    phone = Phone()
    for _ in range(2):
        result = await hub.follow(phone, FollowTarget(incident="inc", after_seq=0, epoch=None))
        assert result["status"] == "ok"
    assert await presence.online("inc") == ["u1"]
    hub.unfollow(phone, "inc")
    await asyncio.gather(*hub._tasks)  # the leave it spawned
    assert await presence.online("inc") == [], "one unfollow ends the presence"
    await hub.close()


async def live_gap(embedded: Backends, failures: int) -> tuple[Hub, Phone]:
    """A phone follows; then events reach the hub with a gap while reads fail.

    The hub gets its own broker, so the test decides what arrives live: seq 3
    without seq 2, as a lossy pub/sub link would deliver them.
    """
    flaky = FlakyLog(embedded.log, 0)
    broker = MemoryBroker()
    log = cast(EventLog, flaky)
    hub = Hub(log, broker, Projections(log, broker), MemoryPresence(), NoAgreements())
    phone = Phone()
    result = await hub.follow(phone, FollowTarget(incident="inc", after_seq=1, epoch=None))
    assert result["status"] == "ok"
    for i in range(2):
        await embedded.log.append(draft(f"live-{i}"))
    third = await embedded.log.read("inc", 2, 1)
    flaky.failures = failures
    broker.publish("inc", third)
    return hub, phone


async def test_a_live_gap_is_filled_once_storage_is_back(
    embedded: Backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: one failed read unfollowed the incident in silence, for good."""
    monkeypatch.setattr(hub_module, "LIVE_CATCH_UP_RETRY_S", (0.01,) * 5)
    hub, phone = await live_gap(embedded, failures=3)
    async with asyncio.timeout(10):
        while phone.seqs() != [2, 3]:
            await asyncio.sleep(0.01)
    assert hub.following(phone) == {"inc": 3}
    assert phone.told_to_resume == []
    await hub.close()


async def test_a_live_gap_that_cannot_be_filled_tells_the_client_to_resume(
    embedded: Backends, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "LIVE_CATCH_UP_RETRY_S", (0.01,) * 3)
    hub, phone = await live_gap(embedded, failures=100)
    async with asyncio.timeout(10):
        while not phone.told_to_resume:
            await asyncio.sleep(0.01)
    assert phone.told_to_resume == ["inc"]
    assert hub.following(phone) == {}, "nothing left registered"
    assert phone.seqs() == []
    await hub.close()
