"""The rules of post-incident reviews (SPEC 8.12): who may submit and mark done.

Called from decide.py once the common checks passed (a participant, the
incident closed, the visibility resolved), so these only add what reviews need.
"""

from __future__ import annotations

from protocol import v1
from protocol.errors import ErrorCode, ProtocolError
from server.domain.directory import DirectoryView
from server.domain.events import EventDraft
from server.domain.incident import IncidentState, Sight
from server.domain.model import Principal
from server.domain.review import ReviewState


def _draft(
    who: Principal,
    cmd: v1.IncidentCommand,
    kind: str,
    body: dict[str, object],
    vis: tuple[str, ...] | None,
) -> EventDraft:
    return EventDraft(
        incident=cmd.incident,
        type=kind,
        actor_user=who.user_id,
        actor_org=who.org_id,
        actor_name=who.name,
        client_id=cmd.id,
        visibility=vis,
        body=body,
    )


def decide_review(
    state: IncidentState,
    who: Principal,
    cmd: v1.ReviewSubmit,
    directory: DirectoryView,
    vis: tuple[str, ...] | None,
) -> EventDraft:
    """An organisation's review, by its coordinator; its owners must be able to read it."""
    if not who.coordinates:
        raise ProtocolError(ErrorCode.FORBIDDEN, f"role {who.role} may not submit a review")
    for action in cmd.actions:
        _check_owner(state, directory, cmd, action.owner, vis)
        org = state.reviews.owner_org_of_action(action.id)
        if org is not None and org != who.org_id:
            raise ProtocolError(
                ErrorCode.INVALID,
                f"actions: id {action.id!r} is another organisation's action",
                {"field": "actions"},
            )
    previous = state.reviews.latest(who.org_id)
    body: dict[str, object] = {
        "org": who.org_id,
        "went_well": cmd.went_well,
        "went_badly": cmd.went_badly,
        "rating": cmd.rating,
        "actions": [a.to_wire() for a in cmd.actions],
        "supersedes": previous.seq if previous is not None else None,
    }
    return _draft(who, cmd, "review.submit", body, vis)


def _check_owner(
    state: IncidentState,
    directory: DirectoryView,
    cmd: v1.ReviewSubmit,
    owner: str,
    vis: tuple[str, ...] | None,
) -> None:
    user = directory.user(owner)
    if user is None or not state.participates(user.org_id):
        raise ProtocolError(
            ErrorCode.INVALID, f"actions: owner {owner!r} does not take part", {"field": "actions"}
        )
    if vis is not None and user.org_id not in vis:
        raise ProtocolError(
            ErrorCode.INVALID,
            f"actions: owner {owner!r} could not read this review",
            {"field": "actions"},
        )
    if cmd.tlp == "RED" and owner not in (cmd.recipients or ()):
        raise ProtocolError(
            ErrorCode.INVALID,
            "actions: a RED review's owners are among its recipients",
            {"field": "actions"},
        )


def review_of_action(state: IncidentState, sight: Sight, action_id: str) -> ReviewState:
    """The latest review the reader may see that names ``action_id``; else not found."""
    org = state.reviews.owner_org_of_action(action_id)
    for seq in reversed(state.reviews.history.get(org or "", [])):
        review = state.reviews.by_seq[seq]
        if sight.of(review.meta).visible and any(a["id"] == action_id for a in review.actions):
            return review
    raise ProtocolError(ErrorCode.NOT_FOUND, "no such follow-up action")


def decide_action_done(
    state: IncidentState,
    who: Principal,
    cmd: v1.ReviewActionDone,
    review: ReviewState,
    vis: tuple[str, ...] | None,
    sight: Sight,
) -> EventDraft:
    """Its owner, or a coordinator of the reviewing organisation, marks it done once."""
    action = next(a for a in review.actions if a["id"] == cmd.action_id)
    if who.user_id != action["owner"] and not (who.coordinates and who.org_id == review.org):
        raise ProtocolError(
            ErrorCode.FORBIDDEN, "only the action's owner or the reviewing organisation may do this"
        )
    if any(sight.of(m.meta).visible for m in state.reviews.done.get(cmd.action_id, ())):
        raise ProtocolError(ErrorCode.CONFLICT, "the action is already done")
    body: dict[str, object] = {"action_id": cmd.action_id, "review": review.seq, "note": cmd.note}
    return _draft(who, cmd, "review.action_done", body, vis)
