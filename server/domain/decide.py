"""The rules: a command, the incident's current state and who asks -> an event draft.

Every refusal is a ``ProtocolError`` with a stable code, raised before anything
is stored. Visibility, permissions and state transitions are all checked here,
in one place, for every transport (socket.io, REST, bots).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import replace
from typing import Any

from protocol import v1
from protocol.errors import ErrorCode, ProtocolError
from server.domain import capacity_rules
from server.domain.audience import EventMeta, Reader
from server.domain.deadlines import concerned
from server.domain.directory import DirectoryView
from server.domain.events import EventDraft
from server.domain.expertise import check_tags
from server.domain.incident import (
    CHECKIN_ALARMS,
    TASK_TERMINAL,
    CheckinState,
    IncidentState,
    Sight,
    TaskState,
)
from server.domain.model import Principal, Role
from server.domain.review_rules import decide_action_done, decide_review, review_of_action
from server.domain.sharing import AgreementsView, Label

#: Strictness of labels, least first (TLP 2.0).
_ORDER = {label: i for i, label in enumerate(Label)}
#: The strictest label a default may reach: the two above it need named
#: readers, which only a deliberate choice per event can give.
_DEFAULT_CAP = Label.AMBER


def refuse(code: ErrorCode, message: str | None = None) -> ProtocolError:
    return ProtocolError(code, message)


def incident_id_for(user_id: str, client_id: str) -> str:
    """Derived from the idempotency key, so a retried create names the same incident.

    Every backend then finds a retry in the incident's own log, which keeps
    each append within one incident's keys (one Redis Cluster slot).
    """
    digest = hashlib.sha256(f"{user_id}\x00{client_id}".encode()).hexdigest()
    return "inc_" + digest[:16]


def new_epoch() -> str:
    return secrets.token_hex(6)


def _draft(
    who: Principal,
    cmd: v1.IncidentCommand | v1.IncidentCreate,
    incident: str,
    kind: str,
    body: dict[str, Any],
    visibility: tuple[str, ...] | None,
    epoch: str | None = None,
) -> EventDraft:
    return EventDraft(
        incident=incident,
        type=kind,
        actor_user=who.user_id,
        actor_org=who.org_id,
        actor_name=who.name,
        client_id=cmd.id,
        visibility=visibility,
        body=body,
        epoch=epoch,
    )


def _require_coordinator(who: Principal) -> None:
    if not who.coordinates:
        raise refuse(ErrorCode.FORBIDDEN, f"role {who.role} may not do this")


def _check_orgs(directory: DirectoryView, orgs: tuple[str, ...] | list[str]) -> None:
    for org in orgs:
        if directory.org(org) is None:
            raise refuse(ErrorCode.INVALID, f"unknown organisation {org!r}")


def _check_liaisons(directory: DirectoryView, liaisons: dict[str, str], orgs: list[str]) -> None:
    for org, user_id in liaisons.items():
        user = directory.user(user_id)
        if org not in orgs or user is None or user.org_id != org:
            raise refuse(ErrorCode.INVALID, f"liaison {user_id!r} is not a member of {org!r}")


def resolve_visibility(
    state: IncidentState, who: Principal, requested: tuple[str, ...] | None
) -> tuple[str, ...] | None:
    """Restrict to participants; the author's own organisation always sees its event."""
    if requested is None:
        return None
    unknown = [org for org in requested if not state.participates(org)]
    if unknown:
        raise refuse(ErrorCode.INVALID, f"visibility names non-participants: {unknown}")
    orgs = dict.fromkeys(requested)
    orgs[who.org_id] = None
    return tuple(sorted(orgs))


def same_as_subject(
    subject: tuple[str, ...] | None, requested: tuple[str, ...] | None
) -> tuple[str, ...] | None:
    """Edits, acks and task changes are seen by exactly who sees their subject.

    They change state shown with the subject (a message's text, a task's
    status), so a narrower follow-up would leak into the subject's view and a
    wider one would reveal the subject. Asking for another visibility is refused.
    """
    if requested is not None and requested != subject:
        raise refuse(ErrorCode.INVALID, "a follow-up has the visibility of what it follows")
    return subject


def narrower(
    inherited: tuple[str, ...] | None, requested: tuple[str, ...] | None
) -> tuple[str, ...] | None:
    """A follow-up event never reaches more organisations than its subject."""
    if inherited is None:
        return requested
    if requested is None:
        return inherited
    return tuple(org for org in inherited if org in requested) or inherited


def _header_body(
    cmd: v1.IncidentCreate | v1.IncidentUpdate, orgs: list[str], directory: DirectoryView
) -> dict[str, Any]:
    """The header fields a create or an update sets, checked against ``orgs``
    (the participants once the command is applied)."""
    if cmd.lead_org is not None and cmd.lead_org not in orgs:
        raise refuse(ErrorCode.INVALID, "lead_org must be a participating organisation")
    _check_liaisons(directory, cmd.liaisons, orgs)
    return {
        "title": cmd.title,
        "category": cmd.category,
        "priority": cmd.priority,
        "description": cmd.description,
        "location": cmd.location.to_wire() if cmd.location else None,
        "lead_org": cmd.lead_org,
        "liaisons": cmd.liaisons,
    }


def decide_create(who: Principal, cmd: v1.IncidentCreate, directory: DirectoryView) -> EventDraft:
    _require_coordinator(who)
    orgs = list(dict.fromkeys((who.org_id, *cmd.orgs)))
    _check_orgs(directory, orgs)
    body = {
        **_header_body(cmd, orgs, directory),
        "orgs": orgs,
        "lead_org": cmd.lead_org or who.org_id,
        "status": "reported",
        "tlp": cmd.tlp or _org_default(directory, who).value,
    }
    if cmd.subject is not None:
        body["subject"] = cmd.subject.to_wire()
    if cmd.source is not None:
        body["source"] = cmd.source.to_wire()
    if cmd.external_ref is not None:
        body["external_ref"] = cmd.external_ref
    if cmd.needs:
        body["needs"] = list(check_tags(cmd.needs, "needs"))
    incident = incident_id_for(who.user_id, cmd.id)
    return _draft(who, cmd, incident, "incident.created", body, None, new_epoch())


def _org_default(directory: DirectoryView, who: Principal) -> Label:
    org = directory.org(who.org_id)
    label = org.default_label if org is not None else _DEFAULT_CAP
    return label if _ORDER[label] <= _ORDER[_DEFAULT_CAP] else _DEFAULT_CAP


def decide(
    state: IncidentState,
    who: Principal,
    cmd: v1.Command,
    directory: DirectoryView,
    rules: AgreementsView,
    now_ms: int,
) -> EventDraft:
    """Decide an incident-scoped command against the incident's current state.

    ``rules`` and ``now_ms`` say what ``who`` may see of the state (a
    newcomer's hidden history cannot be replied to or acknowledged).
    """
    draft = _decide(state, who, cmd, directory, state.sight(_reader(who), rules, now_ms))
    return _labelled(state, who, cmd, directory, draft)


def _reader(who: Principal) -> Reader:
    return Reader(org=who.org_id, user=who.user_id)


def _invalid(field: str, why: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID, f"{field}: {why}", {"field": field})


#: Commands whose event starts something new (its label is chosen); the
#: others follow a subject (a message, a task) and carry the subject's label.
_SUBJECTS = (
    v1.MessagePost,
    v1.TaskCreate,
    v1.ResponderStatus,
    v1.ResponderPosition,
    v1.ReviewSubmit,
    v1.CheckinStart,
    v1.CheckinDuress,
    v1.CapacityRequest,
)
#: Commands of the post-incident review: only once the incident is closed.
_REVIEWS = (v1.ReviewSubmit, v1.ReviewActionDone)

#: Follow-ups whose RED readers are their subject's and its author's (a
#: receipt or a check-in change must reach whoever sent or runs the subject).
_RED_HEIRS = ("receipt.", "checkin.")


def _red_visibility(
    state: IncidentState,
    who: Principal,
    directory: DirectoryView,
    cmd: v1.IncidentCommand,
    requested: tuple[str, ...] | None,
) -> tuple[str, ...]:
    """A RED event's organisations: its author's and its recipients' (SPEC 9.4).

    Every recipient must be a participant's member, and a visibility given
    with it must take in each recipient's organisation.
    """
    if not cmd.recipients:
        raise _invalid("recipients", "RED is for named recipients: name at least one")
    orgs = {who.org_id}
    for user_id in cmd.recipients:
        user = directory.user(user_id)
        if user is None or not state.participates(user.org_id):
            raise _invalid("recipients", f"{user_id!r} does not take part in this incident")
        orgs.add(user.org_id)
    if requested is not None:
        outside = sorted(orgs - set(requested))
        if outside:
            raise _invalid("visibility", f"leaves out the recipients' organisations {outside}")
        return requested
    return tuple(sorted(orgs))


def _labelled(
    state: IncidentState,
    who: Principal,
    cmd: v1.Command,
    directory: DirectoryView,
    draft: EventDraft,
) -> EventDraft:
    """The draft with its label (and RED recipients) in its body (SPEC 9.4).

    A new message, task or responder update takes the label asked for, or
    the incident's (an organisation's default labels the incidents it
    opens); a reply never less than its parent. Incident events carry the incident's
    label. Follow-ups (edits, acks, task changes) carry their subject's, and
    asking for another is refused, as for visibility.
    """
    assert isinstance(cmd, v1.IncidentCommand)
    body = dict(draft.body)
    if draft.type.startswith("incident."):
        label = Label(cmd.tlp) if cmd.tlp else state.label
        recipients: tuple[str, ...] = ()
    elif isinstance(cmd, _SUBJECTS) and "checkin" not in body:
        label = Label(cmd.tlp) if cmd.tlp else state.label
        recipients = tuple(dict.fromkeys(cmd.recipients or ())) if label is Label.RED else ()
        parent = _parent_meta(state, cmd)
        if parent is not None and _ORDER[parent.label] > _ORDER[label]:
            label = parent.label
            recipients = _heirs(parent, who) if label is Label.RED else ()
    else:
        subject = _subject_meta(state, draft)
        label, recipients = subject.label, subject.recipients
        if label is Label.RED and draft.type.startswith(_RED_HEIRS):
            recipients = _heirs(subject, who)
        if cmd.tlp is not None and cmd.tlp != label.value:
            raise _invalid("tlp", "a follow-up has the label of what it follows")
    if label is Label.RED:
        _check_red_assignee(body.get("assignee"), recipients, draft.actor_user)
    body["tlp"] = label.value
    if recipients:
        body["recipients"] = list(recipients)
    return replace(draft, body=body)


def _check_red_assignee(
    assignee: dict[str, Any] | None, recipients: tuple[str, ...], author: str
) -> None:
    """A RED task goes to a named person who may read it, never to a whole organisation."""
    if assignee is None:
        return
    user = assignee.get("user")
    if user is None or (user != author and user not in recipients):
        raise _invalid("assignee", "a RED task is assigned to one of its recipients")


def _parent_meta(state: IncidentState, cmd: v1.Command) -> EventMeta | None:
    if isinstance(cmd, v1.MessagePost) and cmd.reply_to is not None:
        parent = state.messages.get(cmd.reply_to)
        return parent.meta if parent is not None else None
    return None


def _heirs(parent: EventMeta, who: Principal) -> tuple[str, ...]:
    """A reply to a RED message goes to its recipients and its author."""
    names = dict.fromkeys((*parent.recipients, parent.actor_user))
    names.pop(who.user_id, None)
    return tuple(names) or (parent.actor_user,)


def _subject_meta(state: IncidentState, draft: EventDraft) -> EventMeta:
    if "review" in draft.body:
        return state.review_at(draft.body["review"]).meta
    if "message" in draft.body:
        return state.messages[draft.body["message"]].meta
    if "checkin" in draft.body:
        return state.checkins[draft.body["checkin"]].meta
    if "request" in draft.body:
        return state.capacity_requests[draft.body["request"]].meta
    return state.tasks[draft.body["task"]].meta


def _decide(
    state: IncidentState,
    who: Principal,
    cmd: v1.Command,
    directory: DirectoryView,
    sight: Sight,
) -> EventDraft:
    if who.role is Role.AUDITOR:  # separation of duties: auditors do not take part
        raise refuse(ErrorCode.FORBIDDEN, "auditors read the audit log only")
    if not state.participates(who.org_id):
        raise refuse(ErrorCode.NOT_FOUND, "no such incident")
    assert isinstance(cmd, v1.IncidentCommand)
    if isinstance(cmd, _REVIEWS):
        if state.status != "closed":
            raise refuse(ErrorCode.CONFLICT, "a review is written once the incident is closed")
    elif state.status == "closed" and not isinstance(cmd, v1.IncidentStatus):
        raise refuse(ErrorCode.CONFLICT, "the incident is closed")
    vis = resolve_visibility(state, who, cmd.visibility)
    if isinstance(cmd, _SUBJECTS):
        if cmd.tlp == Label.RED.value:
            vis = _red_visibility(state, who, directory, cmd, vis)
        if cmd.tlp == Label.AMBER_STRICT.value and vis is None:
            raise _invalid("visibility", "AMBER+STRICT names the organisations it is for")
    if cmd.recipients and not (isinstance(cmd, _SUBJECTS) and cmd.tlp == Label.RED.value):
        raise _invalid("recipients", "recipients are named for RED only")
    match cmd:
        case v1.IncidentUpdate():
            return _update(state, who, cmd, directory, vis)
        case v1.IncidentStatus():
            return _status(state, who, cmd, vis)
        case v1.MessagePost():
            return _post(state, who, cmd, directory, vis, sight)
        case v1.MessageEdit() | v1.MessageRetract() | v1.MessageAck():
            return _message_followup(state, who, cmd, vis, sight)
        case v1.TaskCreate():
            return _task_create(state, who, cmd, directory, vis, sight)
        case v1.TaskAssign():
            return _task_assign(state, who, cmd, directory, vis, sight)
        case v1.TaskTransition():
            return _task_transition(state, who, cmd, vis, sight)
        case v1.ResponderStatus():
            body: dict[str, Any] = {
                "status": cmd.status,
                "position": cmd.position.to_wire() if cmd.position else None,
            }
            return _draft(who, cmd, state.id, "responder.status", body, vis)
        case v1.ResponderPosition():
            body = {"position": cmd.position.to_wire()}
            return _draft(who, cmd, state.id, "responder.position", body, vis)
        case v1.ReviewSubmit():
            return decide_review(state, who, cmd, directory, vis)
        case v1.ReviewActionDone():
            review = review_of_action(state, sight, cmd.action_id)
            vis = same_as_subject(review.visibility, vis)
            return decide_action_done(state, who, cmd, review, vis, sight)
        case v1.ReceiptMark():
            return _receipt(state, who, cmd, vis, sight)
        case (
            v1.CheckinStart()
            | v1.CheckinOk()
            | v1.CheckinEnd()
            | v1.CheckinDuress()
            | v1.CheckinResolve()
        ):
            return decide_checkin(state, who, cmd, vis, sight)
        case v1.CapacityRequest():
            return capacity_rules.decide_request(state, who, cmd, vis)
        case v1.CapacityAnswer():
            return capacity_rules.decide_answer(state, who, cmd, vis, sight)
    raise refuse(ErrorCode.UNKNOWN_TYPE, f"{cmd.TYPE} is not an incident command")


def _update(
    state: IncidentState,
    who: Principal,
    cmd: v1.IncidentUpdate,
    directory: DirectoryView,
    vis: tuple[str, ...] | None,
) -> EventDraft:
    _require_coordinator(who)
    if vis is not None:
        raise refuse(ErrorCode.INVALID, "incident updates are visible to every participant")
    if cmd.tlp is not None and cmd.tlp not in v1.INCIDENT_LABELS:
        raise _invalid("tlp", f"an incident is labelled one of {', '.join(v1.INCIDENT_LABELS)}")
    if not _leads(state, who):
        _check_partner_update(who, cmd)
    _check_orgs(directory, cmd.add_orgs)
    orgs = list(dict.fromkeys((*state.orgs, *cmd.add_orgs)))
    body = {
        **_header_body(cmd, orgs, directory),
        "add_orgs": [org for org in cmd.add_orgs if org not in state.orgs],
    }
    if cmd.subject is not None:
        body["subject"] = cmd.subject.to_wire()
    if cmd.tlp is not None and cmd.tlp != state.label.value:
        body["tlp"] = cmd.tlp
    if cmd.external_ref is not None and cmd.external_ref != state.external_ref:
        body["external_ref"] = cmd.external_ref
    if cmd.needs is not None and (needs := list(check_tags(cmd.needs, "needs"))) != state.needs:
        body["needs"] = needs  # [] clears them: kept, unlike the other empty values
    if "needs" not in body and all(v in (None, [], {}) for v in body.values()):
        raise refuse(ErrorCode.INVALID, "nothing to update")
    return _draft(who, cmd, state.id, "incident.updated", body, None)


def _leads(state: IncidentState, who: Principal) -> bool:
    """Whether ``who`` coordinates for the incident's lead organisation.

    The lead decides what the incident is and who takes part (SPEC 8.0):
    a coordinator of another participating organisation runs its own
    organisation's part only.
    """
    lead = state.lead_org or (state.orgs[0] if state.orgs else None)
    return who.coordinates and who.org_id == lead


def _check_partner_update(who: Principal, cmd: v1.IncidentUpdate) -> None:
    """A partner's coordinator may name its own organisation's liaison, nothing else."""
    if (
        any(
            value is not None
            for value in (
                cmd.title,
                cmd.category,
                cmd.priority,
                cmd.location,
                cmd.lead_org,
                cmd.description,
                cmd.subject,
                cmd.tlp,
                cmd.external_ref,
                cmd.needs,
            )
        )
        or cmd.add_orgs
    ):
        raise refuse(ErrorCode.FORBIDDEN, "only the lead organisation changes the incident")
    if set(cmd.liaisons) - {who.org_id}:
        raise refuse(ErrorCode.FORBIDDEN, "you name your own organisation's liaison only")


def _status(
    state: IncidentState, who: Principal, cmd: v1.IncidentStatus, vis: tuple[str, ...] | None
) -> EventDraft:
    _require_coordinator(who)
    if not _leads(state, who):
        raise refuse(ErrorCode.FORBIDDEN, "only the lead organisation changes the status")
    if vis is not None:
        raise refuse(ErrorCode.INVALID, "status changes are visible to every participant")
    if cmd.status == state.status:
        raise refuse(ErrorCode.CONFLICT, f"the incident is already {cmd.status}")
    body = {"status": cmd.status, "previous": state.status, "note": cmd.note}
    return _draft(who, cmd, state.id, "incident.status_changed", body, None)


def _post(
    state: IncidentState,
    who: Principal,
    cmd: v1.MessagePost,
    directory: DirectoryView,
    vis: tuple[str, ...] | None,
    sight: Sight,
) -> EventDraft:
    if cmd.reply_to is not None:
        parent = state.messages.get(cmd.reply_to)
        if parent is None or not sight.of(parent.meta).visible:
            raise refuse(ErrorCode.NOT_FOUND, "reply_to is not a message you can see")
        vis = narrower(parent.visibility, vis)
    for org in cmd.mention_orgs:
        if not state.participates(org):
            raise refuse(ErrorCode.INVALID, f"mentioned organisation {org!r} does not participate")
    for user_id in cmd.mention_users:
        user = directory.user(user_id)
        if user is None or not state.participates(user.org_id):
            raise refuse(ErrorCode.INVALID, f"mentioned user {user_id!r} does not participate")
    _check_mentions_see(cmd, directory, vis)
    _check_red_mentions(state, cmd)
    body = {
        "text": cmd.text,
        "mentions": {"users": list(cmd.mention_users), "orgs": list(cmd.mention_orgs)},
        "reply_to": cmd.reply_to,
        "urgent": cmd.urgent,
    }
    return _draft(who, cmd, state.id, "message.posted", body, vis)


def _check_mentions_see(
    cmd: v1.MessagePost, directory: DirectoryView, vis: tuple[str, ...] | None
) -> None:
    """A mention must reach someone who can read the message.

    Mentioning an organisation (or one of its users) that the visibility
    leaves out would hand it a placeholder and never the request: an urgent
    police-only message mentioning the shelter was accepted and the shelter
    never learned what it was asked. Refused, so the author widens the
    visibility or drops the mention deliberately.
    """
    if vis is None:
        return
    outside = [org for org in cmd.mention_orgs if org not in vis]
    outside += [
        user.org_id
        for user_id in cmd.mention_users
        if (user := directory.user(user_id)) is not None and user.org_id not in vis
    ]
    if outside:
        orgs = sorted(set(outside))
        raise ProtocolError(
            ErrorCode.INVALID,
            f"mentions {', '.join(orgs)}, which cannot see this message (visibility:"
            f" {', '.join(vis)}): widen the visibility or drop the mention",
            {"field": "mentions", "orgs": orgs, "visibility": list(vis)},
        )


def _check_red_mentions(state: IncidentState, cmd: v1.MessagePost) -> None:
    """A RED message mentions only people it is for (the trap of section 9.4)."""
    label = cmd.tlp
    parent = _parent_meta(state, cmd)
    if label != Label.RED.value and (parent is None or parent.label is not Label.RED):
        return
    named = set(cmd.recipients or ()) | (
        {*parent.recipients, parent.actor_user} if parent is not None else set()
    )
    outside = [u for u in cmd.mention_users if u not in named]
    if cmd.mention_orgs or outside:
        raise ProtocolError(
            ErrorCode.INVALID,
            "a RED message mentions its recipients only",
            {"field": "mentions", "users": outside, "orgs": list(cmd.mention_orgs)},
        )


def _message_followup(
    state: IncidentState,
    who: Principal,
    cmd: v1.MessageEdit | v1.MessageRetract | v1.MessageAck,
    vis: tuple[str, ...] | None,
    sight: Sight,
) -> EventDraft:
    msg = state.messages.get(cmd.message)
    if msg is None or not sight.of(msg.meta).visible:
        raise refuse(ErrorCode.NOT_FOUND, "no such message")
    if msg.retracted:
        raise refuse(ErrorCode.CONFLICT, "the message was retracted")
    vis = same_as_subject(msg.visibility, vis)
    if isinstance(cmd, v1.MessageAck):
        if who.user_id in msg.acks:
            raise refuse(ErrorCode.CONFLICT, "you already acknowledged this message")
        return _draft(who, cmd, state.id, "message.acknowledged", {"message": msg.seq}, vis)
    if msg.author_user != who.user_id:
        raise refuse(ErrorCode.FORBIDDEN, "only the author may edit or retract a message")
    if isinstance(cmd, v1.MessageEdit):
        body = {"message": msg.seq, "text": cmd.text}
        return _draft(who, cmd, state.id, "message.edited", body, vis)
    return _draft(who, cmd, state.id, "message.retracted", {"message": msg.seq}, vis)


def _check_assignee(
    state: IncidentState, directory: DirectoryView, assignee: v1.Assignee
) -> dict[str, Any]:
    org = assignee.org
    if assignee.user is not None:
        user = directory.user(assignee.user)
        if user is None or not state.participates(user.org_id):
            raise refuse(ErrorCode.INVALID, "the assignee does not participate")
        if org is not None and org != user.org_id:
            raise refuse(ErrorCode.INVALID, "the assignee is not a member of that organisation")
        org = user.org_id
    if org is None or not state.participates(org):
        raise refuse(ErrorCode.INVALID, "the assigned organisation does not participate")
    return {"org": org, "user": assignee.user}


def _task_create(
    state: IncidentState,
    who: Principal,
    cmd: v1.TaskCreate,
    directory: DirectoryView,
    vis: tuple[str, ...] | None,
    sight: Sight,
) -> EventDraft:
    _require_coordinator(who)
    assignee = _check_assignee(state, directory, cmd.assignee) if cmd.assignee else None
    _check_partner_assignee(state, who, assignee)
    if assignee and vis is not None and assignee["org"] not in vis:
        raise refuse(ErrorCode.INVALID, "the assignee's organisation could not see the task")
    body: dict[str, Any] = {"title": cmd.title, "details": cmd.details, "assignee": assignee}
    if cmd.due_in_s is not None:
        body["due"] = sight.now_ms + cmd.due_in_s * 1000
    if cmd.subject is not None:
        body["subject"] = cmd.subject.to_wire()
    return _draft(who, cmd, state.id, "task.created", body, vis)


def _check_partner_assignee(
    state: IncidentState, who: Principal, assignee: dict[str, Any] | None
) -> None:
    """A partner's coordinator hands tasks to its own organisation only (SPEC 8.0)."""
    if assignee is not None and not _leads(state, who) and assignee["org"] != who.org_id:
        raise refuse(ErrorCode.FORBIDDEN, "you assign tasks within your own organisation only")


def _visible_task(state: IncidentState, sight: Sight, task_id: int) -> TaskState:
    task = state.tasks.get(task_id)
    if task is None or not sight.of(task.meta).visible:
        raise refuse(ErrorCode.NOT_FOUND, "no such task")
    if task.status in TASK_TERMINAL:
        raise refuse(ErrorCode.CONFLICT, f"the task is already {task.status}")
    return task


def _task_assign(
    state: IncidentState,
    who: Principal,
    cmd: v1.TaskAssign,
    directory: DirectoryView,
    vis: tuple[str, ...] | None,
    sight: Sight,
) -> EventDraft:
    _require_coordinator(who)
    task = _visible_task(state, sight, cmd.task)
    assignee = _check_assignee(state, directory, cmd.assignee)
    _check_partner_assignee(state, who, assignee)
    if task.visibility is not None and assignee["org"] not in task.visibility:
        raise refuse(ErrorCode.INVALID, "the assignee's organisation could not see the task")
    body = {"task": task.id, "assignee": assignee}
    return _draft(who, cmd, state.id, "task.assigned", body, same_as_subject(task.visibility, vis))


#: command type -> (event type, task statuses it may start from)
_TRANSITIONS: dict[str, tuple[str, frozenset[str]]] = {
    "task.accept": ("task.accepted", frozenset({"assigned"})),
    "task.decline": ("task.declined", frozenset({"assigned"})),
    "task.start": ("task.started", frozenset({"accepted"})),
    "task.complete": ("task.completed", frozenset({"accepted", "in_progress"})),
    "task.cancel": (
        "task.cancelled",
        frozenset({"open", "assigned", "accepted", "declined", "in_progress"}),
    ),
}


def _is_assignee(task: TaskState, who: Principal) -> bool:
    if task.assignee_user is not None:
        return task.assignee_user == who.user_id
    return task.assignee_org == who.org_id


def _supervises(task: TaskState, who: Principal) -> bool:
    """A supervisor may act for the assignees of their own organisation only."""
    return who.role is Role.SUPERVISOR and task.assignee_org == who.org_id


def _task_transition(
    state: IncidentState,
    who: Principal,
    cmd: v1.TaskTransition,
    vis: tuple[str, ...] | None,
    sight: Sight,
) -> EventDraft:
    task = _visible_task(state, sight, cmd.task)
    kind, allowed_from = _TRANSITIONS[cmd.TYPE]
    if cmd.TYPE == "task.cancel":
        _require_coordinator(who)
        if not _leads(state, who) and task.meta.actor_org != who.org_id:
            raise refuse(ErrorCode.FORBIDDEN, "only the lead organisation cancels others' tasks")
    elif not (_is_assignee(task, who) or _supervises(task, who)):
        raise refuse(ErrorCode.FORBIDDEN, "only the assignee may do this")
    if task.status not in allowed_from:
        raise refuse(ErrorCode.CONFLICT, f"a task that is {task.status} cannot be {kind[5:]}")
    body = {"task": task.id, "note": cmd.note}
    return _draft(who, cmd, state.id, kind, body, same_as_subject(task.visibility, vis))


def _receipt(
    state: IncidentState,
    who: Principal,
    cmd: v1.ReceiptMark,
    vis: tuple[str, ...] | None,
    sight: Sight,
) -> EventDraft:
    """A receipt: once per person, subject and state (its id says which, SPEC "Receipts").

    Only for urgent messages and tasks, and never the sender's own: that
    bounds the log to two events per person per urgent item, whatever the
    number of their devices.
    """
    kind, ref = cmd.subject_ref()
    if kind == "message":
        msg = state.messages.get(ref)
        if msg is None or not sight.of(msg.meta).visible:
            raise refuse(ErrorCode.NOT_FOUND, "no such message")
        if not msg.urgent:
            raise _invalid("message", "receipts are kept for urgent messages only")
        author, receipts, subject_vis = msg.author_user, msg.receipts, msg.visibility
    else:
        task = state.tasks.get(ref)
        if task is None or not sight.of(task.meta).visible:
            raise refuse(ErrorCode.NOT_FOUND, "no such task")
        author, receipts, subject_vis = task.created_by, task.receipts, task.visibility
    if author == who.user_id:
        raise _invalid(kind, "the sender's own devices send no receipts")
    if who.user_id in receipts.get(cmd.state, {}):
        raise refuse(ErrorCode.CONFLICT, f"already recorded as {cmd.state}")
    body = {kind: ref, "state": cmd.state}
    return _draft(who, cmd, state.id, "receipt.recorded", body, same_as_subject(subject_vis, vis))


# ------------------------------------------------------------------- check-ins


def decide_checkin(
    state: IncidentState,
    who: Principal,
    cmd: v1.CheckinStart | v1.CheckinOk | v1.CheckinEnd | v1.CheckinDuress | v1.CheckinResolve,
    vis: tuple[str, ...] | None,
    sight: Sight,
) -> EventDraft:
    """Lone-worker check-ins (SPEC "Check-ins"): one open check-in per worker.

    A duress alarm is always accepted while the incident is open: with a
    running timer it follows that check-in, without one it begins one.
    """
    kind = v1.EVENT_OF_COMMAND[cmd.TYPE]
    if isinstance(cmd, v1.CheckinResolve):
        return _checkin_resolve(state, who, cmd, vis, sight)
    current = state.checkins.get(state.open_checkins.get(who.user_id, 0))
    position = getattr(cmd, "position", None)
    body: dict[str, Any] = {"position": position.to_wire() if position else None}
    if isinstance(cmd, v1.CheckinStart):
        if current is not None:
            raise refuse(ErrorCode.CONFLICT, "you have a check-in running already")
        body |= {"interval_s": cmd.interval_s, "due": sight.now_ms + cmd.interval_s * 1000}
        return _draft(who, cmd, state.id, kind, body, vis)
    if isinstance(cmd, v1.CheckinDuress):
        if current is not None and current.status == "duress":
            raise refuse(ErrorCode.CONFLICT, "your duress alarm is raised already")
        body["notify"] = concerned(state, [who.org_id])
        if current is None:
            return _draft(who, cmd, state.id, kind, body, vis)
        body["checkin"] = current.id
        return _draft(who, cmd, state.id, kind, body, same_as_subject(current.meta.visibility, vis))
    if current is None:
        raise refuse(ErrorCode.CONFLICT, "you have no check-in running")
    if current.status == "duress":
        raise refuse(ErrorCode.CONFLICT, "a duress alarm is resolved by someone else")
    body["checkin"] = current.id
    if isinstance(cmd, v1.CheckinOk):
        assert current.interval_s is not None  # only a duress-begun check-in has none
        body["due"] = sight.now_ms + current.interval_s * 1000
    else:
        del body["position"]
    return _draft(who, cmd, state.id, kind, body, same_as_subject(current.meta.visibility, vis))


def _checkin_resolve(
    state: IncidentState,
    who: Principal,
    cmd: v1.CheckinResolve,
    vis: tuple[str, ...] | None,
    sight: Sight,
) -> EventDraft:
    """A coordinator who sees the alarm resolves it; the worker may resolve a
    missed check-in of their own (checking in does too), never their duress."""
    c: CheckinState | None = state.checkins.get(state.open_checkins.get(cmd.user, 0))
    if c is None or not sight.of(c.meta).visible or c.status not in CHECKIN_ALARMS:
        raise refuse(ErrorCode.NOT_FOUND, "no missed check-in or duress alarm of that user")
    own = who.user_id == c.user
    if own and c.status == "duress":
        raise refuse(ErrorCode.FORBIDDEN, "a duress alarm is resolved by someone else")
    if not own and not who.coordinates:
        raise refuse(ErrorCode.FORBIDDEN, "a coordinator resolves another worker's alarm")
    body = {"checkin": c.id, "user": c.user, "note": cmd.note}
    kind = "checkin.resolved"
    return _draft(who, cmd, state.id, kind, body, same_as_subject(c.meta.visibility, vis))
