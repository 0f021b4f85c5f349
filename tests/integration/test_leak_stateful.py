"""No content reaches anyone not entitled to it, on any read path (issue 9, test 1).

A Hypothesis state machine drives random commands, visibilities and reads as
random principals of three organisations (police, two NGOs; a dispatcher, a
responder and a supervisor each, and the police's CAD bot) against a real
server on SQLite, and again on two Redis nodes sharing one redis-server.
Every text field carries a unique canary token (``cnry-NNNNNNN``), every
position a unique latitude; the oracle (tests/sharing_oracle.py, written from
the SPEC, not from the server) says who may receive each event.

After every step, each frame every client received since the last step is
scanned: a canary must belong to an event the receiver may see (or be its
own writing), an envelope must be whole for an entitled reader, a bare
placeholder for another participant, absent for a non-participant.
Read paths, each checked against the oracle when the step uses it:

* live ``ev`` to followers; now and then every follower is waited for and must
  hold every seq exactly once, in order, placeholders included;
* resume: a disconnect, writes meanwhile, a new connection (on either node)
  following from the remembered seqs;
* the REST timeline (random pages, and past the head), and filtered by
  ``types`` and ``since``: exactly the events the reader may see that match,
  up to ``scanned_to_seq``, never a placeholder;
* text search (``GET /api/v1/search``), scoped to an incident or across all:
  every hit one the reader may see, shaped as its timeline has it, and a
  post the reader may see is found by its canary;
* exports (JSONL and CSV, server/services/export.py): every envelope checked
  as the timeline's, seq 1 to the head, the bytes scanned like every answer;
* the incident view: messages, tasks, responders (status, position and their
  times, per visibility), ``online`` (own organisation and liaisons only);
* the view as of a seq (``/view?at_seq=``): every canary in it, and at the
  head the same checks as the view;
* contacts (``GET /api/v1/incidents/{id}/contacts``): exactly each joined
  organisation's liaison with its phone number, no other number; bots only
  ones the reader's checked view shows acting; an outsider refused like a
  missing incident. ``GET /api/v1/users``: numbers of one's own organisation
  only. Every user has a unique number, and every other answer and frame is
  scanned for all of them;
* the exports of protocol/INTEGRATIONS.md (CAP, EIDO, CoT): every canary in
  them one the reader may read; an outsider refused like a missing incident;
* the incident list: who is listed, ``updated`` as the reader's own, the
  order, ``q``, ``status`` and ``updated_after`` polling;
* the answers to commands, over Socket.IO and ``POST /api/v1/commands``:
  refusals echo nothing restricted, and an incident one does not take part
  in, or a message or task one may not see (or a seq of another kind), is
  answered exactly like a missing one (follow, view, timeline and writes);
* the cross-incident feed (``GET /api/v1/feed``, SPEC 22), from each
  principal's cursor in random pages and kinds, ``event`` always among them:
  no entry at all for an event the reader may not see (not even a
  placeholder), every envelope checked as the timeline's, and per incident
  no duplicate and, once a read reaches the head, no event it may see missed
  since its organisation joined; the Web Push payload each ``needs_you``
  entry makes (server/domain/push.py, SPEC 26: the dispatcher reads the same
  feed) scanned for canaries the reader may not read;
* suggested assignees (``/suggestions``, SPEC 27.4), for the incident or a
  task: the organisations and people the reader may rank, each with only the
  status and distance of what it may see (a hidden task: like a missing one);
* archiving (SPEC 25): now and then an incident is closed and a retention run
  archives it (policy ``default``, 0 days; the scheduled job is off); each
  participating supervisor's live export is kept just before. Then: every read
  and write answers ``archived`` to a participant and a missing incident's
  answer to anyone else; its export (supervisors) is the live one, envelope
  for envelope, under the same agreements; the creator's retried
  ``incident.create`` is ``archived``, never a new incident; search finds
  nothing of it; a supervisor's tombstone list holds exactly the archived
  incidents its organisation took part in, without ``closed_ms`` and
  ``archived_by``; the incident list no longer shows it;
* the capacity board (SPEC 27.2): notes carry canaries, published by whoever
  may; the board, its changes and an organisation's history as every partner
  sees them, and a capacity note never on an incident's read path;
* webhooks: each organisation has a subscription to a receiver of the test's
  (deploy/examples/webhook_receiver.py, signatures checked); what it gets is
  checked as for a reader of that organisation who is nobody's RED recipient,
  and must come in seq order per incident.

Budget: one world (server, one connected client per principal) serves many
Hypothesis runs of a few hundred steps each (one example cannot hold many
more: Hypothesis bounds the choices per example), until ``LIAISON_LEAK_STEPS``
steps (10,000 by default; 2,000 on Redis) have run. ``make soak`` runs
``LIAISON_SOAK_STEPS`` (200,000; a fifth on Redis) with a random seed. Runs are
seeded (``hypothesis.seed``, fixed by default, so ``make test`` repeats the
same commands and reads); the seed is printed on failure and
``LIAISON_LEAK_SEED=<n>`` repeats it (live interleavings are not repeatable).
No shrinking: the world is not reset between runs, so a shrunk example would
not replay. The first failure is reported as it happened, with the last
actions, each connection's state and the server's log.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from liaison_client import CommandFailed, LiaisonClient
from server.domain import push
from tests.conftest import ADMIN_PASSWORD, DEMO_PASSWORD, LiaisonServer
from tests.integration.leak_world import (
    Archived,
    Hook,
    Leak,
    Seat,
    World,
    blank_numbers,
    check_summary,
    check_view,
    login,
    rest,
    rest_post,
    same_shape,
)
from tests.integration.test_multinode import start_nodes
from tests.integration.webhook_endpoint import Endpoint
from tests.redis_server import RedisServer
from tests.sharing_oracle import (
    AGREEMENTS,
    ARCHIVE_EXPORTERS,
    ASSIGNABLE_ROLES,
    REDACTED_MARK,
    SCOPED_BOT,
    TOMBSTONE_HIDDEN,
    EventMeta,
    Grant,
    IncidentFacts,
    MessageFacts,
    Reader,
    Visibility,
    distance_km,
    lists_tombstone,
    mention_outsiders,
    normalise,
    reply_visibility,
    responders_for,
    sees,
    set_agreements,
    suggestable,
    suggestion_orgs,
    updated_for,
    visible_online,
)
from tests.waiting import until_true

T = TypeVar("T")
POLICE, SHELTER, WILDLIFE = "metro-police", "harbour-shelter", "city-wildlife"
ORGS = (POLICE, SHELTER, WILDLIFE)
#: username, org, role. The first seven are the demo's; the wildlife trust is made here.
USERS = (
    ("dispatch", POLICE, "dispatcher"),
    ("officer", POLICE, "responder"),
    ("sergeant", POLICE, "supervisor"),
    ("cad-bot", POLICE, "bot"),
    ("shelter-lead", SHELTER, "dispatcher"),
    ("outreach", SHELTER, "responder"),
    ("shelter-super", SHELTER, "supervisor"),
    ("wild-lead", WILDLIFE, "dispatcher"),
    ("ranger", WILDLIFE, "responder"),
    ("wild-super", WILDLIFE, "supervisor"),
)
COORDINATORS = {"dispatcher", "supervisor", "admin", "bot"}
TITLE_PREFIX = "Leak probe"
MISSING = "inc_00000000deadbeef"
#: Every status but ``closed``, which would end the incident's writes.
STATUSES = ("reported", "active", "contained", "resolved")
SUBJECT_KINDS = (
    "message.post",
    "message.edit",
    "message.ack",
    "message.retract",
    "task.assign",
    "task.accept",
    "task.complete",
    "task.cancel",
)
TRANSITIONS = ("task.accept", "task.decline", "task.start", "task.complete", "task.cancel")
STEPS_PER_RUN = 150
#: Incidents per run: enough to mix participants, few enough to share history.
MAX_INCIDENTS = 6
#: Archived incidents per run (the run's own count: a bound on the world's
#: would make a run's draws depend on earlier runs, which Hypothesis refuses).
MAX_ARCHIVED = 2
#: The suite's run takes well under a minute; a soak takes what it takes.
TIMEOUT_S = 0 if os.environ.get("LIAISON_SOAK_STEPS") else 600
#: The oracle models what the test's commands store, not what the server's
#: deadline rules append by themselves (escalations, missed check-ins): a
#: day's deadlines keep them out of a run. Their sharing is the subject's
#: (tests/unit/test_deadlines.py, tests/integration/test_deadlines.py).
NO_DEADLINES = {
    "LIAISON_DEADLINE_URGENT_ACK_S": "86400",
    "LIAISON_DEADLINE_TASK_ACK_S": "86400",
    # Retention runs only when the test asks (``_archive``): the default policy
    # archives a closed incident at once, and ``_closed`` reopens its own.
    "LIAISON_RETENTION_POLL_S": "0",
}
#: The incidents' location (``_create``), from which suggestions measure distance.
LOCATION = (51.5, -0.07)
#: Weighted actions: writes mostly, a read in about one step of three, the
#: expensive ones (reconnect, waiting for every follower) rarely.
ACTIONS = (
    ["create"] * 2
    + ["update"] * 2
    + ["status"]
    + ["closed"]
    + ["post"] * 12
    + ["follow_up_message:message.edit"] * 2
    + ["follow_up_message:message.ack"] * 3
    + ["follow_up_message:message.retract"]
    + ["create_task"] * 3
    + ["follow_up_task:task.assign"] * 2
    + [f"follow_up_task:{kind}" for kind in TRANSITIONS]
    + ["responder:responder.status"] * 2
    + ["responder:responder.position"] * 2
    + ["follow"] * 5
    + ["timeline"] * 5
    + ["filtered_timeline"] * 2
    + ["search"] * 2
    + ["export"] * 2
    + ["view"] * 4
    + ["view_at"] * 2
    + ["contacts"]
    + ["standards_export"]
    + ["list"] * 2
    + ["feed"]
    + ["wrong_subject"] * 2
    + ["resume"]
    + ["sync"]
    + ["agreement"]
    + ["suggestions"] * 2
    + ["archive"]
    + ["archived_read"] * 2
    + ["capacity"]
)


# ------------------------------------------------------------------ the machine


class LeakMachine(RuleBasedStateMachine):
    """One Hypothesis run: a few hundred steps in the shared world."""

    world: World  # set on the class by the test

    def __init__(self) -> None:
        super().__init__()
        self.w = self.world
        self.w.runs += 1
        self.prefix = f"{TITLE_PREFIX} r{self.w.runs} "  # what the list's q finds
        self.mine: list[str] = []  # incidents of this run
        self.gone: list[str] = []  # incidents of this run it had archived
        #: This step's writes go over ``POST /api/v1/commands``, not Socket.IO.
        self.via_rest = False

    @rule(data=st.data(), action=st.sampled_from(ACTIONS))
    def step(self, data: st.DataObject, action: str) -> None:
        """One weighted action (Hypothesis picks rules uniformly; weights need one rule)."""
        if not self.mine and action != "create":
            action = "create"
        elif action == "create" and len(self.mine) >= MAX_INCIDENTS:
            action = "post"
        self.w.steps += 1
        self.w.log.append(action)
        name, _, kind = action.partition(":")
        self.via_rest = data.draw(st.integers(0, 4), label="writes over REST") == 0
        method = getattr(self, f"_{name}")
        self.w.run(method(data, kind) if kind else method(data))

    @invariant()
    def nothing_leaked(self) -> None:
        """Every byte each client received since the last step, against the oracle."""
        try:
            self.w.drain_all()
        except BaseException as exc:
            self.w.failed(exc)
            raise

    def teardown(self) -> None:
        """A last exactly-once check, then stop following this run's incidents."""
        self.w.run(self.settle(list(self.w.seats.values())))
        for seat in self.w.seats.values():
            for incident_id in self.mine:
                if incident_id in seat.client.positions:
                    self.w.run(seat.client.unfollow(incident_id))

    # ----------------------------------------------------------- helpers

    def pick(self, data: st.DataObject, items: list[T] | tuple[T, ...], label: str) -> T:
        return items[data.draw(st.integers(0, len(items) - 1), label=label)]

    def incident(self, data: st.DataObject) -> IncidentFacts:
        return self.w.incidents[self.pick(data, self.mine, "incident")]

    def seat(
        self, data: st.DataObject, incident: IncidentFacts | None = None, away: str = ""
    ) -> Seat:
        """A random principal; mostly a participant of ``incident`` if one is given."""
        users = [u for u in self.w.seats if u != away]
        if incident is not None and data.draw(st.integers(0, 9), label="insider") < 8:
            users = [u for u in users if incident.takes_part(self.w.org_of[u])] or users
        return self.w.seats[self.pick(data, users, "actor")]

    def visibility(self, data: st.DataObject, incident: IncidentFacts) -> list[str] | None:
        choice = data.draw(st.integers(0, 9), label="visibility kind")
        if choice < 4:
            return None
        orgs = list(ORGS if choice == 9 else incident.joined)  # 9: perhaps a non-participant
        picked: list[str] = data.draw(st.lists(st.sampled_from(orgs), unique=True, max_size=3))
        return picked

    async def send(
        self, seat: Seat, command: dict[str, Any], canaries: set[str]
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """Send as ``seat``: (ack, None) or (None, error). Canaries it carries are its own."""
        seat.own |= canaries
        try:
            if self.via_rest:
                ack = await self.rest_command(seat, command)
            else:
                ack = await seat.client.send(command)
        except CommandFailed as failure:
            self.w.stats[f"refused {command['type']} {failure.code}"] += 1
            return None, failure.error
        self.w.stats[f"stored {command['type']}"] += 1
        return ack, None

    async def rest_command(self, seat: Seat, command: dict[str, Any]) -> dict[str, Any]:
        """``POST /api/v1/commands``: the REST write path, its answer scanned like an ack."""
        command.setdefault("id", uuid.uuid4().hex)
        client = seat.client
        await client.fresh_token()
        http = await client._session()
        headers = {"Authorization": f"Bearer {client.token}"}
        async with http.post(
            client.base_url + "/api/v1/commands", json=command, headers=headers
        ) as resp:
            text, status = await resp.text(), resp.status
        self.w.scan(seat, text, f"POST {command['type']}")
        body: dict[str, Any] = json.loads(text)
        if status >= 400:
            raise CommandFailed(body["error"])
        self.w.stats["writes over REST"] += 1
        return body

    async def outsider(self, seat: Seat, command: dict[str, Any]) -> None:
        """A non-participant's command must be answered exactly like one on a missing incident."""
        _, error = await self.send(seat, command, set())
        if error is None:
            raise Leak(f"{seat.reader} wrote to {command['incident']}, not a participant")
        probe = {k: v for k, v in command.items() if k != "id"} | {"incident": MISSING}
        _, missing = await self.send(seat, probe, set())
        assert missing is not None
        if error["code"] != "not_found" or same_shape(error, command["incident"]) != same_shape(
            missing, MISSING
        ):
            raise Leak(f"outsider told apart from missing: {error} vs {missing}")

    async def hidden(
        self,
        seat: Seat,
        command: dict[str, Any],
        subject: str,
        ack: dict[str, Any] | None,
        error: dict[str, Any] | None,
    ) -> None:
        """A subject the sender may not see is answered exactly like one that does not exist."""
        self.must_refuse(ack, error, None, f"its {subject} is hidden from the sender")
        probe = {k: v for k, v in command.items() if k != "id"} | {subject: 999_999}
        _, missing = await self.send(seat, probe, set())
        assert missing is not None
        if blank_numbers(error) != blank_numbers(missing):
            raise Leak(f"hidden {subject} told apart from a missing one: {error} vs {missing}")
        self.w.stats[f"hidden {subject} probes"] += 1

    def must_refuse(
        self, ack: dict[str, Any] | None, error: dict[str, Any] | None, code: str | None, why: str
    ) -> None:
        if ack is not None:
            raise Leak(f"accepted although {why}: {ack}")
        assert error is not None
        if code is not None and error["code"] != code:
            raise Leak(f"{why}: answered {error['code']}, the SPEC says {code}: {error}")

    async def write(
        self,
        seat: Seat,
        incident: IncidentFacts,
        command: dict[str, Any],
        canaries: set[str],
        meta: dict[str, Any],
        refuse: tuple[str | None, str] | None = None,
    ) -> EventMeta | None:
        """Send an incident-scoped write; record it if stored; check predicted refusals."""
        command = {"incident": incident.id, **command}
        if not incident.takes_part(seat.reader.org):
            await self.outsider(seat, command)
            return None
        ack, error = await self.send(seat, command, canaries)
        if refuse is not None and refuse[0] and refuse[0].startswith("hidden:"):
            await self.hidden(seat, command, refuse[0].removeprefix("hidden:"), ack, error)
            return None
        if refuse is not None:
            self.must_refuse(ack, error, *refuse)
            return None
        if ack is None:
            return None
        base = {"type": EVENT_OF[command["type"]], "cid": command["id"], "actor": seat.reader.user}
        return self.w.record(
            incident, ack, {**base, "actor_org": seat.reader.org, **meta}, canaries
        )

    # ----------------------------------------------------------- commands

    async def _create(self, data: st.DataObject) -> None:
        seat = self.seat(data)
        orgs = data.draw(st.lists(st.sampled_from(ORGS), unique=True, max_size=3), label="orgs")
        own = seat.reader.org
        joined = [own, *(o for o in orgs if o != own)]
        lead = self.pick(data, joined, "lead")
        liaisons = {
            u_org: user
            for user, u_org in self.w.org_of.items()
            if u_org in joined and data.draw(st.integers(0, 4), label="liaison") == 0
        }
        title, desc, addr = self.w.canary(), self.w.canary(), self.w.canary()
        command = {
            "type": "incident.create",
            "title": f"{self.prefix}{title}",
            "category": "welfare",
            "orgs": orgs,
            "lead_org": lead,
            "liaisons": liaisons,
            "description": f"details {desc}",
            "location": {"lat": LOCATION[0], "lon": LOCATION[1], "address": f"at {addr}"},
        }
        ack, _ = await self.send(seat, command, {title, desc, addr})
        if ack is None:
            assert seat.reader.role not in COORDINATORS, "a coordinator's create was refused"
            return
        incident = IncidentFacts(
            ack["incident"],
            dict.fromkeys(joined, 1),
            liaisons,
            f"{self.prefix}{title}",
            lead=lead,
            location=LOCATION,
        )
        self.w.incidents[incident.id] = incident
        self.mine.append(incident.id)
        meta = {"type": "incident.created", "cid": command["id"], "actor": seat.reader.user}
        self.w.record(
            incident, ack, {**meta, "actor_org": own, "visibility": None}, {title, desc, addr}
        )

    async def _update(self, data: st.DataObject) -> None:
        incident = self.incident(data)
        seat = self.seat(data, incident)
        newcomers = [o for o in ORGS if not incident.takes_part(o)]
        add = (
            data.draw(st.lists(st.sampled_from(newcomers), unique=True), label="add_orgs")
            if newcomers
            else []
        )
        liaisons = {
            u_org: user
            for user, u_org in self.w.org_of.items()
            if u_org in add and data.draw(st.integers(0, 2), label="liaison") == 0
        }
        desc = self.w.canary()
        command: dict[str, Any] = {
            "type": "incident.update",
            "add_orgs": add,
            "liaisons": liaisons,
            "description": f"now {desc}",
        }
        title = self.w.canary() if data.draw(st.booleans(), label="retitle") else None
        if title:
            command["title"] = f"{self.prefix}{title}"
        canaries = {desc, *([title] if title else [])}
        ev = await self.write(seat, incident, command, canaries, {"visibility": None})
        if ev is not None:
            for org in add:
                incident.joined[org] = ev.seq
            incident.liaisons.update(liaisons)
            if title:
                incident.title = f"{self.prefix}{title}"
            self.w.stats["organisations added later"] += len(add)

    async def _status(self, data: st.DataObject) -> None:
        incident = self.incident(data)
        seat = self.seat(data, incident)
        status = self.pick(data, STATUSES, "status")
        note = self.w.canary()
        command = {"type": "incident.status", "status": status, "note": f"now {note}"}
        ev = await self.write(seat, incident, command, {note}, {"visibility": None})
        if ev is not None:
            incident.status = status

    async def _closed(self, data: st.DataObject) -> None:
        """Close, probe, reopen: a closed incident is ``conflict`` to participants only;
        an outsider still gets the missing incident's answers."""
        incident = self.incident(data)
        coordinators = [
            u
            for u, seat in self.w.seats.items()
            if incident.takes_part(seat.reader.org) and seat.reader.role in COORDINATORS
        ]
        seat = self.w.seats[self.pick(data, coordinators, "closer")]
        note = self.w.canary()
        command = {"type": "incident.status", "status": "closed", "note": f"closed {note}"}
        if await self.write(seat, incident, command, {note}, {"visibility": None}) is None:
            return
        previous, incident.status = incident.status, "closed"
        for _ in range(data.draw(st.integers(1, 3), label="probes")):
            prober = self.seat(data, incident)
            text = self.w.canary()
            post = {"type": "message.post", "text": f"closed? {text}"}
            await self.write(prober, incident, post, {text}, {}, ("conflict", "it is closed"))
            if not incident.takes_part(prober.reader.org):
                path = f"/api/v1/incidents/{incident.id}"
                await self.outsider_read(prober, path, incident.id)
        reopen = {"type": "incident.status", "status": previous}
        assert await self.write(seat, incident, reopen, set(), {"visibility": None})
        incident.status = previous
        self.w.stats["closed and reopened"] += 1

    async def _post(self, data: st.DataObject, away: str = "") -> None:
        incident = self.incident(data)
        seat = self.seat(data, incident, away)
        sent = self.visibility(data, incident)
        vis = normalise(sent, seat.reader.org)
        text = self.w.canary()
        command: dict[str, Any] = {
            "type": "message.post",
            "text": f"msg {text}",
            "visibility": sent,
            "urgent": data.draw(st.booleans(), label="urgent"),
        }
        refuse: tuple[str | None, str] | None = None
        if vis is not None and any(not incident.takes_part(o) for o in vis):
            refuse = ("invalid", "the visibility names a non-participant")
        parent = None
        label: str = "AMBER"
        recipients: tuple[str, ...] = ()
        reply = data.draw(st.booleans(), label="reply")
        if incident.messages and reply:
            parent = self.pick(data, sorted(incident.messages), "reply_to")
            command["reply_to"] = parent
            if not sees(incident.events[parent], seat.reader, incident):
                refuse = ("hidden:reply_to", "the parent is hidden from the author")
            else:
                vis = reply_visibility(incident.messages[parent].visibility, vis)
                label, recipients = inherited_label(incident.events[parent], seat.reader.user)
        chosen = data.draw(st.integers(0, 11), label="tlp")
        if parent is None and chosen >= 8:  # SPEC 9.4: a label chosen, no mentions
            label = ("GREEN", "CLEAR", "AMBER+STRICT", "RED")[chosen - 8]
            command["tlp"] = label
            if label == "AMBER+STRICT" and vis is None:
                refuse = refuse or ("invalid", "AMBER+STRICT names its organisations")
            if label == "RED":
                named: list[str] = data.draw(
                    st.lists(st.sampled_from(sorted(self.w.org_of)), min_size=1, max_size=2)
                )
                command["recipients"] = named
                recipients = tuple(dict.fromkeys(named))
                theirs = {seat.reader.org, *(self.w.org_of[name] for name in recipients)}
                if any(not incident.takes_part(self.w.org_of[name]) for name in recipients):
                    refuse = refuse or ("invalid", "a RED recipient does not take part")
                elif vis is not None and not theirs <= set(vis):
                    refuse = refuse or ("invalid", "the visibility leaves out a recipient")
                elif vis is None:
                    vis = tuple(sorted(theirs))
        elif data.draw(st.booleans(), label="mention"):
            user = self.pick(data, list(self.w.org_of), "mentioned user")
            orgs = data.draw(
                st.lists(st.sampled_from(list(incident.joined)), max_size=2, unique=True)
            )
            command["mentions"] = {"users": [user], "orgs": orgs}
            if not incident.takes_part(self.w.org_of[user]):
                refuse = refuse or ("invalid", "a mentioned user does not take part")
            elif mention_outsiders(vis, [self.w.org_of[user], *orgs]):
                refuse = refuse or ("invalid", "a mention outside the visibility")
        meta = {"visibility": vis, "label": label, "recipients": recipients}
        ev = await self.write(seat, incident, command, {text}, meta, refuse)
        if ev is not None:
            incident.messages[ev.seq] = MessageFacts(seat.reader.user, vis, f"msg {text}")
            self.w.stats[f"stored {label} posts"] += 1

    async def _follow_up_message(self, data: st.DataObject, kind: str) -> None:
        incident = self.incident(data)
        if not incident.messages:
            return
        seq = self.pick(data, sorted(incident.messages), "message")
        message = incident.messages[seq]
        author = self.w.seats[message.author]
        seat = (
            author if data.draw(st.integers(0, 2), label="by author") else self.seat(data, incident)
        )
        command: dict[str, Any] = {"type": kind, "message": seq}
        canaries: set[str] = set()
        if kind == "message.edit":
            token = self.w.canary()
            command["text"] = f"edit {token}"
            canaries.add(token)
        if data.draw(st.integers(0, 5), label="odd visibility") == 0:
            command["visibility"] = self.visibility(data, incident)
        refuse: tuple[str | None, str] | None = None
        if not sees(incident.events[seq], seat.reader, incident):
            refuse = ("hidden:message", "the message is hidden from the sender")
        ev = await self.write(
            seat,
            incident,
            command,
            canaries,
            {"visibility": message.visibility, "subject": seq},
            refuse,
        )
        if ev is None:
            return
        if kind == "message.edit":
            message.text = command["text"]
        elif kind == "message.retract":
            message.retracted = True
        else:
            message.acks.add(seat.reader.user)

    async def _create_task(self, data: st.DataObject) -> None:
        incident = self.incident(data)
        seat = self.seat(data, incident)
        sent = self.visibility(data, incident)
        vis = normalise(sent, seat.reader.org)
        title, details = self.w.canary(), self.w.canary()
        command: dict[str, Any] = {
            "type": "task.create",
            "title": f"task {title}",
            "details": f"do {details}",
            "visibility": sent,
        }
        assignee = self.assignee(data, incident, vis)
        if assignee:
            command["assignee"] = assignee
        refuse: tuple[str | None, str] | None = None
        if vis is not None and any(not incident.takes_part(o) for o in vis):
            refuse = ("invalid", "the visibility names a non-participant")
        ev = await self.write(
            seat, incident, command, {title, details}, {"visibility": vis}, refuse
        )
        if ev is not None:
            incident.tasks[ev.seq] = (vis, self.assignee_org(assignee))

    def assignee(
        self, data: st.DataObject, incident: IncidentFacts, vis: Visibility
    ) -> dict[str, str] | None:
        """Mostly a participant within ``vis``; sometimes anyone (the server must refuse)."""
        kind = data.draw(st.integers(0, 3), label="assignee kind")
        orgs = [o for o in incident.joined if vis is None or o in vis] or list(incident.joined)
        if kind == 0:
            return None
        if kind == 1:
            return {"org": self.pick(data, orgs, "assignee org")}
        users = [u for u, o in self.w.org_of.items() if o in orgs or kind == 3]
        return {"user": self.pick(data, users, "assignee user")}

    async def _wrong_subject(self, data: st.DataObject) -> None:
        """A seq that is no message (task) the sender may see: answered like a missing one."""
        incident = self.incident(data)
        seat = self.seat(data, incident)
        kind = self.pick(data, SUBJECT_KINDS, "kind")
        field = "reply_to" if kind == "message.post" else kind.split(".")[0]
        table: dict[int, Any] = incident.tasks if field == "task" else incident.messages
        wrong = [
            seq
            for seq, ev in incident.events.items()
            if seq not in table or not sees(ev, seat.reader, incident)
        ]
        seq = self.pick(data, sorted(wrong), "wrong subject")
        command: dict[str, Any] = {"type": kind, field: seq}
        token = self.w.canary()
        if kind in ("message.post", "message.edit"):
            command["text"] = f"probe {token}"
        if kind == "task.assign":
            command["assignee"] = {"org": seat.reader.org}
        why = f"{field} {seq} is no {field} the sender may see"
        await self.write(seat, incident, command, {token}, {}, (f"hidden:{field}", why))

    async def _follow_up_task(self, data: st.DataObject, kind: str) -> None:
        incident = self.incident(data)
        if not incident.tasks:
            return
        task = self.pick(data, sorted(incident.tasks), "task")
        vis, assigned = incident.tasks[task]
        seat = self.seat(data, incident)
        if assigned and kind != "task.assign" and data.draw(st.booleans(), label="by assignee"):
            members = [u for u, org in self.w.org_of.items() if org == assigned]
            seat = self.w.seats[self.pick(data, members, "assignee member")]
        command: dict[str, Any] = {"type": kind, "task": task}
        canaries: set[str] = set()
        if kind == "task.assign":
            command["assignee"] = self.assignee(data, incident, vis) or {"org": seat.reader.org}
        else:
            token = self.w.canary()
            command["note"] = f"note {token}"
            canaries.add(token)
        refuse: tuple[str | None, str] | None = None
        if not sees(incident.events[task], seat.reader, incident):
            refuse = ("hidden:task", "the task is hidden from the sender")
        ev = await self.write(
            seat, incident, command, canaries, {"visibility": vis, "subject": task}, refuse
        )
        if ev is not None and kind == "task.assign":
            incident.tasks[task] = (vis, self.assignee_org(command["assignee"]))

    def assignee_org(self, assignee: dict[str, str] | None) -> str | None:
        if not assignee:
            return None
        return assignee.get("org") or self.w.org_of[assignee["user"]]

    async def _responder(self, data: st.DataObject, kind: str) -> None:
        incident = self.incident(data)
        seat = self.seat(data, incident)
        sent = self.visibility(data, incident)
        vis = normalise(sent, seat.reader.org)
        # A unique position per event: the view must show the one the reader may see.
        self.w.counter += 1
        lat, lon = (
            round(10 + self.w.counter / 1e5, 5),
            round(data.draw(st.integers(-1000, 1000)) / 100, 2),
        )
        position = {"lat": lat, "lon": lon, "accuracy_m": None}
        command: dict[str, Any] = {"type": kind, "visibility": sent}
        meta: dict[str, Any] = {"visibility": vis, "position": position}
        if kind == "responder.status":
            status = self.pick(data, ("available", "en_route", "on_scene", "unavailable"), "status")
            command["status"] = status
            meta["status"] = status
            if data.draw(st.booleans(), label="with position"):
                command["position"] = {"lat": lat, "lon": lon}
            else:
                meta["position"] = None
        else:
            command |= {"lat": lat, "lon": lon}
        refuse: tuple[str | None, str] | None = None
        if vis is not None and any(not incident.takes_part(o) for o in vis):
            refuse = ("invalid", "the visibility names a non-participant")
        await self.write(seat, incident, command, set(), meta, refuse)

    # ----------------------------------------------------------- reads

    async def _follow(self, data: st.DataObject) -> None:
        incident = self.incident(data)
        seat = self.seat(data, incident)
        if incident.id in seat.client.positions:
            return
        if incident.takes_part(seat.reader.org):
            result = await seat.client.follow(incident.id)
            assert result["status"] == "ok", result
            self.w.stats["follows"] += 1
            return
        after = data.draw(st.integers(0, incident.head + 2), label="outsider after_seq")
        result = await seat.client.follow(incident.id, after_seq=after)
        missing = await seat.client.follow(MISSING, after_seq=after)
        if same_shape(result, incident.id) != same_shape(missing, MISSING):
            raise Leak(f"follow: outsider told apart from missing: {result} vs {missing}")
        self.w.stats["outsider follows"] += 1

    async def _resume(self, data: st.DataObject) -> None:
        seat = self.seat(data)
        user = seat.reader.user
        await seat.client.sio.disconnect()
        for _ in range(data.draw(st.integers(0, 3), label="posts while away")):
            await self._post(data, away=user)
        await self.w.move(user, self.pick(data, self.w.urls, "node"))
        await self.settle([self.w.seats[user]])
        self.w.stats["resumes"] += 1

    async def _sync(self, data: st.DataObject) -> None:
        """Every follower holds every event, exactly once, in order; ``online`` is exact."""
        await self.settle(list(self.w.seats.values()))
        await self._presence(data)

    async def _agreement(self, data: st.DataObject) -> None:
        """An organisation's admin makes or revokes a sharing agreement (SPEC 9.4).

        Everything delivered so far is checked under the old agreements first;
        the change is then awaited on every node before the oracle moves on.
        """
        owner = self.pick(data, ORGS, "owner")
        admin = self.w.admins[owner]
        await self.settle(list(self.w.seats.values()))
        mine = sorted(a for a, g in AGREEMENTS.items() if g.owner == owner)
        agreements = dict(AGREEMENTS)
        # Everything is drawn whatever the world holds, in one order: Hypothesis
        # needs the same kinds of draws when it replays a choice sequence, and
        # which agreements exist is state shared across its examples.
        revoke = data.draw(st.booleans(), label="revoke")
        which = data.draw(st.integers(0, 7), label="revoked")
        recipient = [o for o in ORGS if o != owner][data.draw(st.integers(0, 1), label="to")]
        position, history = ((True, False), (False, True), (True, True))[
            data.draw(st.integers(0, 2), label="what it shares")
        ]
        if revoke and mine:
            agreement_id = mine[which % len(mine)]
            await admin.request("POST", f"/api/v1/agreements/{agreement_id}/revoke")
            del agreements[agreement_id]
            in_force = False
            self.w.stats["agreements revoked"] += 1
        else:
            body = {
                "recipients": [recipient],
                "fields": ["position"] if position else [],
                "position": "exact",
                "categories": ["welfare"],
                "history": history,
            }
            made = await admin.request("POST", "/api/v1/agreements", body)
            agreement_id, in_force = made["id"], True
            agreements[agreement_id] = Grant(
                owner, recipient, position, history, frozenset({"welfare"})
            )
            self.w.stats["agreements made"] += 1
        await self.in_force_everywhere(admin, agreement_id, in_force)
        set_agreements(agreements)
        self.w.agreements_changed()

    async def in_force_everywhere(
        self, admin: LiaisonClient, agreement_id: str, in_force: bool
    ) -> None:
        """Every node shows the agreement as ``in_force`` (each reads its own memory)."""
        assert admin.token is not None
        headers = {"Authorization": f"Bearer {admin.token}"}
        http = await admin._session()
        deadline = time.monotonic() + 10
        for url in self.w.urls:
            while True:
                path = f"{url}/api/v1/agreements/{agreement_id}"
                async with http.get(path, headers=headers) as resp:
                    if resp.status == 200 and (await resp.json())["in_force"] == in_force:
                        break
                assert time.monotonic() < deadline, f"{agreement_id} not {in_force} on {url}"
                await asyncio.sleep(0.02)

    async def settle(self, seats: list[Seat]) -> None:
        for seat in seats:
            for incident_id in list(seat.client.positions):
                incident = self.w.incidents[incident_id]
                await seat.client.wait_seq(incident_id, incident.head)
            self.w.drain(seat)
            for incident_id in seat.client.positions:
                got = seat.delivered.get(incident_id, [])
                head = self.w.incidents[incident_id].head
                if got != list(range(1, head + 1)):
                    raise Leak(
                        f"{seat.reader.user} holds {got[:3]}..{got[-3:]} of {incident_id}, "
                        f"head {head}"
                    )
        self.w.stats["settled"] += 1

    async def _presence(self, data: st.DataObject) -> None:
        incident = self.incident(data)
        seat = self.seat(data, incident)
        if not incident.takes_part(seat.reader.org):
            return
        watching = {
            s.reader.user for s in self.w.seats.values() if incident.id in s.client.positions
        }
        expected = visible_online(seat.reader, watching, incident, self.w.org_of)
        deadline = time.monotonic() + 10
        while True:
            view = await self.view(seat, incident)
            if set(view["online"]) == expected:
                return
            if time.monotonic() > deadline:
                raise Leak(f"{seat.reader.user} sees online {view['online']}, expected {expected}")
            await asyncio.sleep(0.05)

    async def _timeline(self, data: st.DataObject) -> None:
        incident = self.incident(data)
        seat = self.seat(data, incident)
        after = data.draw(st.integers(0, incident.head + 1), label="after_seq")
        limit = data.draw(st.integers(1, 40), label="limit")
        path = f"/api/v1/incidents/{incident.id}/timeline?after_seq={after}&limit={limit}"
        if not incident.takes_part(seat.reader.org):
            await self.outsider_read(seat, path, incident.id)
            return
        if after > incident.head:
            status, text = await rest(seat, path)
            self.w.scan(seat, text, f"GET {path}")
            assert status == 416, (status, text)
            assert json.loads(text)["error"]["detail"]["head_seq"] == incident.head, text
            return
        for _ in range(data.draw(st.integers(1, 3), label="pages")):
            page = await self.get(seat, path)
            assert page["head_seq"] == incident.head, (page["head_seq"], incident.head)
            seqs = [env["seq"] for env in page["events"]]
            if seqs != list(range(after + 1, min(after + limit, incident.head) + 1)):
                raise Leak(
                    f"timeline page after {after} limit {limit}: seqs {seqs}, head {incident.head}"
                )
            for env in page["events"]:
                self.w.check_envelope(seat.reader, env, "timeline")
            if page["next_after_seq"] is None:
                break
            after = page["next_after_seq"]
            path = f"/api/v1/incidents/{incident.id}/timeline?after_seq={after}&limit={limit}"

    async def _filtered_timeline(self, data: st.DataObject) -> None:
        """SPEC 18.4: the events the reader may see that pass the filter, no placeholders."""
        incident = self.incident(data)
        seat = self.seat(data, incident)
        families = ("incident.*", "message.*", "task.*", "responder.*")
        exact = tuple(sorted(set(EVENT_OF.values())))
        types = data.draw(st.lists(st.sampled_from(families + exact), max_size=3), label="types")
        since: int | None = None
        if data.draw(st.booleans(), label="since") or not types:
            since = incident.events[self.pick(data, sorted(incident.events), "since seq")].ts - 1
        after = data.draw(st.integers(0, incident.head), label="after_seq")
        limit = data.draw(st.integers(1, 40), label="limit")
        query = f"&types={','.join(types)}" if types else ""
        query += f"&since={since}" if since is not None else ""
        path = f"/api/v1/incidents/{incident.id}/timeline?after_seq={after}&limit={limit}{query}"
        if not incident.takes_part(seat.reader.org):
            await self.outsider_read(seat, path, incident.id)
            return

        def admitted(ev: EventMeta) -> bool:
            typed = not types or ev.type in types or f"{ev.type.split('.')[0]}.*" in types
            return typed and (since is None or ev.ts > since) and sees(ev, seat.reader, incident)

        page = await self.get(seat, path)
        scanned = page["scanned_to_seq"]
        seqs = [env["seq"] for env in page["events"]]
        expected = [q for q in range(after + 1, scanned + 1) if admitted(incident.events[q])]
        if seqs != expected or (len(seqs) < limit and scanned != incident.head):
            raise Leak(
                f"filtered timeline {path} for {seat.reader}: {seqs} up to {scanned},"
                f" expected {expected}, head {incident.head}"
            )
        if page["next_after_seq"] != (scanned if scanned < incident.head else None):
            raise Leak(
                f"filtered timeline {path}: next {page['next_after_seq']}, scanned {scanned}"
            )
        for env in page["events"]:
            if env["type"] == "restricted":
                raise Leak(f"filtered timeline {path}: a placeholder for {seat.reader}: {env}")
            self.w.check_envelope(seat.reader, env, "filtered timeline")

    async def _search(self, data: st.DataObject) -> None:
        """SPEC 18.5: every hit one the reader may see; a visible post is found."""
        # From this run's incidents only: what a draw ranges over must follow
        # from the run's earlier draws (Hypothesis replays prefixes).
        incident = self.incident(data)
        incident_id = incident.id
        seq = self.pick(data, sorted(incident.events), "event")
        canaries = sorted(incident.events[seq].canaries)
        if not canaries:
            return
        token = self.pick(data, canaries, "canary")
        seat = self.seat(data, incident)
        scoped = data.draw(st.integers(0, 3), label="scoped") > 0
        path = f"/api/v1/search?q={token}&limit={data.draw(st.integers(1, 5), label='limit')}"
        if scoped:
            path += f"&incident={incident_id}"
            if not incident.takes_part(seat.reader.org):
                await self.outsider_read(seat, path, incident_id)
                return
        hits: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await self.get(seat, path + (f"&cursor={cursor}" if cursor else ""))
            hits += page["hits"]
            cursor = page["next"]
            if not cursor:
                break
        for hit in hits:
            env = hit["event"]
            if (hit["incident"], hit["seq"]) != (env["incident"], env["seq"]):
                raise Leak(f"search {path}: a hit names another event than it holds: {hit}")
            if env["type"] == "restricted":
                raise Leak(f"search {path}: a placeholder for {seat.reader}: {hit}")
            self.w.check_envelope(seat.reader, env, "search")
        found = {(h["incident"], h["seq"]) for h in hits}
        if len(found) != len(hits):
            raise Leak(f"search {path} for {seat.reader}: a hit twice: {hits}")
        post = incident.messages.get(seq)
        if (
            post is not None
            and token in post.text
            and sees(incident.events[seq], seat.reader, incident)
        ):
            if (incident_id, seq) not in found:
                raise Leak(
                    f"search {path} for {seat.reader}: its post {incident_id}/{seq} not found"
                )
            self.w.stats["posts found by search"] += 1
        self.w.stats["searches"] += 1

    async def _export(self, data: st.DataObject) -> None:
        incident = self.incident(data)
        seat = self.seat(data, incident)
        fmt = data.draw(st.sampled_from(["jsonl", "csv"]), label="format")
        path = f"/api/v1/incidents/{incident.id}/export?format={fmt}"
        if not incident.takes_part(seat.reader.org):
            await self.outsider_read(seat, path, incident.id)
            return
        status, text = await rest(seat, path)
        self.w.scan(seat, text, f"GET {path}")
        assert status == 200, (status, text)
        if fmt == "jsonl":
            lines = [json.loads(line) for line in text.splitlines()]
            envelopes = lines[1:-1]
            if [env["seq"] for env in envelopes] != list(range(1, incident.head + 1)):
                raise Leak(f"export of {incident.id}: seqs {[e['seq'] for e in envelopes]}")
            for env in envelopes:
                self.w.check_envelope(seat.reader, env, "export")
        self.w.stats["exports"] += 1

    async def _view(self, data: st.DataObject) -> None:
        incident = self.incident(data)
        seat = self.seat(data, incident)
        if not incident.takes_part(seat.reader.org):
            await self.outsider_read(seat, f"/api/v1/incidents/{incident.id}", incident.id)
            return
        view = await self.view(seat, incident)
        reader = seat.reader
        check_view(view, incident, reader, self.w.org_of)
        self.w.stats["views"] += 1

    async def _view_at(self, data: st.DataObject) -> None:
        """The view as of a seq (the replay's and the reports' state at T)."""
        incident = self.incident(data)
        seat = self.seat(data, incident)
        seq = data.draw(st.integers(1, max(1, incident.head)), label="as of seq")
        path = f"/api/v1/incidents/{incident.id}/view?at_seq={seq}"
        if not incident.takes_part(seat.reader.org):
            await self.outsider_read(seat, path, incident.id)
            return
        view = await self.get(seat, path)  # every canary in it checked
        if seq == incident.head:  # then it is the whole view, without presence
            view.pop("as_of")
            check_view({**view, "online": []}, incident, seat.reader, self.w.org_of)
        self.w.stats["views as of"] += 1

    async def _contacts(self, data: st.DataObject) -> None:
        """Phone numbers: a liaison's to the incident's participants, nobody else's."""
        incident = self.incident(data)
        seat = self.seat(data, incident)
        reader = seat.reader
        path = f"/api/v1/incidents/{incident.id}/contacts"
        if not incident.takes_part(reader.org):
            await self.outsider_read(seat, path, incident.id)
            return
        liaisons = {o: u for o, u in incident.liaisons.items() if o in incident.joined}
        status, text = await rest(seat, path)
        self.w.scan(seat, text, f"GET {path}", frozenset(liaisons.values()))
        assert status == 200, (status, text)
        answer = json.loads(text)
        got = {(c["org"], c["user"], c["phone"]) for c in answer["liaisons"]}
        want = {(o, u, self.w.phones.get(u)) for o, u in liaisons.items()}
        if got != want:
            raise Leak(f"contacts of {incident.id} for {reader}: {got}, expected {want}")
        view = await self.view(seat, incident)
        check_view(view, incident, reader, self.w.org_of)  # the bots' witness
        acting = {m["author"]["user"] for m in view["messages"]}
        acting |= {t["created_by"] for t in view["tasks"]}
        acting |= {r["user"] for r in view["responders"]} | set(liaisons.values())
        bots = {u for u in acting if self.w.seats.get(u) and self.w.seats[u].reader.role == "bot"}
        if set(answer["bots"]) != bots:
            raise Leak(f"contacts bots of {incident.id} for {reader}: {answer['bots']}, {bots}")
        own = frozenset(u for u, org in self.w.org_of.items() if org == reader.org)
        status, text = await rest(seat, "/api/v1/users")
        self.w.scan(seat, text, "GET /api/v1/users", own)
        assert status == 200, (status, text)
        self.w.stats["contacts"] += 1
        self.w.stats["contacts: numbers shown"] += sum(1 for *_, n in got if n)

    async def _standards_export(self, data: st.DataObject) -> None:
        """The standards' exports (CAP, EIDO, CoT): built from the reader's view, so
        they carry only canaries the reader may read; outsiders get the view's 404."""
        incident = self.incident(data)
        seat = self.seat(data, incident)
        kind = data.draw(st.sampled_from(("eido", "cap", "cot")), label="export")
        path = f"/api/v1/incidents/{incident.id}/{kind}"
        if not incident.takes_part(seat.reader.org):
            await self.outsider_read(seat, path, incident.id)
            return
        status, text = await rest(seat, path)
        self.w.scan(seat, text, f"GET {path}")
        assert status == 200, (status, text)
        self.w.stats[f"exports ({kind})"] += 1

    async def view(self, seat: Seat, incident: IncidentFacts) -> dict[str, Any]:
        return await self.get(seat, f"/api/v1/incidents/{incident.id}")

    async def _list(self, data: st.DataObject) -> None:
        seat = self.seat(data)
        modes = ["one", "all", "status", "since"]
        mode = data.draw(st.sampled_from(modes), label="list filter")
        query = ""
        if mode == "one":
            incident = self.incident(data)
            q = incident.title.split()[-1]  # its title's canary
            wanted = {incident.id} if incident.takes_part(seat.reader.org) else set()
        else:
            org = seat.reader.org
            q, wanted = self.prefix, {i for i in self.mine if self.w.incidents[i].takes_part(org)}
        if mode == "status":
            status = self.pick(data, STATUSES, "status filter")
            query = f"&status={status}"
            wanted = {i for i in wanted if self.w.incidents[i].status == status}
        if mode == "since" and wanted:
            # Polling from a reader's own ``updated`` must not reveal a later
            # restricted event by listing the incident again.
            since = updated_for(
                self.w.incidents[self.pick(data, sorted(wanted), "since")], seat.reader
            )
            query = f"&updated_after={since}"
            wanted = {i for i in wanted if updated_for(self.w.incidents[i], seat.reader) > since}
        order: list[tuple[int, str]] = []
        listed: dict[str, dict[str, Any]] = {}
        cursor = None
        limit = data.draw(st.integers(2, 20), label="limit")
        while True:
            path = f"/api/v1/incidents?q={urllib.parse.quote(q)}&limit={limit}{query}"
            page = await self.get(seat, path + (f"&cursor={cursor}" if cursor else ""))
            listed |= {s["id"]: s for s in page["incidents"] if s["id"] in self.w.incidents}
            order += [(s["updated"], s["id"]) for s in page["incidents"]]
            cursor = page["next"]
            if not cursor:
                break
        if order != sorted(order, reverse=True):
            raise Leak(f"list for {seat.reader} not in its own (updated, id) order: {order}")
        mine = listed
        if set(mine) != wanted:
            raise Leak(
                f"list {query} q={q} for {seat.reader}: {sorted(mine)}, expected {sorted(wanted)}"
            )
        for incident_id, summary in mine.items():
            incident = self.w.incidents[incident_id]
            check_summary(summary, incident, seat.reader, "list")
        self.w.stats["lists"] += 1

    async def _feed(self, data: st.DataObject) -> None:
        seat = self.seat(data)
        # Every draw first, whatever the branch: the same choices must make
        # the same draws (Hypothesis), and the branch depends on the world.
        others = ("incident.opened", "org.added", "incident.changed", "needs_you")
        chosen = [k for k in others if data.draw(st.booleans(), label=k)]
        kinds = ",".join(["event", *chosen])
        limit = data.draw(st.integers(1, 60), label="feed limit")
        pages = data.draw(st.integers(1, 3), label="feed pages")
        user = seat.reader.user
        cursor = self.w.feed_cursors.get(user)
        if cursor is None:  # from now: what was stored before is not the feed's to give
            self.w.feed_cursors[user] = (await self.get(seat, "/api/v1/feed"))["cursor"]
            for incident in self.w.incidents.values():
                self.w.feed_seen[(user, incident.id)] = incident.head
            return
        at_head = False
        for _ in range(pages):
            page = await self.get(seat, f"/api/v1/feed?after={cursor}&kinds={kinds}&limit={limit}")
            for entry in page["entries"]:
                self.check_feed_entry(seat, entry)
            cursor = page["cursor"]
            at_head = not page["more"] and len(page["entries"]) < limit
            if at_head:
                break
        self.w.feed_cursors[user] = cursor
        if at_head:
            self.nothing_missed_by_the_feed(seat)
        self.w.stats["feed reads"] += 1

    def check_feed_entry(self, seat: Seat, entry: dict[str, Any]) -> None:
        reader = seat.reader
        incident = self.w.incidents.get(entry["incident"])
        if incident is None or entry["seq"] not in incident.events:
            raise Leak(f"feed: {reader.user} got an entry the test never stored: {entry}")
        ev = incident.events[entry["seq"]]
        if not sees(ev, reader, incident):
            raise Leak(f"feed: {reader} got an entry for {ev}, which it may not see: {entry}")
        if entry["kind"] != "event":
            self.w.stats[f"feed {entry['kind']}"] += 1
            if entry["kind"] == "needs_you":
                self.w.scan(seat, json.dumps(push.payload(entry)), "push payload")
            return
        self.w.check_envelope(reader, entry["event"], "feed")
        key = (reader.user, incident.id)
        last = self.w.feed_seen.get(key, 0)
        # Before its organisation joined, an event may come or not (the feed
        # gives what the reader may see when it reads), never twice.
        since = max(last, incident.joined[reader.org] - 1)
        missed = [
            s for s in range(since + 1, ev.seq) if self.w.seen_throughout(incident, s, reader)
        ]
        if ev.seq <= last or missed:
            raise Leak(
                f"feed: {reader.user} got seq {ev.seq} of {incident.id} after {last},"
                f" missing {missed}"
            )
        self.w.feed_seen[key] = ev.seq

    def nothing_missed_by_the_feed(self, seat: Seat) -> None:
        """At the head, every event the reader may see (since it joined) came."""
        reader = seat.reader
        for incident in self.w.incidents.values():
            if not incident.takes_part(reader.org) or not seat.client.token:
                continue
            if incident.id in self.w.archived:  # its runs point to no events (SPEC 25.4)
                continue
            last = self.w.feed_seen.get((reader.user, incident.id), 0)
            since = max(last, incident.joined[reader.org] - 1)
            missed = [
                s
                for s in range(since + 1, incident.head + 1)
                if self.w.seen_throughout(incident, s, reader)
            ]
            if missed:
                raise Leak(f"feed: {reader.user} at the head never got {missed} of {incident.id}")

    # ------------------------------------------- suggestions, archive, capacity

    async def _suggestions(self, data: st.DataObject) -> None:
        """SPEC 27.4: candidates, their status and distance only as the reader may see them."""
        incident = self.incident(data)
        seat = self.seat(data, incident)
        task: int | None = None
        for_task = data.draw(st.booleans(), label="for a task")
        if incident.tasks and for_task:
            task = self.pick(data, sorted(incident.tasks), "task")
        needs = data.draw(st.sampled_from(("", "shelter", "first_aid,lang:en")), label="needs")
        query = (
            "limit=100" + (f"&task={task}" if task else "") + (f"&needs={needs}" if needs else "")
        )
        path = f"/api/v1/incidents/{incident.id}/suggestions?{query}"
        if not incident.takes_part(seat.reader.org):
            await self.outsider_read(seat, path, incident.id)
            return
        if task is not None and not sees(incident.events[task], seat.reader, incident):
            # A task the reader may not see: answered exactly like a missing one.
            status, text = await rest(seat, path)
            self.w.scan(seat, text, f"GET {path}")
            m_status, m_text = await rest(seat, path.replace(f"task={task}", "task=999999"))
            got, missing = blank_numbers(json.loads(text)), blank_numbers(json.loads(m_text))
            if (status, got) != (m_status, missing) or status != 404:
                raise Leak(f"GET {path}: hidden task {status} {text}, missing {m_status} {m_text}")
            self.w.stats["suggestions for a hidden task"] += 1
            return
        body = await self.get(seat, path)
        self.check_suggestions(seat.reader, incident, task, body)
        self.w.stats["suggestions"] += 1

    def check_suggestions(
        self, reader: Reader, incident: IncidentFacts, task: int | None, body: dict[str, Any]
    ) -> None:
        where = f"suggestions for {reader} in {incident.id} (task {task})"
        task_vis = incident.tasks[task][0] if task is not None else None
        got = body["suggestions"]
        orgs = {s["id"] for s in got if s["kind"] == "org"}
        if orgs != suggestion_orgs(incident, reader, task_vis):
            raise Leak(
                f"{where}: organisations {orgs},"
                f" expected {suggestion_orgs(incident, reader, task_vis)}"
            )
        seen = responders_for(incident, reader)
        liaisons = set(incident.liaisons.values())
        people = {s["id"]: s for s in got if s["kind"] == "user"}
        for user, s in people.items():
            org = self.w.org_of.get(user)
            if org is None:  # a person the test does not seat: only of the reader's organisation
                if s["org"] != reader.org or (s["status"], s["distance_km"]) != (None, None):
                    raise Leak(f"{where}: an unseated person {s}")
                continue
            if s["org"] != org or not suggestable(user, org, incident, reader, task_vis):
                raise Leak(f"{where}: {user} may not be among them: {s}")
            entry = seen.get(user) or {}
            position = entry.get("position")
            want = (
                None
                if position is None or position == REDACTED_MARK
                else round(distance_km((position["lat"], position["lon"]), LOCATION), 3)
            )
            km = s["distance_km"]
            if s["status"] != entry.get("status") or (km is None) != (want is None):
                raise Leak(f"{where}: {s}, the reader sees {entry}")
            if km is not None and want is not None and abs(km - want) > 0.002:
                raise Leak(f"{where}: {user} at {km} km, the reader sees {want} km ({entry})")
            if s["online"] and org != reader.org and user not in liaisons:
                raise Leak(f"{where}: {user} shown online to another organisation: {s}")
            self.w.stats["suggested people"] += 1
        for user, org in self.w.org_of.items():
            role = self.w.seats[user].reader.role
            if role in ASSIGNABLE_ROLES and suggestable(user, org, incident, reader, task_vis):
                if user not in people:
                    raise Leak(f"{where}: {user} missing from {sorted(people)}")

    async def _archive(self, data: st.DataObject) -> None:
        """Close an incident and run retention (policy: archive at once, SPEC 25.3).

        Each participating supervisor's live export is kept first: its archived
        export must hold exactly that (under the same agreements).
        """
        incident = self.incident(data)
        coordinators = [
            u
            for u, seat in self.w.seats.items()
            if seat.reader.org == incident.lead and seat.reader.role in COORDINATORS
        ]  # SPEC 8: only the lead changes the status
        # Every draw first: which archives the world holds is state shared across
        # Hypothesis's examples, and the same choices must make the same draws.
        now = data.draw(st.integers(0, 1), label="archive now") == 0
        seat = self.w.seats[self.pick(data, coordinators, "closer")]
        if not now or len(self.gone) >= MAX_ARCHIVED:
            return
        await self.settle(list(self.w.seats.values()))
        for other in self.w.seats.values():
            if incident.id in other.client.positions:
                await other.client.unfollow(incident.id)
        note = self.w.canary()
        command = {"type": "incident.status", "status": "closed", "note": f"closed {note}"}
        if await self.write(seat, incident, command, {note}, {"visibility": None}) is None:
            raise AssertionError(f"{seat.reader} could not close {incident.id}")
        incident.status = "closed"
        exports = {
            s.reader.user: await self.live_export(s, incident)
            for s in self.w.seats.values()
            if incident.takes_part(s.reader.org) and s.reader.role in ARCHIVE_EXPORTERS
        }
        assert self.w.deployment is not None
        report = await self.w.deployment.request("POST", "/api/v1/retention/run")
        if [a["incident"] for a in report["archived"]] != [incident.id] or report["failed"]:
            raise AssertionError(f"retention run for {incident.id}: {report}")
        self.mine.remove(incident.id)
        self.gone.append(incident.id)
        self.w.archived[incident.id] = Archived(exports, self.w.generation)
        self.w.stats["archived"] += 1

    async def live_export(self, seat: Seat, incident: IncidentFacts) -> list[dict[str, Any]]:
        """The reader's JSONL export's envelopes, each checked against the oracle."""
        path = f"/api/v1/incidents/{incident.id}/export?format=jsonl"
        status, text = await rest(seat, path)
        self.w.scan(seat, text, f"GET {path}")
        assert status == 200, (status, text)
        envelopes = [json.loads(line) for line in text.splitlines()][1:-1]
        if [env["seq"] for env in envelopes] != list(range(1, incident.head + 1)):
            raise Leak(f"export of {incident.id}: seqs {[e['seq'] for e in envelopes]}")
        for env in envelopes:
            self.w.check_envelope(seat.reader, env, "export")
        return envelopes

    async def _archived_read(self, data: st.DataObject) -> None:
        """Reads of an archived incident (SPEC 25.4): ``archived`` to participants,
        ``not_found`` to others; its export as the live one; the tombstones listed."""
        if not self.gone:
            return
        incident = self.w.incidents[self.pick(data, self.gone, "archived incident")]
        seat = self.seat(data, incident)
        kinds = ("export", "read", "write", "recreate", "search", "follow", "tombstones")
        kind = data.draw(st.sampled_from(kinds), label="archived read")
        reads = ("", "/timeline", "/view?at_seq=1", "/suggestions", "/cap", "/export?format=csv")
        sub = self.pick(data, reads, "archived path")
        reader = seat.reader
        inside = incident.takes_part(reader.org)
        self.w.stats[f"archived reads ({kind})"] += 1
        if kind == "tombstones":
            await self.tombstones(seat)
        elif kind == "search":
            await self.archived_search(data, seat, incident)
        elif kind in ("write", "recreate"):
            await self.archived_write(seat, incident, kind)
        elif kind == "follow":
            result = await seat.client.follow(incident.id)
            if inside and (result["status"], result.get("detail", {}).get("incident")) != (
                "archived",
                incident.id,
            ):
                raise Leak(f"follow of archived {incident.id} by {reader}: {result}")
            missing = await seat.client.follow(MISSING)
            if not inside and same_shape(result, incident.id) != same_shape(missing, MISSING):
                raise Leak(f"follow: outsider told an archived one from missing: {result}")
        elif not inside:
            export = "/export?format=jsonl"
            await self.outsider_read(
                seat,
                f"/api/v1/incidents/{incident.id}{export if kind == 'export' else sub}",
                incident.id,
            )
        elif kind == "export":
            await self.archived_export(seat, incident)
        else:
            path = f"/api/v1/incidents/{incident.id}{sub}"
            status, text = await rest(seat, path)
            self.w.scan(seat, text, f"GET {path}")
            if sub.startswith("/export"):  # from the archive, to its exporters only
                expected = 200 if reader.role in ARCHIVE_EXPORTERS else 403
                if status != expected:
                    raise Leak(f"GET {path} by {reader}: {status} {text[:300]}")
            else:
                self.must_be_archived(status, text, incident, f"GET {path} by {reader}")

    def must_be_archived(self, status: int, text: str, incident: IncidentFacts, where: str) -> None:
        error = json.loads(text).get("error", {})
        if (status, error.get("code"), error.get("detail", {}).get("incident")) != (
            410,
            "archived",
            incident.id,
        ):
            raise Leak(f"{where}: {status} {text[:300]}, the SPEC says archived (410)")

    async def archived_export(self, seat: Seat, incident: IncidentFacts) -> None:
        """SPEC 25.4: shaped for the reader as a live export; only for supervisors and admins."""
        path = f"/api/v1/incidents/{incident.id}/export?format=jsonl"
        status, text = await rest(seat, path)
        self.w.scan(seat, text, f"GET {path}")
        if seat.reader.role not in ARCHIVE_EXPORTERS:
            if status != 403 or json.loads(text)["error"]["code"] != "forbidden":
                raise Leak(f"archived export by {seat.reader}: {status} {text[:300]}")
            return
        assert status == 200, (status, text)
        lines = [json.loads(line) for line in text.splitlines()]
        envelopes = lines[1:-1]
        if [env["seq"] for env in envelopes] != list(range(1, incident.head + 1)):
            raise Leak(f"archived export of {incident.id}: seqs {[e['seq'] for e in envelopes]}")
        for env in envelopes:
            self.w.check_envelope(seat.reader, env, "archived export")
        facts = self.w.archived[incident.id]
        before = facts.exports.get(seat.reader.user)
        if before is not None and facts.generation == self.w.generation and envelopes != before:
            changed = [a["seq"] for a, b in zip(envelopes, before, strict=True) if a != b]
            raise Leak(f"archived export of {incident.id} for {seat.reader}: seqs {changed} differ")
        self.w.stats["archived exports as before"] += before is not None

    async def archived_write(self, seat: Seat, incident: IncidentFacts, kind: str) -> None:
        """A write to it, and the creator's retried create (same id): ``archived`` (SPEC 25.4)."""
        reader = seat.reader
        if kind == "recreate":
            created = incident.events[1]
            seat = self.w.seats[created.actor]
            command = {
                "type": "incident.create",
                "id": created.cid,
                "title": "again",
                "category": "welfare",
                "orgs": [],
            }
        else:
            token = self.w.canary()
            command = {"type": "message.post", "incident": incident.id, "text": f"late {token}"}
            seat.own.add(token)
            if not incident.takes_part(reader.org):
                await self.outsider(seat, command)
                return
        _, error = await self.send(seat, command, set())
        if (
            error is None
            or error["code"] != "archived"
            or error["detail"]["incident"] != incident.id
        ):
            raise Leak(f"{kind} of archived {incident.id} by {seat.reader}: {error}")

    async def archived_search(
        self, data: st.DataObject, seat: Seat, incident: IncidentFacts
    ) -> None:
        """Its words left the search index; a scoped search is a read of it."""
        seq = self.pick(data, sorted(incident.events), "event")
        tokens = sorted(incident.events[seq].canaries) or ["nothing"]
        path = f"/api/v1/search?q={tokens[0]}"
        if data.draw(st.booleans(), label="scoped"):
            path += f"&incident={incident.id}"
            if not incident.takes_part(seat.reader.org):
                await self.outsider_read(seat, path, incident.id)
                return
            status, text = await rest(seat, path)
            self.w.scan(seat, text, f"GET {path}")
            self.must_be_archived(status, text, incident, f"GET {path} by {seat.reader}")
            return
        page = await self.get(seat, path)
        if page["hits"]:
            raise Leak(f"search {path}: hits in an archived incident: {page['hits']}")

    async def tombstones(self, seat: Seat) -> None:
        """SPEC 25.2: an organisation's supervisor lists the tombstones of what it took part in."""
        reader = seat.reader
        path = "/api/v1/retention/archived?limit=50"
        if reader.role not in ARCHIVE_EXPORTERS:
            status, text = await rest(seat, path)
            self.w.scan(seat, text, f"GET {path}")
            if status != 403:
                raise Leak(f"tombstones listed to {reader}: {status} {text[:300]}")
            return
        listed: list[dict[str, Any]] = []
        after = ""
        while True:
            page = await self.get(seat, path + (f"&after={after}" if after else ""))
            listed += page["archived"]
            if not page["next"]:
                break
            after = page["next"]
        for t in listed:
            if reader.org not in t["orgs"] or TOMBSTONE_HIDDEN & set(t):
                raise Leak(f"tombstone listed to {reader}: {t}")
        ours = {t["incident"] for t in listed if t["incident"] in self.w.incidents}
        wanted = {i for i in self.w.archived if lists_tombstone(self.w.incidents[i], reader)}
        if ours != wanted:
            raise Leak(f"tombstones for {reader}: {sorted(ours)}, expected {sorted(wanted)}")
        self.w.stats["tombstone lists"] += 1

    async def _capacity(self, data: st.DataObject) -> None:
        """The capacity board (SPEC 27.2): publish with a canary note, or read it."""
        seat = self.seat(data)
        org = self.pick(data, ORGS, "capacity org")
        mode = data.draw(st.sampled_from(("publish", "board", "changes", "history")), label="cap")
        if data.draw(st.integers(0, 3), label="scoped bot") == 0 and mode != "publish":
            assert self.w.scoped is not None
            await self.scoped_capacity(self.w.scoped, org, mode)
            return
        reader = seat.reader
        if mode == "publish":
            token = self.w.canary()
            seat.own.add(token)
            body = {"id": uuid.uuid4().hex, "items": {"beds": 3, "note": f"cap {token}"}}
            path = f"/api/v1/orgs/{org}/capacity"
            status, text = await rest_post(seat, path, body)
            self.w.scan(seat, text, f"POST {path}")
            may = org == reader.org and reader.role in ("dispatcher", "supervisor", "bot")
            if (status == 200) != may:
                raise Leak(f"capacity of {org} published by {reader}: {status} {text[:300]}")
            if may:
                self.w.capacity_canaries[token] = org
                self.w.capacity_notes[org] = f"cap {token}"
                self.w.stats["capacity published"] += 1
            return
        if mode == "board":
            board = await self.get(seat, "/api/v1/capacity")
            rows = {row["org"]: row for row in board["orgs"]}
            if not set(ORGS) <= set(rows):
                raise Leak(f"capacity board for {reader}: {sorted(rows)}, every partner expected")
            for o, note in self.w.capacity_notes.items():
                if rows[o]["items"].get("note", {}).get("value") != note:
                    raise Leak(f"capacity board for {reader}: {o} {rows[o]}, expected {note}")
            # Never an incident's: a search for the last note finds nothing.
            last = self.w.capacity_notes.get(org)
            if last:
                word = last.split()[-1]
                page = await self.get(seat, f"/api/v1/search?q={word}")
                if page["hits"]:
                    raise Leak(f"search for capacity note {word}: {page['hits']}")
        elif mode == "changes":
            after = self.w.capacity_pos.get(reader.user, 0)
            page = await self.get(seat, f"/api/v1/capacity/changes?after={after}")
            self.w.capacity_pos[reader.user] = page["pos"]
        else:
            history = await self.get(seat, f"/api/v1/orgs/{org}/capacity?limit=1000")
            kept = self.w.capacity_notes.get(org)
            if kept and history["current"]["items"].get("note", {}).get("value") != kept:
                raise Leak(f"capacity of {org} for {reader}: {history['current']}, expected {kept}")
        self.w.stats[f"capacity reads ({mode})"] += 1

    async def scoped_capacity(self, seat: Seat, org: str, mode: str) -> None:
        """SPEC 27.2: a bot scoped to some incidents sees its own organisation's capacity only."""
        reader = seat.reader
        if mode == "board":
            rows = {row["org"] for row in (await self.get(seat, "/api/v1/capacity"))["orgs"]}
            if rows - {reader.org}:
                raise Leak(f"capacity board for {reader}: {sorted(rows)}, its own only")
        elif mode == "changes":
            page = await self.get(seat, "/api/v1/capacity/changes?after=0")
            if {e["org"] for e in page["entries"]} - {reader.org}:
                raise Leak(f"capacity changes for {reader}: {page['entries'][:3]}")
        else:
            path = f"/api/v1/orgs/{org}/capacity"
            status, text = await rest(seat, path)
            self.w.scan(seat, text, f"GET {path}")
            if (status == 200) != (org == reader.org):
                raise Leak(f"GET {path} for {reader}: {status} {text[:300]}")
        self.w.stats[f"scoped bot capacity reads ({mode})"] += 1

    # ----------------------------------------------------------- REST plumbing

    async def get(self, seat: Seat, path: str) -> dict[str, Any]:
        status, text = await rest(seat, path)
        self.w.scan(seat, text, f"GET {path}")
        assert status == 200, (status, text)
        body: dict[str, Any] = json.loads(text)
        return body

    async def outsider_read(self, seat: Seat, path: str, incident_id: str) -> None:
        status, text = await rest(seat, path)
        self.w.scan(seat, text, f"GET {path}")
        m_status, m_text = await rest(seat, path.replace(incident_id, MISSING))
        if (status, text.replace(incident_id, MISSING)) != (m_status, m_text) or status != 404:
            raise Leak(f"GET {path}: outsider got {status} {text}, missing {m_status} {m_text}")
        self.w.stats["outsider reads"] += 1


EVENT_OF = {
    "message.post": "message.posted",
    "message.edit": "message.edited",
    "message.retract": "message.retracted",
    "message.ack": "message.acknowledged",
    "incident.update": "incident.updated",
    "incident.status": "incident.status_changed",
    "task.create": "task.created",
    "task.assign": "task.assigned",
    "task.accept": "task.accepted",
    "task.decline": "task.declined",
    "task.start": "task.started",
    "task.complete": "task.completed",
    "task.cancel": "task.cancelled",
    "responder.status": "responder.status",
    "responder.position": "responder.position",
}


# ---------------------------------------------------------------------- running


def target_steps(default: int) -> int:
    return int(
        os.environ.get("LIAISON_SOAK_STEPS") or os.environ.get("LIAISON_LEAK_STEPS") or default
    )


def config(examples: int) -> settings:
    return settings(
        max_examples=examples,
        stateful_step_count=STEPS_PER_RUN,
        deadline=None,  # a real server on a shared machine: time is not the property
        database=None,
        phases=[Phase.generate],  # no shrinking: the world is not reset between runs
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )


def drive(world: World, steps: int) -> None:
    """Run the machine in the world until ``steps`` steps have run; print the seed on failure."""
    base = int(
        os.environ.get("LIAISON_LEAK_SEED")
        or (random.randrange(2**32) if os.environ.get("LIAISON_SOAK_STEPS") else 20261202)
    )
    machine = type("Machine", (LeakMachine,), {"world": world})
    started = time.monotonic()
    call = 0
    while world.steps < steps:
        # Each call starts with Hypothesis's simplest example, then random ones;
        # examples that hit Hypothesis's bound on choices end early (their steps
        # ran all the same), so the calls go on until enough steps have run.
        examples = max(1, (steps - world.steps) // STEPS_PER_RUN)
        try:
            run_state_machine_as_test(seed(base + call)(machine), settings=config(examples))
        except BaseException as exc:
            print(f"\nleak test failed: LIAISON_LEAK_SEED={base} (call {call})")
            if world.failure is not None and world.failure is not exc:
                raise world.failure from exc
            raise
        call += 1
    elapsed = time.monotonic() - started
    print(f"\n{world.steps} steps in {world.runs} runs, {elapsed:.1f} s, seed {base}")
    for key, count in sorted(world.stats.items()):
        print(f"  {key}: {count}")


def inherited_label(parent: EventMeta, author: str) -> tuple[str, tuple[str, ...]]:
    """SPEC 8.6 and 9.4: a reply is labelled at least as strictly as its parent;
    a reply to a RED message goes to the parent's recipients and author."""
    if parent.label == "RED":
        names = dict.fromkeys((*parent.recipients, parent.actor))
        names.pop(author, None)
        return "RED", tuple(names) or (parent.actor,)
    if parent.label == "AMBER+STRICT":
        return "AMBER+STRICT", ()
    return "AMBER", ()


async def populate(world: World, admin_url: str) -> None:
    admin = LiaisonClient(admin_url)
    await admin.login("admin", ADMIN_PASSWORD)
    await admin.request(
        "POST", "/api/v1/orgs", {"id": WILDLIFE, "name": "City Wildlife Trust", "kind": "ngo"}
    )
    for username, org, role in USERS:
        if org == WILDLIFE:
            user = {"username": username, "org": org, "name": username.title(), "role": role}
            await admin.request("POST", "/api/v1/users", {**user, "password": DEMO_PASSWORD})
    # An admin per organisation: it makes its organisation's webhook (a read
    # path: SPEC 21) and, for the police, the CAD bot's API key (bots use
    # keys, SPEC 4.3; the key lets it coordinate, as a bot's password did).
    admins = {org: await org_admin(admin, org, world.urls[0]) for org in ORGS}
    # Retention (SPEC 25): a closed incident is archived at the next run, which
    # only ``_archive`` asks for (the scheduled job is off: NO_DEADLINES).
    policy = {"archive_after_days": 0, "note": "leak test: archive when asked"}
    await admin.request("PUT", "/api/v1/retention/policies/default", policy)
    world.deployment = admin
    for org in ORGS:
        await subscribe(world, admins[org])
    for i, (username, org, role) in enumerate(USERS):
        key = None
        if role == "bot":
            body = {"user": username, "name": "leak test", "coordinator": True}
            key = (await admins[org].request("POST", "/api/v1/keys", body))["key"]
            await valid_everywhere(world.urls, key)
        await world.seat(username, org, role, world.urls[i % len(world.urls)], key)
    world.admins = admins
    # A bot scoped to one incident (SPEC 4.3): a capacity reader of its own
    # organisation's only (SPEC 27.2). Not seated: the oracle of incident reads
    # does not model scopes.
    body = {
        "user": "cad-bot",
        "name": "scoped",
        "incidents": [MISSING],
        "commands": ["message.post"],
    }
    key = (await admins[POLICE].request("POST", "/api/v1/keys", body))["key"]
    scoped = LiaisonClient(world.urls[0], api_key=key)
    scoped.user = await scoped.request("GET", "/api/v1/me")
    world.scoped = Seat(Reader(scoped.user["id"], POLICE, SCOPED_BOT), scoped)
    # A unique phone number each (Ofcom's drama range), set by its organisation's admin.
    for i, (user_id, seat) in enumerate(world.seats.items()):
        number = f"+44 20 7946 1{i:03d}"
        await admins[seat.reader.org].request(
            "POST", f"/api/v1/users/{user_id}/phone", {"phone": number}
        )
        world.phones[user_id] = number


async def valid_everywhere(urls: list[str], key: str) -> None:
    """Until a new key works on every node: the node that created it knows it at
    once, the others once the revocation feed tells them (a few ms on Redis;
    server/services/api_keys.py), and the bot may be seated on any of them."""

    async def everywhere() -> bool:
        for url in urls:
            probe = LiaisonClient(url, api_key=key)
            try:
                await probe.request("GET", "/api/v1/me")
            except CommandFailed as refused:
                if refused.code != "unauthenticated":
                    raise
                return False
            finally:
                await probe.close()
        return True

    await until_true(everywhere, 10, "the new API key is valid on every node")


async def org_admin(admin: LiaisonClient, org: str, url: str) -> LiaisonClient:
    """An admin of ``org``: it makes the organisation's webhook and its bots' keys."""
    username = f"leak-{org}-admin"
    user = {"username": username, "org": org, "name": "Org admin", "role": "admin"}
    await admin.request("POST", "/api/v1/users", {**user, "password": DEMO_PASSWORD})
    client = LiaisonClient(url)
    await login(client, username)
    return client


async def subscribe(world: World, org_admin: LiaisonClient) -> None:
    """A webhook of the admin's organisation to a receiver of the test's."""
    endpoint = Endpoint()
    await endpoint.start()
    created = await org_admin.request("POST", "/api/v1/webhooks", {"url": endpoint.url})
    endpoint.receiver.secrets.append(created["secret"])
    reader = Reader(f"webhook:{created['id']}", created["org"], "webhook")
    world.hooks.append(Hook(reader, endpoint))


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def play(servers: list[LiaisonServer], loop: asyncio.AbstractEventLoop, steps: int) -> World:
    world = World(loop, [srv.url for srv in servers])
    world.server_logs = [srv.log_path for srv in servers]
    try:
        world.run(populate(world, world.urls[0]))
        drive(world, steps)
        world.drain_all()
    finally:
        world.run(world.close())
    return world


@pytest.mark.timeout(TIMEOUT_S)
def test_no_content_reaches_the_unentitled_on_one_node(
    tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    srv = LiaisonServer(tmp_path / "data", env=NO_DEADLINES)
    srv.start()
    try:
        world = play([srv], loop, target_steps(10_000))
    finally:
        srv.stop()
    assert srv.errors_logged() == []
    assert world.stats["stored message.post"] > 0
    assert world.stats["organisations added later"] > 0


@pytest.mark.timeout(TIMEOUT_S)
def test_no_content_reaches_the_unentitled_on_two_redis_nodes(
    own_redis: RedisServer, tmp_path: Path, loop: asyncio.AbstractEventLoop
) -> None:
    # One archive directory for both, as deploy/README.md asks of Redis mode
    # (a node serves archived exports from files another node may have written).
    shared = {**NO_DEADLINES, "LIAISON_ARCHIVE_DIR": str(tmp_path / "archive")}
    nodes = start_nodes(own_redis, tmp_path, 2, shared)
    try:
        soak = os.environ.get("LIAISON_SOAK_STEPS")
        play(nodes, loop, target_steps(2_000) // (5 if soak else 1))
    finally:
        for node in nodes:
            node.stop()
    for node in nodes:
        assert node.errors_logged() == []
