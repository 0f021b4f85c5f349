"""A cached projection stays bounded however much is posted, and reads past the
bound are answered from the log (SPEC 18's view, replies, edits, acks).

Run on every log backend: the trimmed messages must come back from SQLite and
from Redis alike.
"""

from __future__ import annotations

from typing import Any

import pytest

from protocol import v1
from protocol.errors import ProtocolError
from server.backends import Backends
from server.domain.incident import IncidentState
from server.domain.sharing import NoAgreements
from server.services.commands import CommandService
from server.services.projections import Projections
from tests.contract.test_projection_differential import DemoDirectory, rebuilt, views
from tests.waiting import until

POSTS = 600
KEEP = 20


class Poster:
    def __init__(self, log_set: Backends) -> None:
        self.projections = Projections(log_set.log, log_set.broker, max_messages=KEEP)
        self.directory = DemoDirectory()
        self.commands = CommandService(
            log_set.log, self.projections, self.directory, NoAgreements()
        )
        self.n = 0

    async def run(self, username: str, command: dict[str, Any]) -> dict[str, Any]:
        self.n += 1
        who = self.directory.user(f"u_{username}")
        assert who is not None
        cmd = v1.parse_command({"id": f"b-{self.n}", **command})
        return await self.commands.execute(who, cmd)


async def incident_with_posts(p: Poster) -> tuple[str, list[int]]:
    created = await p.run(
        "dispatch",
        {
            "type": "incident.create",
            "title": "Bound",
            "category": "welfare",
            "priority": "normal",
            "orgs": ["harbour-shelter"],
        },
    )
    incident = created["incident"]
    seqs = []
    for i in range(POSTS):
        user = "dispatch" if i % 2 else "outreach"
        body: dict[str, Any] = {"type": "message.post", "incident": incident, "text": f"m{i}"}
        if i == 3:
            body["urgent"] = True  # awaits its acknowledgement: kept in memory
        seqs.append((await p.run(user, body))["seq"])
    return incident, seqs


async def test_messages_in_memory_stay_bounded_and_the_log_answers_past_them(
    log_set: Backends,
) -> None:
    p = Poster(log_set)
    incident, seqs = await incident_with_posts(p)
    state = await p.projections.get(incident)
    assert state is not None
    await until(lambda: state.seq >= seqs[-1], 10, "the projection caught up")
    assert KEEP <= len(state.messages) <= KEEP + KEEP // 8 + 1
    assert seqs[3] in state.messages, "an urgent message awaiting its ack is kept"
    assert seqs[0] not in state.messages
    assert state.lacks_message(seqs[0])
    assert p.projections.stats()["messages"] == len(state.messages)

    # The whole view is the log's: every message, in order, as a rebuild has it.
    whole = await p.projections.whole(incident)
    assert whole is not None
    assert whole is not state
    fresh = await rebuilt(log_set.log, incident)
    assert views(whole) == views(fresh)
    assert [m["text"] for m in views(whole)["harbour-shelter"]["messages"]] == [
        f"m{i}" for i in range(POSTS)
    ]

    # Commands about trimmed messages are decided on the log's state.
    first = seqs[0]  # posted by outreach
    reply = await p.run(
        "dispatch", {"type": "message.post", "incident": incident, "text": "re", "reply_to": first}
    )
    await p.run(
        "outreach", {"type": "message.edit", "incident": incident, "message": first, "text": "m0!"}
    )
    await p.run("dispatch", {"type": "message.ack", "incident": incident, "message": first})
    with pytest.raises(ProtocolError) as refused:  # the log knows it was acknowledged
        await p.run("dispatch", {"type": "message.ack", "incident": incident, "message": first})
    assert refused.value.code.code == "conflict"
    with pytest.raises(ProtocolError) as refused:  # only its author edits it
        await p.run(
            "dispatch",
            {"type": "message.edit", "incident": incident, "message": first, "text": "x"},
        )
    assert refused.value.code.code == "forbidden"
    await p.run("outreach", {"type": "message.retract", "incident": incident, "message": seqs[2]})
    with pytest.raises(ProtocolError) as refused:
        await p.run(
            "outreach",
            {"type": "message.edit", "incident": incident, "message": seqs[2], "text": "y"},
        )
    assert refused.value.code.code == "conflict"
    with pytest.raises(ProtocolError) as refused:  # seq 1 is the creation, not a message
        await p.run("dispatch", {"type": "message.ack", "incident": incident, "message": 1})
    assert refused.value.code.code == "not_found"

    await until(lambda: state.seq >= reply["seq"] + 3, 10, "the follow-ups applied")
    whole = await p.projections.whole(incident)
    assert whole is not None
    assert views(whole) == views(await rebuilt(log_set.log, incident))
    by_seq = {m["seq"]: m for m in views(whole)["None"]["messages"]}
    assert by_seq[first]["text"] == "m0!"
    assert "u_dispatch" in by_seq[first]["acks"]
    assert by_seq[seqs[2]]["retracted"]
    assert by_seq[reply["seq"]]["reply_to"] == first
    assert len(state.messages) <= KEEP + KEEP // 8 + 1


async def test_a_projection_loaded_from_a_long_log_is_bounded_too(log_set: Backends) -> None:
    """A node that loads an incident (a restart, a first follow) trims as it reads."""
    incident, _ = await incident_with_posts(Poster(log_set))
    fresh_node = Projections(log_set.log, log_set.broker, max_messages=KEEP)
    state = await fresh_node.get(incident)
    assert isinstance(state, IncidentState)
    assert len(state.messages) <= KEEP + KEEP // 8 + 1
    whole = await fresh_node.whole(incident)
    assert whole is not None
    assert len(whole.messages) == POSTS
    assert views(whole) == views(await rebuilt(log_set.log, incident))


async def test_no_bound_keeps_every_message(log_set: Backends) -> None:
    p = Poster(log_set)
    p.projections = Projections(log_set.log, log_set.broker, max_messages=0)
    p.commands = CommandService(log_set.log, p.projections, p.directory, NoAgreements())
    incident, _ = await incident_with_posts(p)
    state = await p.projections.get(incident)
    assert state is not None
    await until(lambda: len(state.messages) == POSTS, 10, "every message applied")
    assert await p.projections.whole(incident) is state
