"""Follow registration is all or nothing (the hub on a real SQLite log)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from protocol.v1 import FollowTarget
from server.backends import Backends, running
from server.domain.events import EventDraft
from server.errors import StorageUnavailable
from server.fanout.presence import MemoryPresence
from server.services.hub import Hub, Piece
from server.services.projections import Projections
from server.settings import Settings


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

    def push(self, piece: Piece) -> bool:
        self.pieces.append(piece)
        return True

    async def push_backlog(self, piece: Piece) -> bool:
        return self.push(piece)


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
    return Hub(backends.log, backends.broker, Projections(backends.log, backends.broker), presence)


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
