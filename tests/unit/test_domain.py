"""The pure domain: rules, visibility and the projection, without any I/O."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from protocol import v1
from protocol.errors import ErrorCode, ProtocolError
from server.domain import chain
from server.domain.decide import decide, decide_create, narrower
from server.domain.events import EventDraft, StoredEvent
from server.domain.incident import IncidentState
from server.domain.model import Org, Principal, Role
from server.domain.presence_view import visible_online
from server.domain.sharing import (
    Agreement,
    AgreementsView,
    FieldClass,
    NoAgreements,
    Precision,
    StaticAgreements,
)
from tests.views import view_of

POLICE, NGO, OTHER = "police", "ngo", "other"
DISPATCH = Principal("u_d", POLICE, Role.DISPATCHER, "Dana")
OFFICER = Principal("u_o", POLICE, Role.RESPONDER, "Omar")
OUTREACH = Principal("u_n", NGO, Role.RESPONDER, "Nia")
OUTSIDER = Principal("u_x", OTHER, Role.DISPATCHER, "Xavier")


class Directory:
    orgs = {o: Org(o, o.title(), "x") for o in (POLICE, NGO, OTHER)}
    users = {p.user_id: p for p in (DISPATCH, OFFICER, OUTREACH, OUTSIDER)}

    def org(self, org_id: str) -> Org | None:
        return self.orgs.get(org_id)

    def user(self, user_id: str) -> Principal | None:
        return self.users.get(user_id)


DIRECTORY = Directory()

#: Police share exact positions with the NGO, for every kind and category.
POSITIONS_SHARED = StaticAgreements(
    [
        Agreement(
            id="a1",
            owner=POLICE,
            recipients=(NGO,),
            kinds=(),
            fields=(FieldClass.POSITION,),
            position=Precision.EXACT,
            categories=None,
            history=False,
            valid_from_ms=0,
            valid_until_ms=None,
            revoked_ms=None,
            created_by="u_admin",
        )
    ]
)


class Log:
    """Sequences drafts like a backend would, and applies them to a state."""

    def __init__(self) -> None:
        self.events: list[StoredEvent] = []
        self.state: IncidentState | None = None
        self.ts = itertools.count(1_000)
        self.prev = chain.GENESIS
        self.rules: AgreementsView = NoAgreements()

    def store(self, d: EventDraft) -> StoredEvent:
        epoch = d.epoch or self.events[0].epoch
        ev = chain.sequence_draft(d, epoch, len(self.events), self.prev, next(self.ts))
        self.prev = ev.hash
        if self.state is None:
            self.state = IncidentState(id=d.incident, epoch=epoch)
        self.state.apply(ev)
        self.events.append(ev)
        return ev

    def do(self, who: Principal, command: dict[str, Any]) -> StoredEvent:
        cmd = v1.parse_command({"id": f"c{len(self.events)}", **command})
        if isinstance(cmd, v1.IncidentCreate):
            return self.store(decide_create(who, cmd, DIRECTORY))
        assert self.state is not None
        return self.store(decide(self.state, who, cmd, DIRECTORY, self.rules, next(self.ts)))

    def refuse(self, who: Principal, command: dict[str, Any]) -> ErrorCode:
        with pytest.raises(ProtocolError) as err:
            self.do(who, command)
        return err.value.code


@pytest.fixture
def log() -> Log:
    return new_log()


def new_log() -> Log:
    """A log holding one joint incident of police (lead) and the NGO."""
    log = Log()
    log.do(
        DISPATCH,
        {
            "type": "incident.create",
            "title": "Bridge",
            "category": "welfare",
            "orgs": [NGO],
            "liaisons": {NGO: "u_n"},
        },
    )
    return log


def inc(log: Log, **fields: Any) -> dict[str, Any]:
    assert log.state is not None
    return {"incident": log.state.id, **fields}


def test_replaying_the_log_gives_the_same_state_as_live_projection(log: Log) -> None:
    msg = log.do(DISPATCH, inc(log, type="message.post", text="hi", urgent=True)).seq
    log.do(OUTREACH, inc(log, type="message.ack", message=msg))
    log.do(DISPATCH, inc(log, type="message.edit", message=msg, text="hello"))
    task = log.do(DISPATCH, inc(log, type="task.create", title="Go", assignee={"org": NGO})).seq
    log.do(OUTREACH, inc(log, type="task.accept", task=task))
    log.do(OUTREACH, inc(log, type="task.start", task=task))
    log.do(
        OUTREACH,
        inc(log, type="responder.status", status="on_scene", position={"lat": 1.0, "lon": 2.0}),
    )
    log.do(OUTREACH, inc(log, type="task.complete", task=task, note="done"))
    log.do(DISPATCH, inc(log, type="incident.status", status="resolved"))
    assert log.state is not None
    replayed = IncidentState(id=log.state.id, epoch=log.state.epoch)
    for ev in log.events:
        replayed.apply(ev)
    assert view_of(replayed, None, 5_000) == view_of(log.state, None, 5_000)
    view = view_of(replayed, NGO, 5_000)
    assert view["tasks"][0]["status"] == "completed"
    assert view["messages"][0]["text"] == "hello"
    assert view["messages"][0]["acks"] == {"u_n": log.events[2].ts_ms}
    assert view["responders"][0]["status"] == "on_scene"
    assert view["status"] == "resolved"
    assert [h["status"] for h in view["status_history"]] == ["reported", "resolved"]
    assert chain.verify((e.seq, e.digest, e.hash) for e in log.events) is None


def test_creator_org_always_participates_and_unknown_orgs_are_refused() -> None:
    log = Log()
    ev = log.do(DISPATCH, {"type": "incident.create", "title": "t", "category": "c"})
    assert ev.body["orgs"] == [POLICE]
    assert (
        log.refuse(
            DISPATCH, {"type": "incident.create", "title": "t", "category": "c", "orgs": ["ghost"]}
        )
        is ErrorCode.INVALID
    )
    assert (
        log.refuse(OUTREACH, {"type": "incident.create", "title": "t", "category": "c"})
        is ErrorCode.FORBIDDEN
    )


def test_liaison_must_belong_to_their_org() -> None:
    assert (
        Log().refuse(
            DISPATCH,
            {
                "type": "incident.create",
                "title": "t",
                "category": "c",
                "orgs": [NGO],
                "liaisons": {NGO: "u_o"},
            },
        )
        is ErrorCode.INVALID
    )


def test_non_participants_cannot_see_or_act(log: Log) -> None:
    assert log.refuse(OUTSIDER, inc(log, type="message.post", text="x")) is ErrorCode.NOT_FOUND


def test_restricted_visibility_always_includes_the_author(log: Log) -> None:
    ev = log.do(OUTREACH, inc(log, type="message.post", text="x", visibility=[POLICE]))
    assert ev.visibility == (NGO, POLICE)
    assert (
        log.refuse(DISPATCH, inc(log, type="message.post", text="x", visibility=[OTHER]))
        is ErrorCode.INVALID
    )


def test_followups_inherit_the_restriction_of_their_subject(log: Log) -> None:
    secret = log.do(DISPATCH, inc(log, type="message.post", text="x", visibility=[POLICE])).seq
    reply = log.do(OFFICER, inc(log, type="message.post", text="y", reply_to=secret))
    assert reply.visibility == (POLICE,)
    ack = log.do(OFFICER, inc(log, type="message.ack", message=secret))
    assert ack.visibility == (POLICE,)
    assert log.refuse(OUTREACH, inc(log, type="message.ack", message=secret)) is ErrorCode.NOT_FOUND
    assert narrower((POLICE,), None) == (POLICE,)
    assert narrower(None, (NGO,)) == (NGO,)
    assert narrower((POLICE, NGO), (NGO,)) == (NGO,)


def test_only_the_author_edits_or_retracts(log: Log) -> None:
    msg = log.do(DISPATCH, inc(log, type="message.post", text="x")).seq
    assert (
        log.refuse(OFFICER, inc(log, type="message.edit", message=msg, text="z"))
        is ErrorCode.FORBIDDEN
    )
    log.do(DISPATCH, inc(log, type="message.retract", message=msg))
    assert (
        log.refuse(DISPATCH, inc(log, type="message.edit", message=msg, text="z"))
        is ErrorCode.CONFLICT
    )
    assert log.state is not None
    assert log.state.messages[msg].to_wire()["text"] is None


def test_task_lifecycle_rules(log: Log) -> None:
    task = log.do(DISPATCH, inc(log, type="task.create", title="Blankets")).seq
    assert log.refuse(OUTREACH, inc(log, type="task.accept", task=task)) is ErrorCode.FORBIDDEN
    log.do(DISPATCH, inc(log, type="task.assign", task=task, assignee={"user": "u_n"}))
    assert log.refuse(OFFICER, inc(log, type="task.accept", task=task)) is ErrorCode.FORBIDDEN
    assert log.refuse(OUTREACH, inc(log, type="task.start", task=task)) is ErrorCode.CONFLICT
    log.do(OUTREACH, inc(log, type="task.decline", task=task, note="no van"))
    log.do(DISPATCH, inc(log, type="task.assign", task=task, assignee={"org": NGO}))
    log.do(OUTREACH, inc(log, type="task.accept", task=task))
    assert log.refuse(OUTREACH, inc(log, type="task.cancel", task=task)) is ErrorCode.FORBIDDEN
    log.do(OUTREACH, inc(log, type="task.complete", task=task, note="delivered"))
    assert log.refuse(DISPATCH, inc(log, type="task.cancel", task=task)) is ErrorCode.CONFLICT
    assert log.state is not None
    board = log.state.tasks[task]
    assert (board.status, board.note, board.assignee_org) == ("completed", "delivered", NGO)


def test_supervisors_act_only_for_their_own_organisation(log: Log) -> None:
    sergeant = Principal("u_s", POLICE, Role.SUPERVISOR, "Sam")
    task = log.do(DISPATCH, inc(log, type="task.create", title="t", assignee={"org": NGO})).seq
    assert log.refuse(sergeant, inc(log, type="task.accept", task=task)) is ErrorCode.FORBIDDEN
    ngo_lead = Principal("u_l", NGO, Role.SUPERVISOR, "Lee")
    log.do(ngo_lead, inc(log, type="task.accept", task=task))


def test_assignee_must_see_a_restricted_task(log: Log) -> None:
    task = log.do(DISPATCH, inc(log, type="task.create", title="t", visibility=[POLICE])).seq
    assert (
        log.refuse(DISPATCH, inc(log, type="task.assign", task=task, assignee={"org": NGO}))
        is ErrorCode.INVALID
    )


def test_closed_incident_refuses_writes_but_can_reopen(log: Log) -> None:
    log.do(DISPATCH, inc(log, type="incident.status", status="closed"))
    assert log.refuse(OUTREACH, inc(log, type="message.post", text="x")) is ErrorCode.CONFLICT
    log.do(DISPATCH, inc(log, type="incident.status", status="active"))
    log.do(OUTREACH, inc(log, type="message.post", text="x"))


def test_update_adds_organisations_and_sets_fields(log: Log) -> None:
    assert log.refuse(OUTSIDER, inc(log, type="message.post", text="x")) is ErrorCode.NOT_FOUND
    log.do(
        DISPATCH,
        inc(log, type="incident.update", add_orgs=[OTHER], priority="critical", lead_org=NGO),
    )
    assert log.state is not None
    assert (log.state.orgs, log.state.priority, log.state.lead_org) == (
        [POLICE, NGO, OTHER],
        "critical",
        NGO,
    )
    log.do(OUTSIDER, inc(log, type="message.post", text="joined"))
    assert log.refuse(DISPATCH, inc(log, type="incident.update")) is ErrorCode.INVALID


def test_positions_age_in_the_view(log: Log) -> None:
    ev = log.do(OUTREACH, inc(log, type="responder.position", lat=1.5, lon=2.5, accuracy_m=8))
    assert log.state is not None
    responder = view_of(log.state, NGO, ev.ts_ms + 61_000)["responders"][0]
    assert responder["position"] == {"lat": 1.5, "lon": 2.5, "accuracy_m": 8.0}
    assert responder["position_age_s"] == 61


def test_restricted_position_never_shows_through_a_later_public_status(log: Log) -> None:
    officer_secret = log.do(
        OFFICER, inc(log, type="responder.position", lat=1.0, lon=2.0, visibility=[POLICE])
    )
    log.do(OFFICER, inc(log, type="responder.status", status="on_scene"))
    assert log.state is not None
    ngo = view_of(log.state, NGO, officer_secret.ts_ms)["responders"][0]
    assert (ngo["status"], ngo["position"], ngo["position_ts"]) == ("on_scene", None, None)
    police = view_of(log.state, POLICE, officer_secret.ts_ms)["responders"][0]
    assert police["position"] == {"lat": 1.0, "lon": 2.0, "accuracy_m": None}
    log.do(OFFICER, inc(log, type="responder.position", lat=3.0, lon=4.0))
    # Without an agreement the public position is redacted; with one, shown.
    assert view_of(log.state, NGO, 0)["responders"][0]["position"] == {"redacted": True}
    shared = view_of(log.state, NGO, 0, POSITIONS_SHARED)["responders"][0]
    assert shared["position"]["lat"] == 3.0


def test_responder_seen_only_in_restricted_events_is_not_listed(log: Log) -> None:
    log.do(OFFICER, inc(log, type="responder.status", status="en_route", visibility=[POLICE]))
    assert log.state is not None
    assert view_of(log.state, NGO, 0)["responders"] == []
    assert view_of(log.state, POLICE, 0)["responders"][0]["status"] == "en_route"


def test_follow_ups_cannot_change_the_visibility_of_their_subject(log: Log) -> None:
    public = log.do(DISPATCH, inc(log, type="message.post", text="x")).seq
    for command in (
        {"type": "message.edit", "message": public, "text": "secret edit"},
        {"type": "message.ack", "message": public},
        {"type": "message.retract", "message": public},
    ):
        assert log.refuse(DISPATCH, inc(log, visibility=[POLICE], **command)) is ErrorCode.INVALID
    task = log.do(DISPATCH, inc(log, type="task.create", title="t", assignee={"org": NGO})).seq
    assert (
        log.refuse(OUTREACH, inc(log, type="task.accept", task=task, visibility=[NGO]))
        is ErrorCode.INVALID
    )
    assert log.state is not None
    assert log.state.messages[public].text == "x"


def test_a_mention_outside_the_visibility_is_refused(log: Log) -> None:
    """The restricted-urgent trap: police-only, mentioning the shelter."""
    police_only: dict[str, Any] = {"type": "message.post", "incident": log.events[0].incident}
    police_only |= {"text": "Help?", "visibility": [POLICE], "urgent": True}
    for mentions in ({"orgs": [NGO]}, {"users": [OUTREACH.user_id]}):
        with pytest.raises(ProtocolError) as err:
            log.do(DISPATCH, {**police_only, "mentions": mentions})
        assert err.value.code is ErrorCode.INVALID
        assert err.value.detail is not None
        assert err.value.detail["field"] == "mentions"
        assert err.value.detail["orgs"] == [NGO]
    # Within the restriction, or with the visibility widened, it is accepted.
    log.do(DISPATCH, {**police_only, "mentions": {"users": [OFFICER.user_id]}})
    log.do(DISPATCH, {**police_only, "visibility": [POLICE, NGO], "mentions": {"orgs": [NGO]}})
    log.do(DISPATCH, {**police_only, "visibility": None, "mentions": {"orgs": [NGO]}})


def test_a_reply_narrowed_to_its_parent_cannot_mention_outside_it(log: Log) -> None:
    incident = log.events[0].incident
    parent = log.do(
        DISPATCH,
        {"type": "message.post", "incident": incident, "text": "p", "visibility": [POLICE]},
    )
    reply = {"type": "message.post", "incident": incident, "text": "r", "reply_to": parent.seq}
    assert log.refuse(DISPATCH, {**reply, "mentions": {"orgs": [NGO]}}) is ErrorCode.INVALID


def test_presence_shows_own_organisation_and_liaisons_only(log: Log) -> None:
    assert log.state is not None
    log.state.liaisons = {NGO: OUTREACH.user_id}
    online = [DISPATCH.user_id, OFFICER.user_id, OUTREACH.user_id, "u_gone"]
    assert visible_online(log.state, NGO, online, DIRECTORY) == [OUTREACH.user_id]
    assert visible_online(log.state, POLICE, online, DIRECTORY) == online[:3]
    log.state.liaisons = {NGO: OUTREACH.user_id, POLICE: DISPATCH.user_id}
    assert visible_online(log.state, NGO, online, DIRECTORY) == [DISPATCH.user_id, OUTREACH.user_id]
