"""Post-incident reviews: the projection of ``review.submit`` and ``review.action_done``.

One review per participating organisation. A later ``review.submit`` by the
same organisation supersedes its earlier one (SPEC 8.12); every submitted
review is kept, and a reader is shown, per organisation, the latest one it may
see: a correction made police-only must not hide, nor reveal, anything to the
shelter that saw the first version. A follow-up action is open until a
``review.action_done`` names its id; a mark carries over to a superseding
review that keeps the same action id. Action ids are unique in an incident
across organisations (decide refuses a clash), so a mark names one action.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from server.domain.audience import Audience, EventMeta, event_meta
from server.domain.events import StoredEvent


@dataclass(frozen=True, slots=True)
class ReviewState:
    seq: int
    org: str
    author_user: str
    author_name: str
    ts_ms: int
    visibility: tuple[str, ...] | None
    body: dict[str, Any]
    meta: EventMeta

    @property
    def actions(self) -> list[dict[str, Any]]:
        return list(self.body.get("actions") or ())


@dataclass(frozen=True, slots=True)
class DoneMark:
    """An action marked done, by the event that did it."""

    seq: int
    ts_ms: int
    by_user: str
    by_name: str
    note: str | None
    meta: EventMeta


@dataclass(slots=True)
class Reviews:
    #: Every review by the seq of its event.
    by_seq: dict[int, ReviewState] = field(default_factory=dict)
    #: org -> the seqs of its reviews, oldest first.
    history: dict[str, list[int]] = field(default_factory=dict)
    #: action id -> the marks that say it is done (one per sharing, first wins).
    done: dict[str, list[DoneMark]] = field(default_factory=dict)

    def latest(self, org: str) -> ReviewState | None:
        seqs = self.history.get(org)
        return self.by_seq[seqs[-1]] if seqs else None

    def owner_org_of_action(self, action_id: str) -> str | None:
        """The organisation whose reviews name ``action_id``, if any."""
        for org, seqs in self.history.items():
            if any(a["id"] == action_id for seq in seqs for a in self.by_seq[seq].actions):
                return org
        return None

    def to_wire(
        self, see: Callable[[EventMeta], Audience], now_ms: int
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The reviews a reader may see (latest visible per organisation), and their
        open actions, soonest due first."""
        reviews, open_actions = [], []
        for org, seqs in self.history.items():
            shown = next(
                (r for s in reversed(seqs) if see((r := self.by_seq[s]).meta).visible), None
            )
            if shown is None:
                continue
            wire = _review_wire(shown, self._marks(shown, see), now_ms)
            wire["org"] = org
            reviews.append(wire)
            open_actions += [
                {**a, "review": shown.seq, "org": org} for a in wire["actions"] if not a["done"]
            ]
        open_actions.sort(key=lambda a: (a["due"], a["id"]))
        return reviews, open_actions

    def _marks(
        self, review: ReviewState, see: Callable[[EventMeta], Audience]
    ) -> dict[str, DoneMark]:
        out = {}
        for action in review.actions:
            mark = next((m for m in self.done.get(action["id"], ()) if see(m.meta).visible), None)
            if mark is not None:
                out[action["id"]] = mark
        return out


def _review_wire(review: ReviewState, marks: dict[str, DoneMark], now_ms: int) -> dict[str, Any]:
    b = review.body
    actions = []
    for a in review.actions:
        mark = marks.get(a["id"])
        actions.append(
            {
                "id": a["id"],
                "text": a["text"],
                "owner": a["owner"],
                "due": a["due"],
                "done": mark is not None,
                "done_ts": mark.ts_ms if mark else None,
                "done_by": mark.by_user if mark else None,
                "overdue": mark is None and a["due"] * 1000 < now_ms,
            }
        )
    return {
        "seq": review.seq,
        "org": review.org,
        "author": {"user": review.author_user, "name": review.author_name},
        "ts": review.ts_ms,
        "tlp": review.meta.label.value,
        "visibility": list(review.visibility) if review.visibility is not None else None,
        "went_well": b.get("went_well"),
        "went_badly": b.get("went_badly"),
        "rating": b.get("rating"),
        "actions": actions,
        "supersedes": b.get("supersedes"),
    }


def apply_review(reviews: Reviews, ev: StoredEvent) -> None:
    org = ev.body.get("org") or ev.actor_org
    reviews.by_seq[ev.seq] = ReviewState(
        seq=ev.seq,
        org=org,
        author_user=ev.actor_user,
        author_name=ev.actor_name,
        ts_ms=ev.ts_ms,
        visibility=ev.visibility,
        body=ev.body,
        meta=event_meta(ev),
    )
    reviews.history.setdefault(org, []).append(ev.seq)


def apply_action_done(reviews: Reviews, ev: StoredEvent) -> None:
    action_id = ev.body.get("action_id")
    if not isinstance(action_id, str):
        return
    mark = DoneMark(
        seq=ev.seq,
        ts_ms=ev.ts_ms,
        by_user=ev.actor_user,
        by_name=ev.actor_name,
        note=ev.body.get("note"),
        meta=event_meta(ev),
    )
    reviews.done.setdefault(action_id, []).append(mark)
