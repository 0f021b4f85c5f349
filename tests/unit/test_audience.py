"""The audience function and the label rules (SPEC section 9.4), on pure domain objects.

Each rule is checked on the event as fan-out would shape it (``shaped``) and
on the incident view, which go through the same ``audience`` function.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from protocol.errors import ErrorCode
from server.domain.audience import PLACEHOLDER, Reader, audience, coarsen, event_meta
from server.domain.events import StoredEvent
from server.domain.model import Principal, Role
from server.domain.sharing import (
    Agreement,
    AgreementsView,
    FieldClass,
    NoAgreements,
    Precision,
    StaticAgreements,
)
from server.services.envelope import shaped
from tests.unit.test_domain import DISPATCH, NGO, OFFICER, OUTREACH, POLICE, Log, inc, new_log
from tests.views import view_of

SERGEANT = Principal("u_s", POLICE, Role.SUPERVISOR, "Sam")
NGO_LEAD = Principal("u_nl", NGO, Role.DISPATCHER, "Noor")


@pytest.fixture(autouse=True)
def more_people(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit import test_domain

    users = {**test_domain.Directory.users, "u_s": SERGEANT, "u_nl": NGO_LEAD}
    monkeypatch.setattr(test_domain.Directory, "users", users)


@pytest.fixture
def log() -> Log:
    return new_log()


def agreement(**fields: Any) -> Agreement:
    base = Agreement(
        id="a1",
        owner=POLICE,
        recipients=(NGO,),
        kinds=(),
        fields=(),
        position=Precision.EXACT,
        categories=None,
        history=False,
        valid_from_ms=0,
        valid_until_ms=None,
        revoked_ms=None,
        created_by="u_admin",
    )
    return replace(base, **fields)


def as_seen(log: Log, ev: StoredEvent, who: Principal, rules: AgreementsView | None = None) -> Any:
    assert log.state is not None
    reader = Reader(who.org_id, who.user_id)
    aud = audience(event_meta(ev), reader, log.state.sharing(), rules or NoAgreements(), 10**13)
    return shaped(ev, aud)


def test_red_reaches_its_named_recipients_and_author_only(log: Log) -> None:
    ev = log.do(
        DISPATCH,
        inc(log, type="message.post", text="informant's name", tlp="RED", recipients=["u_n"]),
    )
    assert ev.body["tlp"] == "RED"
    assert ev.body["recipients"] == ["u_n"]
    assert ev.visibility == (NGO, POLICE)
    assert as_seen(log, ev, DISPATCH)["body"]["text"] == "informant's name"
    assert as_seen(log, ev, OUTREACH)["body"]["text"] == "informant's name"
    # Not even the author's own organisation.
    for other in (OFFICER, SERGEANT, NGO_LEAD):
        assert as_seen(log, ev, other)["type"] == "restricted"
    assert log.state is not None
    assert view_of(log.state, POLICE, 0, user="u_o")["messages"] == []
    assert [m["text"] for m in view_of(log.state, NGO, 0, user="u_n")["messages"]] == [
        "informant's name"
    ]


def test_red_needs_recipients_and_mentions_only_them(log: Log) -> None:
    post = inc(log, type="message.post", text="x", tlp="RED")
    assert log.refuse(DISPATCH, post) is ErrorCode.INVALID
    assert log.refuse(DISPATCH, {**post, "recipients": ["u_nobody"]}) is ErrorCode.INVALID
    mention = {**post, "recipients": ["u_o"], "mentions": {"orgs": [NGO]}}
    assert log.refuse(DISPATCH, mention) is ErrorCode.INVALID
    plain = {**inc(log, type="message.post", text="x"), "recipients": ["u_o"]}
    assert log.refuse(DISPATCH, plain) is ErrorCode.INVALID


def test_red_is_not_told_by_updated(log: Log) -> None:
    assert log.state is not None
    before = log.state.summary(POLICE)["updated"]
    log.do(DISPATCH, inc(log, type="message.post", text="x", tlp="RED", recipients=["u_o"]))
    assert log.state.summary(POLICE)["updated"] == before


def test_a_reply_to_red_stays_red_for_the_same_people(log: Log) -> None:
    parent = log.do(
        DISPATCH, inc(log, type="message.post", text="x", tlp="RED", recipients=["u_o"])
    )
    reply = log.do(OFFICER, inc(log, type="message.post", text="y", reply_to=parent.seq))
    assert reply.body["tlp"] == "RED"
    assert reply.body["recipients"] == ["u_d"]
    assert as_seen(log, reply, SERGEANT)["type"] == "restricted"


def test_a_reply_to_amber_strict_stays_amber_strict_with_no_recipients(log: Log) -> None:
    """Found by the stateful leak test: the reply got the parent's author as a recipient."""
    parent = log.do(
        DISPATCH, inc(log, type="message.post", text="x", tlp="AMBER+STRICT", visibility=[NGO])
    )
    reply = log.do(OUTREACH, inc(log, type="message.post", text="y", reply_to=parent.seq))
    assert reply.body["tlp"] == "AMBER+STRICT"
    assert "recipients" not in reply.body


def test_follow_ups_carry_their_subjects_label(log: Log) -> None:
    msg = log.do(DISPATCH, inc(log, type="message.post", text="x", tlp="RED", recipients=["u_n"]))
    ack = log.do(OUTREACH, inc(log, type="message.ack", message=msg.seq))
    assert ack.body["tlp"] == "RED"
    assert ack.body["recipients"] == ["u_n"]
    refused = inc(log, type="message.ack", message=msg.seq, tlp="GREEN")
    assert log.refuse(OFFICER, refused) is ErrorCode.NOT_FOUND  # OFFICER cannot see it


def test_amber_strict_names_its_organisations_and_skips_newcomers(log: Log) -> None:
    post = inc(log, type="message.post", text="x", tlp="AMBER+STRICT")
    assert log.refuse(DISPATCH, post) is ErrorCode.INVALID
    ev = log.do(DISPATCH, {**post, "visibility": [POLICE, NGO]})
    assert as_seen(log, ev, OUTREACH)["body"]["text"] == "x"
    log.do(DISPATCH, inc(log, type="incident.update", add_orgs=["other"]))
    from tests.unit.test_domain import OUTSIDER

    history = StaticAgreements([agreement(recipients=("other",), history=True)])
    assert as_seen(log, ev, OUTSIDER, history)["type"] == "restricted"


def test_newcomers_see_amber_history_only_by_agreement(log: Log) -> None:
    from tests.unit.test_domain import OUTSIDER

    amber = log.do(DISPATCH, inc(log, type="message.post", text="before"))
    green = log.do(DISPATCH, inc(log, type="message.post", text="open", tlp="GREEN"))
    log.do(DISPATCH, inc(log, type="incident.update", add_orgs=["other"]))
    after = log.do(DISPATCH, inc(log, type="message.post", text="after"))
    assert as_seen(log, amber, OUTSIDER)["type"] == "restricted"
    assert as_seen(log, green, OUTSIDER)["body"]["text"] == "open"
    assert as_seen(log, after, OUTSIDER)["body"]["text"] == "after"
    # The incident's own events are always shown: a newcomer must know what it joined.
    assert as_seen(log, log.events[0], OUTSIDER)["type"] == "incident.created"
    history = StaticAgreements([agreement(recipients=("other",), history=True)])
    assert as_seen(log, amber, OUTSIDER, history)["body"]["text"] == "before"
    # An agreement for another category grants nothing.
    elsewhere = StaticAgreements(
        [agreement(recipients=("other",), history=True, categories=("crime",))]
    )
    assert as_seen(log, amber, OUTSIDER, elsewhere)["type"] == "restricted"


def test_protected_fields_are_redacted_without_an_agreement(log: Log) -> None:
    subject = {"name": "A. Person", "dob": "1980-02-29", "phone": "+44 7700 900123"}
    ev = log.do(DISPATCH, inc(log, type="task.create", title="Visit", subject=subject))
    ngo = as_seen(log, ev, OUTREACH)
    assert ngo["body"]["subject"] == {
        "name": {"redacted": True},
        "dob": {"redacted": True},
        "phone": {"redacted": True},
        "address": None,
    }
    assert ngo["redacted"] == ["dob", "name", "phone"]
    assert "salt" not in ngo  # no offline guessing of the redacted values
    assert as_seen(log, ev, OFFICER)["body"]["subject"] == {**subject, "address": None}
    names = StaticAgreements([agreement(fields=(FieldClass.NAME,))])
    partial = as_seen(log, ev, OUTREACH, names)
    assert partial["body"]["subject"]["name"] == "A. Person"
    assert partial["body"]["subject"]["dob"] == {"redacted": True}
    assert partial["redacted"] == ["dob", "phone"]
    assert log.state is not None
    task = view_of(log.state, NGO, 0, names)["tasks"][0]
    assert task["subject"]["name"] == "A. Person"
    assert task["subject"]["dob"] == {"redacted": True}


def test_positions_are_coarsened_where_agreed(log: Log) -> None:
    ev = log.do(
        OFFICER, inc(log, type="responder.position", lat=51.505512, lon=-0.075413, accuracy_m=5)
    )
    assert as_seen(log, ev, OUTREACH)["body"]["position"] == {"redacted": True}
    coarse = StaticAgreements([agreement(fields=(FieldClass.POSITION,), position=Precision.COARSE)])
    seen = as_seen(log, ev, OUTREACH, coarse)
    assert seen["body"]["position"] == {
        "lat": 51.506,
        "lon": -0.075,
        "accuracy_m": 100.0,
        "precision": "coarse",
    }
    assert seen["redacted"] == ["position"]
    assert log.state is not None
    shown = view_of(log.state, NGO, 0, coarse)["responders"][0]["position"]
    assert shown == coarsen(ev.body["position"])


def test_expiry_and_revocation_bite_at_the_next_read(log: Log) -> None:
    ev = log.do(OFFICER, inc(log, type="responder.position", lat=1.0, lon=2.0))
    assert log.state is not None
    meta, reader, ctx = event_meta(ev), Reader(NGO, "u_n"), log.state.sharing()
    expiring = StaticAgreements([agreement(fields=(FieldClass.POSITION,), valid_until_ms=500)])
    assert audience(meta, reader, ctx, expiring, 499).whole
    assert not audience(meta, reader, ctx, expiring, 500).whole
    revoked = StaticAgreements([agreement(fields=(FieldClass.POSITION,), revoked_ms=100)])
    assert not audience(meta, reader, ctx, revoked, 100).whole
    assert audience(meta, reader, ctx, revoked, 99).whole


def test_outside_the_visibility_is_a_placeholder_whatever_the_agreement(log: Log) -> None:
    ev = log.do(DISPATCH, inc(log, type="message.post", text="x", visibility=[POLICE]))
    everything = StaticAgreements([agreement(fields=tuple(FieldClass), history=True)])
    assert log.state is not None
    meta = event_meta(ev)
    aud = audience(meta, Reader(NGO, "u_n"), log.state.sharing(), everything, 0)
    assert aud is PLACEHOLDER


def test_labels_default_to_the_incident_and_the_organisation(log: Log) -> None:
    ev = log.do(DISPATCH, inc(log, type="message.post", text="x"))
    assert ev.body["tlp"] == "AMBER"
    assert log.events[0].body["tlp"] == "AMBER"
    log.do(DISPATCH, inc(log, type="incident.update", tlp="GREEN"))
    assert log.do(DISPATCH, inc(log, type="message.post", text="y")).body["tlp"] == "GREEN"
    refused = inc(log, type="incident.update", tlp="RED")
    assert log.refuse(DISPATCH, refused) is ErrorCode.INVALID


def test_a_partner_coordinator_runs_its_own_part_only(log: Log) -> None:
    """SPEC 8.0: the lead organisation decides what the incident is and who joins."""
    for command in (
        {"type": "incident.update", "add_orgs": ["other"]},
        {"type": "incident.update", "lead_org": NGO},
        {"type": "incident.update", "title": "Renamed"},
        {"type": "incident.update", "liaisons": {POLICE: "u_o"}},
        {"type": "incident.status", "status": "closed"},
        {"type": "task.create", "title": "Police do this", "assignee": {"org": POLICE}},
    ):
        assert log.refuse(NGO_LEAD, inc(log, **command)) is ErrorCode.FORBIDDEN, command
    log.do(NGO_LEAD, inc(log, type="incident.update", liaisons={NGO: "u_n"}))
    own = log.do(NGO_LEAD, inc(log, type="task.create", title="Ours", assignee={"org": NGO}))
    police_task = log.do(DISPATCH, inc(log, type="task.create", title="Theirs"))
    cancel = inc(log, type="task.cancel", task=police_task.seq)
    assert log.refuse(NGO_LEAD, cancel) is ErrorCode.FORBIDDEN
    log.do(NGO_LEAD, inc(log, type="task.cancel", task=own.seq))


def test_a_red_task_goes_to_a_named_person(log: Log) -> None:
    task = inc(log, type="task.create", title="x", tlp="RED", recipients=["u_n"])
    assert log.refuse(DISPATCH, {**task, "assignee": {"org": NGO}}) is ErrorCode.INVALID
    log.do(DISPATCH, {**task, "assignee": {"user": "u_n"}})


def test_a_newcomer_gets_no_follow_up_of_history_it_may_not_see(log: Log) -> None:
    """An edit written after the join of a message written before it: the text stays hidden."""
    from tests.unit.test_domain import OUTSIDER

    old = log.do(DISPATCH, inc(log, type="message.post", text="before"))
    task = log.do(DISPATCH, inc(log, type="task.create", title="old task", assignee={"org": NGO}))
    log.do(DISPATCH, inc(log, type="incident.update", add_orgs=["other"]))
    edit = log.do(DISPATCH, inc(log, type="message.edit", message=old.seq, text="secret"))
    note = log.do(OUTREACH, inc(log, type="task.accept", task=task.seq, note="at the annex"))
    assert as_seen(log, edit, OUTSIDER)["type"] == "restricted"
    assert as_seen(log, note, OUTSIDER)["type"] == "restricted"
    assert log.state is not None
    view = view_of(log.state, "other", 0, user="u_x")
    assert view["messages"] == []
    assert view["tasks"] == []
