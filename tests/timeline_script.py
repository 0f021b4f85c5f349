"""One scripted joint incident that exercises every command type, shared by
the differential tests.

``run_script`` drives it through any executor ``(username, command) -> ack``:
the in-process ``CommandService`` of ``tests/contract/test_projection_differential.py``
(per backend) and the real server of ``python -m tests.record_timeline`` (which
records ``tests/fixtures/timeline-joint.json`` for the cross-language test).

Who does what (the demo users of ``server.services.admin``): ``dispatch`` and
``officer`` are Metro Police, ``outreach`` and ``shelter-lead`` the Harbour
Street Shelter. Police-only and shelter-only entries give each organisation
``restricted`` placeholders, follow-ups of restricted subjects (edits, acks,
retractions, task transitions) inherit them, and responders report under
several visibilities.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from protocol.v1 import receipt_id

Ack = dict[str, Any]
#: Runs one command as a user and returns its ack (``incident``, ``seq``, ``ts``...).
Execute = Callable[[str, dict[str, Any]], Awaitable[Ack]]
#: Called after each step with the step's name and its ack.
Observe = Callable[[str, Ack], Awaitable[None]]

POLICE = "metro-police"
SHELTER = "harbour-shelter"
ORGS = (POLICE, SHELTER)
#: One member of each organisation, whose reads stand for the organisation's.
READER = {POLICE: "dispatch", SHELTER: "outreach"}


async def _noop(step: str, ack: Ack) -> None:
    return None


async def run_script(execute: Execute, observe: Observe = _noop, *, tag: str = "t") -> str:
    """Play the whole script; returns the incident id.

    ``tag`` prefixes every client action id, so one server can hold several runs.
    """
    n = 0

    async def do(user: str, step: str, cmd: dict[str, Any]) -> int:
        nonlocal n
        n += 1
        ack = await execute(user, {"id": f"{tag}-{n}-{step}", **cmd})
        await observe(step, ack)
        seq: int = ack["seq"]
        return seq

    created = await execute(
        "dispatch",
        {
            "type": "incident.create",
            "id": f"{tag}-0-create",
            "title": "Person in crisis on Harbour Bridge",
            "category": "welfare",
            "priority": "high",
            "location": {"lat": 51.5055, "lon": -0.0754, "address": "Harbour Bridge, north end"},
            "orgs": [SHELTER],
            "lead_org": POLICE,
            "liaisons": {POLICE: "u_dispatch"},
            "description": "Caller reports a distressed person near the railing.",
        },
    )
    await observe("incident.create", created)
    inc: str = created["incident"]

    async def on(user: str, step: str, **cmd: Any) -> int:
        return await do(user, step, {"incident": inc, **cmd})

    police_only = [POLICE]
    shelter_only = [SHELTER]
    # ---- the incident itself
    await on("dispatch", "status-active", type="incident.status", status="active", note="On scene")
    await on(
        "dispatch",
        "update",
        type="incident.update",
        priority="critical",
        location={"lat": 51.5061, "lon": -0.0768},
        liaisons={SHELTER: "u_shelter-lead"},
        description="Person sitting on the railing, talking.",
    )
    # ---- messages, public and restricted, replies, acks, edits, retractions
    m1 = await on(
        "dispatch",
        "post-urgent",
        type="message.post",
        text="Shelter team, can you send someone? Officers 5 min out.",
        mentions={"orgs": [SHELTER]},
        urgent=True,
    )
    m2 = await on(
        "dispatch",
        "post-police",
        type="message.post",
        text="Known to us: 3 calls",
        visibility=police_only,
    )
    m3 = await on("officer", "reply-police", type="message.post", text="Copy.", reply_to=m2)
    m4 = await on(
        "outreach", "reply-public", type="message.post", text="Nia on her way", reply_to=m1
    )
    await on("outreach", "ack-public", type="message.ack", message=m1)
    await on("officer", "ack-public-2", type="message.ack", message=m1)
    await on("officer", "ack-police", type="message.ack", message=m2)
    await on(
        "dispatch", "edit-public", type="message.edit", message=m1, text="Send someone please."
    )
    await on(
        "dispatch", "edit-police", type="message.edit", message=m2, text="Known to us: 4 calls"
    )
    await on("officer", "retract-police", type="message.retract", message=m3)
    m5 = await on(
        "shelter-lead",
        "post-shelter",
        type="message.post",
        text="Bed 12 free",
        visibility=shelter_only,
    )
    await on("shelter-lead", "edit-shelter", type="message.edit", message=m5, text="Bed 14 free")
    await on("outreach", "ack-shelter", type="message.ack", message=m5)
    await on("outreach", "retract-public", type="message.retract", message=m4)
    # ---- tasks: every transition, public and police-only
    t1 = await on(
        "dispatch",
        "task-org",
        type="task.create",
        title="Outreach worker to the bridge",
        details="North steps.",
        assignee={"org": SHELTER},
    )
    await on("outreach", "accept", type="task.accept", task=t1, note="8 minutes")
    await on("outreach", "start", type="task.start", task=t1)
    await on("outreach", "complete", type="task.complete", task=t1, note="Talking with them")
    t2 = await on(
        "dispatch", "task-police", type="task.create", title="Check PNC", visibility=police_only
    )
    await on(
        "dispatch", "assign-police", type="task.assign", task=t2, assignee={"user": "u_officer"}
    )
    await on("officer", "decline-police", type="task.decline", task=t2, note="Busy")
    await on(
        "dispatch", "reassign-police", type="task.assign", task=t2, assignee={"user": "u_officer"}
    )
    await on("officer", "accept-police", type="task.accept", task=t2)
    await on("dispatch", "cancel-police", type="task.cancel", task=t2, note="Not needed")
    t3 = await on(
        "dispatch", "task-user", type="task.create", title="Blanket", assignee={"org": SHELTER}
    )
    await on("outreach", "decline", type="task.decline", task=t3, note="None left")
    await on(
        "dispatch", "assign-user", type="task.assign", task=t3, assignee={"user": "u_outreach"}
    )
    await on("outreach", "accept-user", type="task.accept", task=t3)
    await on("outreach", "complete-accepted", type="task.complete", task=t3)
    t4 = await on("shelter-lead", "task-open", type="task.create", title="Call the family")
    await on("shelter-lead", "cancel-open", type="task.cancel", task=t4)
    # ---- responders: statuses and positions under several visibilities
    pos = {"lat": 51.5058, "lon": -0.0761, "accuracy_m": 12}
    await on("officer", "status-public", type="responder.status", status="en_route", position=pos)
    await on(
        "officer",
        "position-police",
        type="responder.position",
        lat=51.5059,
        lon=-0.0762,
        visibility=police_only,
    )
    await on(
        "officer",
        "status-police",
        type="responder.status",
        status="on_scene",
        visibility=police_only,
    )
    await on("outreach", "status-shelter", type="responder.status", status="en_route", position=pos)
    await on("outreach", "position-public", type="responder.position", lat=51.506, lon=-0.076)
    await on("outreach", "status-on-scene", type="responder.status", status="on_scene")
    await on("officer", "status-public-2", type="responder.status", status="available")
    # Two statuses sent back to back, pipelined: stored in one batch they often
    # share a millisecond, and the later one (police-only) must win for police.
    await asyncio.gather(
        on("officer", "pair-public", type="responder.status", status="en_route"),
        on(
            "officer",
            "pair-police",
            type="responder.status",
            status="on_scene",
            visibility=police_only,
        ),
    )
    # ---- receipts, a task with a due time, lone-worker check-ins
    for state in ("delivered", "seen"):
        rid = receipt_id(inc, "message", m1, state)
        await on(
            "outreach", f"receipt-{state}", type="receipt.mark", id=rid, message=m1, state=state
        )
    t5 = await on(
        "dispatch",
        "task-due",
        type="task.create",
        title="Debrief",
        assignee={"org": SHELTER},
        due_in_s=3600,
    )
    rid = receipt_id(inc, "task", t5, "seen")
    await on("outreach", "receipt-task", type="receipt.mark", id=rid, task=t5, state="seen")
    await on("outreach", "checkin-start", type="checkin.start", interval_s=1800, position=pos)
    await on("outreach", "checkin-ok", type="checkin.ok", position=pos)
    await on("outreach", "checkin-end", type="checkin.end")
    await on(
        "officer", "checkin-police", type="checkin.start", interval_s=900, visibility=police_only
    )
    await on("officer", "duress-police", type="checkin.duress", position=pos)
    resolve = {"incident": inc, "type": "checkin.resolve"}
    await do("dispatch", "resolve-police", {**resolve, "user": "u_officer", "note": "Safe"})
    await on("outreach", "duress-public", type="checkin.duress")
    await do("shelter-lead", "resolve-public", {**resolve, "user": "u_outreach"})
    # ---- capacity requests (SPEC 27.3): one accepted, one declined
    beds = await on(
        "dispatch", "capacity-beds", type="capacity.request", org=SHELTER, items={"beds": 2}
    )
    await on("shelter-lead", "capacity-ok", type="capacity.accept", request=beds, note="Held")
    van = await on(
        "dispatch", "capacity-van", type="capacity.request", org=SHELTER, items={"vehicles": 1}
    )
    await on("shelter-lead", "capacity-no", type="capacity.decline", request=van)
    # ---- the incident changes and closes
    await on("dispatch", "update-lead", type="incident.update", lead_org=SHELTER)
    await on("shelter-lead", "status-resolved", type="incident.status", status="resolved")
    await on("shelter-lead", "status-closed", type="incident.status", status="closed", note="Safe")
    # ---- the post-incident reviews: public and police-only, one superseded
    due = 1_767_312_000.0  # 2026-01-02 00:00 UTC
    action = {"id": "a-handover", "text": "Agree a handover script", "owner": "u_outreach"}
    review = {"went_well": "Fast handover", "went_badly": "Radio gaps", "rating": 4}
    await on(
        "shelter-lead",
        "review-shelter",
        type="review.submit",
        **review,
        actions=[{**action, "due": due}],
    )
    await on(
        "dispatch",
        "review-police",
        type="review.submit",
        visibility=police_only,
        went_well="Quick",
        went_badly="PNC slow",
        rating=3,
        actions=[{"id": "a-pnc", "text": "Raise PNC latency", "owner": "u_officer", "due": due}],
    )
    await on(
        "shelter-lead",
        "review-shelter-2",
        type="review.submit",
        **{**review, "rating": 5},
        actions=[
            {**action, "due": due},
            {"id": "a-beds", "text": "Beds list", "owner": "u_shelter-lead", "due": due + 86400},
        ],
    )
    await on("outreach", "action-done", type="review.action_done", action_id="a-handover")
    return inc
