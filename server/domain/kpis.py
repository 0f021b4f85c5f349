"""KPIs of joint operations, folded from incident logs (SPEC 18.2).

Pure: ``incident_facts`` reduces one incident's log, as one reader may see
it, to the few facts the figures need; ``aggregate`` sums facts over many
incidents. The split is the incremental aggregate too: facts of a closed
incident never change (its log takes reviews only), so a cache of facts per
(incident, reader organisation) can be kept and summed again cheaply.

**What is counted.** Only events the reader may see, through the one
audience function (audience.py), judged as the timeline judges them (with
the incident's current sharing context): a placeholder counts as nothing, so
no figure moves because of an event the reader gets only as ``restricted``.
A figure about organisation X counts only what X did in events the reader
sees: a shelter's supervisor does not learn from the figures how fast the
police handled their police-only tasks.

``escalation.*`` and ``checkin.*`` events (rules that fire on due times)
are counted by type prefix, whatever their exact types.

**Exercises are not live work** (SPEC 28): ``by_mode`` keeps incidents
opened as ``exercise`` or ``test`` out of the figures, and counts them
separately only when asked, so a drill never improves a live time to
acknowledge.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from server.domain.audience import Audience, EventMeta, event_meta
from server.domain.events import StoredEvent
from server.domain.modes import is_live, mode_of

ESCALATION_PREFIX = "escalation."
CHECKIN_PREFIX = "checkin."
#: Statuses that end the time to resolve (the first one reached).
RESOLVED = frozenset({"resolved", "closed"})


@dataclass(slots=True)
class Assignment:
    """One assignment of a task to an organisation, and how it went."""

    org: str
    assigned_ms: int
    accepted_ms: int | None = None
    done_ms: int | None = None
    outcome: str | None = None  # declined, completed, cancelled, reassigned


@dataclass(slots=True)
class IncidentFacts:
    incident: str
    created_ms: int = 0
    category: str = ""
    priority: str = "normal"
    resolved_ms: int | None = None
    orgs: tuple[str, ...] = ()
    #: (acknowledging org, seconds from the urgent post to its first ack).
    acks: list[tuple[str, float]] = field(default_factory=list)
    #: Organisations mentioned in an urgent message that none of them acknowledged.
    unacked: list[str] = field(default_factory=list)
    assignments: list[Assignment] = field(default_factory=list)
    escalations: Counter[str] = field(default_factory=Counter)
    checkins: Counter[str] = field(default_factory=Counter)
    #: ``actual``, ``exercise`` or ``test`` (from ``incident.created``).
    mode: str = "actual"


Seen = Callable[[EventMeta], Audience]


def incident_facts(events: Sequence[StoredEvent], see: Seen) -> IncidentFacts:
    """The facts of one incident's log (seq order) from what ``see`` lets through."""
    facts = IncidentFacts(incident=events[0].incident if events else "")
    folder = _Folder(facts)
    for ev in events:
        if see(event_meta(ev)).visible:
            folder.apply(ev)
    folder.finish()
    return facts


class _Folder:
    """Walks visible events once, keeping what the facts need."""

    def __init__(self, facts: IncidentFacts) -> None:
        self.f = facts
        self.orgs: list[str] = []
        #: urgent message seq -> (posted ms, mentioned orgs, orgs that acked)
        self.urgent: dict[int, tuple[int, tuple[str, ...], set[str]]] = {}
        self.tasks: dict[int, Assignment] = {}

    def apply(self, ev: StoredEvent) -> None:
        kind, b = ev.type, ev.body
        if kind.startswith(ESCALATION_PREFIX):
            self.f.escalations[kind] += 1
        elif kind.startswith(CHECKIN_PREFIX):
            self.f.checkins[kind] += 1
        elif kind in ("incident.created", "incident.updated"):
            self._header(ev)
        elif kind == "incident.status_changed":
            if b.get("status") in RESOLVED and self.f.resolved_ms is None:
                self.f.resolved_ms = ev.ts_ms
        elif kind == "message.posted" and b.get("urgent"):
            mentioned = tuple((b.get("mentions") or {}).get("orgs") or ())
            self.urgent[ev.seq] = (ev.ts_ms, mentioned, set())
        elif kind == "message.acknowledged":
            self._ack(ev)
        elif kind == "task.created" and b.get("assignee"):
            self._assign(ev.seq, b["assignee"].get("org"), ev.ts_ms)
        elif kind == "task.assigned":
            self._assign(b.get("task"), (b.get("assignee") or {}).get("org"), ev.ts_ms)
        elif kind in _TASK_STEPS:
            self._task_step(kind, b.get("task"), ev.ts_ms)

    def _header(self, ev: StoredEvent) -> None:
        b = ev.body
        if ev.type == "incident.created":
            self.f.created_ms = ev.ts_ms
            self.f.mode = mode_of(b)
            self.orgs = list(b.get("orgs") or ())
        self.orgs += [o for o in b.get("add_orgs") or () if o not in self.orgs]
        if self.f.resolved_ms is None:  # the category and priority it was resolved under
            self.f.category = b.get("category") or self.f.category
            self.f.priority = b.get("priority") or self.f.priority

    def _ack(self, ev: StoredEvent) -> None:
        urgent = self.urgent.get(ev.body.get("message", 0))
        if urgent is not None and ev.actor_org not in urgent[2]:
            urgent[2].add(ev.actor_org)
            self.f.acks.append((ev.actor_org, (ev.ts_ms - urgent[0]) / 1000))

    def _assign(self, task: Any, org: Any, ms: int) -> None:
        if not isinstance(task, int) or not isinstance(org, str):
            return
        previous = self.tasks.get(task)
        if previous is not None and previous.outcome is None:
            previous.outcome = "reassigned"
        self.tasks[task] = a = Assignment(org=org, assigned_ms=ms)
        self.f.assignments.append(a)

    def _task_step(self, kind: str, task: Any, ms: int) -> None:
        a = self.tasks.get(task) if isinstance(task, int) else None
        if a is None or a.outcome is not None:
            return
        if kind == "task.accepted" and a.accepted_ms is None:
            a.accepted_ms = ms
        elif kind == "task.completed":
            a.done_ms, a.outcome = ms, "completed"
        elif kind in ("task.declined", "task.cancelled"):
            a.outcome = kind[5:]

    def finish(self) -> None:
        self.f.orgs = tuple(sorted(self.orgs))
        for _posted, mentioned, acked in self.urgent.values():
            self.f.unacked += [org for org in mentioned if org not in acked]


_TASK_STEPS = frozenset({"task.accepted", "task.declined", "task.completed", "task.cancelled"})


# ------------------------------------------------------------------ aggregate


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median_s": None, "mean_s": None, "max_s": None}
    return {
        "median_s": round(statistics.median(values), 3),
        "mean_s": round(statistics.fmean(values), 3),
        "max_s": round(max(values), 3),
    }


def aggregate(facts: Iterable[IncidentFacts]) -> dict[str, Any]:
    """The KPIs over many incidents' facts (SPEC 18.2 defines each figure)."""
    acks: dict[str, list[float]] = defaultdict(list)
    unacked: Counter[str] = Counter()
    tasks: dict[str, Counter[str]] = defaultdict(Counter)
    to_accept: dict[str, list[float]] = defaultdict(list)
    to_done: dict[str, list[float]] = defaultdict(list)
    resolve: dict[tuple[str, str], list[float]] = defaultdict(list)
    counted: Counter[tuple[str, str]] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    escalations: Counter[str] = Counter()
    checkins: Counter[str] = Counter()
    n = 0
    for f in facts:
        n += 1
        for org, seconds in f.acks:
            acks[org].append(seconds)
        unacked.update(f.unacked)
        for a in f.assignments:
            _count_assignment(a, tasks[a.org], to_accept[a.org], to_done[a.org])
        key = (f.category, f.priority)
        counted[key] += 1
        if f.resolved_ms is not None:
            resolve[key].append((f.resolved_ms - f.created_ms) / 1000)
        pairs.update(combinations(f.orgs, 2))
        escalations.update(f.escalations)
        checkins.update(f.checkins)
    return {
        "incidents": n,
        "acknowledgement": [
            {
                "org": org,
                "count": len(acks[org]),
                "unacknowledged": unacked[org],
                **_stats(acks[org]),
            }
            for org in sorted(set(acks) | set(unacked))
        ],
        "tasks": [
            {
                "org": org,
                **{k: tasks[org][k] for k in _TASK_COUNTS},
                "to_accept": _stats(to_accept[org]),
                "to_done": _stats(to_done[org]),
            }
            for org in sorted(tasks)
        ],
        "resolution": [
            {
                "category": cat,
                "priority": prio,
                "incidents": counted[(cat, prio)],
                "resolved": len(resolve[(cat, prio)]),
                **_stats(resolve[(cat, prio)]),
            }
            for cat, prio in sorted(counted)
        ],
        "joint": [{"orgs": list(pair), "incidents": c} for pair, c in sorted(pairs.items())],
        "escalations": _by_type(escalations),
        "checkins": {**_by_type(checkins), "missed": _missed(checkins)},
    }


def by_mode(facts: Iterable[IncidentFacts], include_exercises: bool = False) -> dict[str, Any]:
    """The live KPIs; exercises and tests apart (SPEC 18.2, 28).

    ``exercises_excluded`` counts the exercise and test incidents left out of
    the live figures (always, so a reader sees a drill was not counted);
    with ``include_exercises`` their own figures follow under ``exercises``.
    """
    live: list[IncidentFacts] = []
    practice: list[IncidentFacts] = []
    for f in facts:
        (live if is_live(f.mode) else practice).append(f)
    out = {**aggregate(live), "exercises_excluded": len(practice)}
    if include_exercises:
        out["exercises"] = aggregate(practice)
    return out


_TASK_COUNTS = ("assigned", "accepted", "declined", "completed", "cancelled", "reassigned")


def _count_assignment(
    a: Assignment, counts: Counter[str], to_accept: list[float], to_done: list[float]
) -> None:
    counts["assigned"] += 1
    if a.accepted_ms is not None:
        counts["accepted"] += 1
        to_accept.append((a.accepted_ms - a.assigned_ms) / 1000)
        if a.done_ms is not None:
            to_done.append((a.done_ms - a.accepted_ms) / 1000)
    if a.outcome is not None:
        counts[a.outcome] += 1


def _by_type(counts: Counter[str]) -> dict[str, Any]:
    return {"total": sum(counts.values()), "by_type": dict(sorted(counts.items()))}


def _missed(counts: Counter[str]) -> int:
    return sum(c for kind, c in counts.items() if "missed" in kind)


def to_csv_rows(kpis: dict[str, Any]) -> list[tuple[str, str, str, Any]]:
    """The KPIs as long rows ``(kpi, group, metric, value)`` for CSV."""
    rows: list[tuple[str, str, str, Any]] = [("incidents", "", "count", kpis["incidents"])]
    for r in kpis["acknowledgement"]:
        rows += [("acknowledgement", r["org"], k, v) for k, v in r.items() if k != "org"]
    for r in kpis["tasks"]:
        for k, v in r.items():
            if isinstance(v, dict):
                rows += [("tasks", r["org"], f"{k}.{m}", x) for m, x in v.items()]
            elif k != "org":
                rows.append(("tasks", r["org"], k, v))
    for r in kpis["resolution"]:
        group = f"{r['category']}/{r['priority']}"
        rows += [
            ("resolution", group, k, v) for k, v in r.items() if k not in ("category", "priority")
        ]
    rows += [("joint", "+".join(r["orgs"]), "incidents", r["incidents"]) for r in kpis["joint"]]
    for name in ("escalations", "checkins"):
        section = kpis[name]
        rows += [(name, "", k, v) for k, v in section.items() if k != "by_type"]
        rows += [(name, kind, "count", c) for kind, c in section["by_type"].items()]
    if "exercises_excluded" in kpis:
        rows.append(("exercises_excluded", "", "count", kpis["exercises_excluded"]))
    if "exercises" in kpis:  # the exercises' own figures, each row's kpi prefixed
        rows += [(f"exercises.{k}", g, m, v) for k, g, m, v in to_csv_rows(kpis["exercises"])]
    return rows
