"""The feed's read path (server/services/feed.py) on every backend: entries per
reader through ``audience``, exact resume from any cursor, typed refusals, and
(Redis) a reader woken by what another node commits."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from protocol.errors import ErrorCode, ProtocolError
from server.backends import Backends, running
from server.domain.events import EventDraft
from server.domain.feed import DEFAULT_KINDS, KINDS
from server.domain.model import Principal, Role
from server.services.feed import FeedCursor, FeedService
from server.services.projections import Projections
from server.services.sharing_rules import SharingRules
from tests.contract.conftest import redis_settings
from tests.redis_server import RedisServer

NGO = Principal(user_id="u2", org_id="o2", role=Role.RESPONDER, name="Nia")
POLICE = Principal(user_id="u3", org_id="o1", role=Role.RESPONDER, name="Omar")


def _draft(incident: str, cid: str, kind: str, body: dict[str, Any], **extra: Any) -> EventDraft:
    return EventDraft(
        incident=incident,
        type=kind,
        actor_user="u1",
        actor_org="o1",
        actor_name="Dana",
        client_id=cid,
        visibility=extra.get("visibility"),
        body=body,
        epoch="ep-" + incident if kind == "incident.created" else None,
    )


def _created(incident: str, orgs: list[str]) -> EventDraft:
    body = {"title": incident, "category": "welfare", "priority": "high", "orgs": orgs}
    return _draft(incident, "c-" + incident, "incident.created", body)


def _post(incident: str, cid: str, **body: Any) -> EventDraft:
    vis = body.pop("visibility", None)
    return _draft(incident, cid, "message.posted", {"text": cid, **body}, visibility=vis)


@contextlib.asynccontextmanager
async def _service(backends: Backends, poll_s: float = 0.25) -> AsyncIterator[FeedService]:
    assert backends.feed is not None
    rules = SharingRules(backends.agreements)
    await rules.start()
    service = FeedService(
        feed=backends.feed,
        log=backends.log,
        projections=Projections(backends.log, backends.broker),
        rules=rules,
        signal=backends.feed_signal,
        poll_s=poll_s,
    )
    try:
        yield service
    finally:
        await service.close()
        await rules.close()


async def _all(
    service: FeedService, who: Principal, cursor: FeedCursor, kinds: frozenset[str], limit: int
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        page = await service.page(who, cursor, kinds, limit)
        out += page.entries
        cursor = page.cursor
        if page.at_head:
            return out


async def test_entries_follow_the_sharing_rules_and_resume_exactly(log_set: Backends) -> None:
    log = log_set.log
    async with _service(log_set) as service:
        start = await service.start_cursor()
        await log.append(_created("a", ["o1", "o2"]))
        await log.append(_created("police-only", ["o1"]))
        await log.append(_post("a", "secret", urgent=True, visibility=["o1"]))
        # One run of many: a page limit cuts inside it without losing or repeating.
        await asyncio.gather(*(log.enqueue(_post("a", f"u{i}", urgent=True)) for i in range(6)))
        await log.append(_post("police-only", "p1", urgent=True))
        await log.append(
            _draft("a", "upd", "incident.updated", {"title": "Renamed", "add_orgs": ["o3"]})
        )
        everything = await _all(service, NGO, start, DEFAULT_KINDS, 100)
        kinds = [(e["kind"], e["incident"]) for e in everything]
        assert kinds == [
            ("incident.opened", "a"),
            *[("needs_you", "a")] * 6,
            ("incident.changed", "a"),
        ]
        assert [e["text"] for e in everything[1:7]] == [f"u{i}" for i in range(6)]
        assert everything[-1]["changes"] == {"title": "Renamed", "orgs_added": ["o3"]}
        assert await _all(service, NGO, start, DEFAULT_KINDS, 1) == everything
        for i, entry in enumerate(everything):
            resumed = await _all(service, NGO, FeedCursor.decode(entry["cursor"]), KINDS, 2)
            assert [e for e in resumed if e["kind"] != "event"] == everything[i + 1 :]
        police = await _all(service, POLICE, start, frozenset({"needs_you"}), 100)
        assert [e["text"] for e in police] == ["secret", *[f"u{i}" for i in range(6)], "p1"]
        events = await _all(service, NGO, start, frozenset({"event"}), 100)
        assert [(e["incident"], e["seq"]) for e in events] == [("a", s) for s in (1, *range(3, 10))]


async def test_cursors_that_cannot_be_served_are_refused_with_a_typed_error(
    log_set: Backends,
) -> None:
    async with _service(log_set) as service:
        await log_set.log.append(_created("a", ["o1", "o2"]))
        head = await service.start_cursor()
        for bad in (
            FeedCursor("0" * 16, 1),
            FeedCursor(head.epoch, head.pos + 1),
            FeedCursor(head.epoch, 0),
        ):
            with pytest.raises(ProtocolError) as refused:
                await service.page(NGO, bad, DEFAULT_KINDS, 10)
            assert refused.value.code is ErrorCode.RESYNC_REQUIRED
            assert refused.value.detail == {"cursor": head.encode()}
        for raw in ("", "x-1-0", "ab-1", "ab-1-0-0", "AB-1-0", "ab-1-" + "9" * 17):
            with pytest.raises(ProtocolError) as malformed:
                FeedCursor.decode(raw)
            assert malformed.value.code is ErrorCode.INVALID


async def test_redis_a_waiting_reader_wakes_for_another_nodes_commit(
    redis_server: RedisServer,
) -> None:
    redis_server.flush()
    async with (
        running(redis_settings(redis_server, "node-a")) as node_a,
        running(redis_settings(redis_server, "node-b")) as node_b,
        _service(node_a, poll_s=0.05) as service,
    ):
        start = await service.start_cursor()
        generation = service.generation
        page = await service.page(NGO, start, DEFAULT_KINDS, 10)
        assert page.at_head
        assert page.entries == []
        waiting = asyncio.create_task(service.wait(generation, 10))
        began = time.monotonic()
        await node_b.log.append(_created("a", ["o1", "o2"]))
        await asyncio.wait_for(waiting, 5)
        assert time.monotonic() - began < 2
        page = await service.page(NGO, start, DEFAULT_KINDS, 10)
        assert [e["kind"] for e in page.entries] == ["incident.opened"]
