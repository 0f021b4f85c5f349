"""Post-incident reviews (SPEC 8.12): who may write them, when, and what each reader sees."""

from __future__ import annotations

from typing import Any

from protocol.errors import ErrorCode
from server.domain.model import Principal, Role
from tests.unit.test_domain import DISPATCH, NGO, OFFICER, OUTREACH, POLICE, Log, new_log
from tests.views import view_of

NGO_LEAD = Principal("u_l", NGO, Role.SUPERVISOR, "Lee")
DUE = 1_000.0  # Unix seconds: long past, so an open action is overdue
LATER = 10_000_000_000.0


def _closed() -> Log:
    log = new_log()
    log.do(DISPATCH, {"type": "incident.status", "incident": _id(log), "status": "closed"})
    return log


def _id(log: Log) -> str:
    return log.events[0].incident


def _review(log: Log, **extra: Any) -> dict[str, Any]:
    return {
        "type": "review.submit",
        "incident": _id(log),
        "went_well": "Calm",
        "went_badly": "Radio gaps",
        "rating": 4,
        **extra,
    }


def _action(aid: str, owner: str, due: float = DUE) -> dict[str, Any]:
    return {"id": aid, "text": f"do {aid}", "owner": owner, "due": due}


def test_a_review_waits_for_the_close_and_a_coordinator() -> None:
    log = new_log()
    assert log.refuse(DISPATCH, _review(log)) is ErrorCode.CONFLICT
    log.do(DISPATCH, {"type": "incident.status", "incident": _id(log), "status": "closed"})
    assert log.refuse(OFFICER, _review(log)) is ErrorCode.FORBIDDEN
    ev = log.do(DISPATCH, _review(log, actions=[_action("a1", "u_n")]))
    assert ev.type == "review.submit"
    assert ev.body["org"] == POLICE
    assert ev.body["supersedes"] is None
    assert ev.body["actions"] == [_action("a1", "u_n")]
    # other commands stay refused on a closed incident
    post = {"type": "message.post", "incident": _id(log), "text": "x"}
    assert log.refuse(DISPATCH, post) is ErrorCode.CONFLICT


def test_a_later_review_supersedes_and_keeps_the_done_marks() -> None:
    log = _closed()
    first = log.do(DISPATCH, _review(log, actions=[_action("a1", "u_n")]))
    log.do(OUTREACH, {"type": "review.action_done", "incident": _id(log), "action_id": "a1"})
    second = log.do(
        DISPATCH, _review(log, rating=2, actions=[_action("a1", "u_n"), _action("a2", "u_o")])
    )
    assert second.body["supersedes"] == first.seq
    assert log.state is not None
    view = view_of(log.state, POLICE, 0)
    (review,) = view["reviews"]
    assert review["rating"] == 2
    assert review["seq"] == second.seq
    assert [a["done"] for a in review["actions"]] == [True, False]
    assert [a["id"] for a in view["open_actions"]] == ["a2"]


def test_action_done_rules() -> None:
    log = _closed()
    log.do(DISPATCH, _review(log, actions=[_action("a1", "u_n"), _action("a2", "u_n")]))
    done = {"type": "review.action_done", "incident": _id(log)}
    assert log.refuse(OFFICER, {**done, "action_id": "a1"}) is ErrorCode.FORBIDDEN
    assert log.refuse(OUTREACH, {**done, "action_id": "nope"}) is ErrorCode.NOT_FOUND
    log.do(OUTREACH, {**done, "action_id": "a1"})  # the owner
    assert log.refuse(OUTREACH, {**done, "action_id": "a1"}) is ErrorCode.CONFLICT
    log.do(DISPATCH, {**done, "action_id": "a2"})  # the reviewing organisation's coordinator
    # another organisation may not reuse an action id
    assert log.refuse(NGO_LEAD, _review(log, actions=[_action("a1", "u_l")])) is ErrorCode.INVALID


def test_a_restricted_review_is_a_placeholder_for_others_and_its_owners_must_read_it() -> None:
    log = _closed()
    police_only = _review(log, visibility=[POLICE], actions=[_action("p1", "u_n")])
    assert log.refuse(DISPATCH, police_only) is ErrorCode.INVALID  # the NGO owner could not read it
    log.do(DISPATCH, _review(log, visibility=[POLICE], actions=[_action("p1", "u_o", LATER)]))
    log.do(NGO_LEAD, _review(log, went_badly="Late", actions=[_action("n1", "u_n")]))
    assert log.state is not None
    ngo = view_of(log.state, NGO, 0)
    assert [r["org"] for r in ngo["reviews"]] == [NGO]
    assert "p1" not in str(ngo)
    assert "Radio gaps" not in str(ngo)
    police = view_of(log.state, POLICE, 2_000_000)  # 2000 s, past DUE
    assert sorted(r["org"] for r in police["reviews"]) == [NGO, POLICE]
    # the NGO's action is overdue (due long ago), the police one is not
    overdue = {a["id"]: a["overdue"] for a in police["open_actions"]}
    assert overdue == {"n1": True, "p1": False}
    # a mark on a police-only action is itself police-only
    mark = log.do(DISPATCH, {"type": "review.action_done", "incident": _id(log), "action_id": "p1"})
    assert mark.visibility == (POLICE,)
