"""Live projection versus a fresh rebuild, after every action (zulip's ``verify_action``).

A node answers reads and decides commands from a cached ``IncidentState`` that
its subscription to the incident's fan-out keeps current (``Projections``).
The log is the truth. After each command of ``tests/timeline_script.py`` (every
command type, public and restricted), the cached state, moved only by live
fan-out, must equal a new ``IncidentState`` folded from ``log.read``: as a
whole, and as each organisation's view (the diff printed on a mismatch is of
those views, the shape a reader knows). Run on every backend.
"""

from __future__ import annotations

import difflib
import json
import pprint
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from protocol import v1
from server.backends import Backends
from server.domain.incident import IncidentState
from server.domain.model import Org, Principal, Role
from server.domain.sharing import NoAgreements
from server.services.admin import DEMO_ORGS, DEMO_USERS
from server.services.commands import CommandService
from server.services.projections import Projections
from server.storage.base import EventLog
from tests.timeline_script import ORGS, Ack, run_script
from tests.views import view_of
from tests.waiting import until

NOW_MS = 1_767_225_600_000  # a fixed "now": views are compared, not clocks


class DemoDirectory:
    """The demo organisations and users, as the rules look them up."""

    def __init__(self) -> None:
        self.orgs = {o.id: o for o in DEMO_ORGS}
        self.users = {
            f"u_{username}": Principal(f"u_{username}", org, Role(role), name)
            for username, org, name, role in DEMO_USERS
        }

    def org(self, org_id: str) -> Org | None:
        return self.orgs.get(org_id)

    def user(self, user_id: str) -> Principal | None:
        return self.users.get(user_id)


@dataclass
class Node:
    log: EventLog
    projections: Projections
    commands: CommandService
    directory: DemoDirectory


@pytest.fixture
def node(log_set: Backends) -> Node:
    return node_of(log_set, Projections(log_set.log, log_set.broker))


def node_of(log_set: Backends, projections: Projections) -> Node:
    log = log_set.log
    directory = DemoDirectory()
    return Node(
        log, projections, CommandService(log, projections, directory, NoAgreements()), directory
    )


async def rebuilt(log: EventLog, incident: str) -> IncidentState:
    """A new projection folded from the log alone."""
    head = await log.head(incident)
    assert head is not None
    state = IncidentState(id=incident, epoch=head.epoch)
    while True:
        events = await log.read(incident, state.seq, 1000)
        for ev in events:
            state.apply(ev)
        if len(events) < 1000:
            return state


def views(state: IncidentState) -> dict[str, Any]:
    """What each reader would be served: unrestricted (exports) and per organisation."""
    return {str(org): view_of(state, org, NOW_MS) for org in (None, *ORGS)}


def readable_diff(live: IncidentState, fresh: IncidentState) -> str:
    a = pprint.pformat(json.loads(json.dumps(views(live))), width=100).splitlines()
    b = pprint.pformat(json.loads(json.dumps(views(fresh))), width=100).splitlines()
    diff = "\n".join(difflib.unified_diff(a, b, "live (fan-out)", "rebuilt (log)", lineterm=""))
    return diff or f"views agree; the states differ:\n{live!r}\n!=\n{fresh!r}"


def executor(node: Node) -> Callable[[str, dict[str, Any]], Awaitable[Ack]]:
    """Runs a script's command as the demo user it names, on ``node``."""

    async def execute(username: str, command: dict[str, Any]) -> Ack:
        who = node.directory.user(f"u_{username}")
        assert who is not None
        return await node.commands.execute(who, v1.parse_command(command))

    return execute


async def test_live_projection_equals_a_rebuild_after_every_action(node: Node) -> None:
    live: IncidentState | None = None
    checked: list[str] = []

    execute = executor(node)

    async def verify(step: str, ack: Ack) -> None:
        nonlocal live
        if live is None:  # taken once: from here on only fan-out moves it
            live = await node.projections.get(ack["incident"])
            assert live is not None
        state = live
        await until(lambda: state.seq >= ack["seq"], 10, f"{step}: seq {ack['seq']} live")
        fresh = await rebuilt(node.log, state.id)
        if state.seq == fresh.seq:  # a concurrent pair: checked once both are in
            assert state == fresh, f"after {step}:\n{readable_diff(state, fresh)}"
            checked.append(step)

    await run_script(execute, verify)
    assert live is not None
    assert node.projections.cached(live.id)
    assert live is await node.projections.get(live.id), "the live state was never replaced"
    assert len(checked) >= 40, checked
    # Every event type the script is meant to cover did occur.
    kinds = {ev.type for ev in await node.log.read(live.id, 0, 1000)}
    assert kinds >= set(v1.EVENT_OF_COMMAND.values()), set(v1.EVENT_OF_COMMAND.values()) - kinds


async def test_a_bounded_projection_answers_as_a_rebuild_after_every_action(
    log_set: Backends,
) -> None:
    """One message kept in memory: every read and every decision about an older
    one (replies, edits, acknowledgements, receipts) goes to the log, and what
    readers get is what the unbounded projection gave them."""
    node = node_of(log_set, Projections(log_set.log, log_set.broker, max_messages=1))
    live: IncidentState | None = None
    trimmed: list[str] = []

    execute = executor(node)

    async def verify(step: str, ack: Ack) -> None:
        nonlocal live
        if live is None:
            live = await node.projections.get(ack["incident"])
            assert live is not None
        state = live
        await until(lambda: state.seq >= ack["seq"], 10, f"{step}: seq {ack['seq']} live")
        fresh = await rebuilt(node.log, state.id)
        if state.seq != fresh.seq:
            return
        whole = await node.projections.whole(state.id)
        assert whole is not None
        assert views(whole) == views(fresh), f"after {step}:\n{readable_diff(whole, fresh)}"
        # What stays in memory is the newest message, and urgent ones still open.
        newest = max(fresh.messages, default=None)
        for seq, msg in state.messages.items():
            assert msg == fresh.messages[seq]
            assert seq == newest or (msg.urgent and not msg.retracted), (step, seq)
        if state.trimmed_upto:
            trimmed.append(step)

    await run_script(execute, verify)
    assert live is not None
    assert live is await node.projections.get(live.id)
    assert len(trimmed) >= 10, trimmed
