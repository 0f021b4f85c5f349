"""Ranking assignees for a task: by expertise, availability and distance.

Pure. The caller (server/services/suggestions.py) builds one ``Candidate``
per person or organisation the reader may see, with only what the reader
may see of them (status and position through the audience rules), and this
module orders them. The score is a weighted sum of three parts in [0, 1]:

* **match**: the share of the incident's needs the candidate's tags cover
  (a person counts their organisation's tags too); 0 when nothing is needed;
* **availability**: from the responder status the reader may see
  (``AVAILABILITY``), or presence when no status was given;
* **proximity**: ``1 / (1 + km / HALF_KM)`` of the haversine distance from the
  last position the reader may see to the incident's location; 0 unknown.

Weights favour the expertise asked for: a specialist 10 km away ranks above
a generalist next door, an unavailable specialist below an available one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Mean Earth radius (IUGG), km.
EARTH_RADIUS_KM = 6371.0088
W_MATCH, W_AVAILABLE, W_NEAR = 0.5, 0.3, 0.2
#: The distance at which proximity is one half.
HALF_KM = 5.0
#: Availability per responder status; ``None`` keys: no status seen.
AVAILABILITY = {
    "available": 1.0,
    "on_scene": 0.6,
    "en_route": 0.4,
    "unavailable": 0.0,
}
ONLINE_NO_STATUS = 0.5
OFFLINE_NO_STATUS = 0.2


@dataclass(frozen=True, slots=True)
class Candidate:
    kind: str  # "user" or "org"
    id: str
    org: str
    name: str
    tags: frozenset[str]
    status: str | None = None
    online: bool = False
    #: (lat, lon) of the last position the reader may see; None: unknown.
    position: tuple[float, float] | None = None


@dataclass(frozen=True, slots=True)
class Suggestion:
    candidate: Candidate
    score: float
    matched: tuple[str, ...]
    missing: tuple[str, ...]
    availability: float
    distance_km: float | None

    def to_wire(self) -> dict[str, object]:
        c = self.candidate
        return {
            "kind": c.kind,
            "id": c.id,
            "org": c.org,
            "name": c.name,
            "score": self.score,
            "matched": list(self.matched),
            "missing": list(self.missing),
            "status": c.status,
            "online": c.online,
            "availability": self.availability,
            "distance_km": self.distance_km,
        }


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance between two (lat, lon) points in degrees."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def availability(c: Candidate) -> float:
    if c.status is not None:
        return AVAILABILITY.get(c.status, 0.0)
    return ONLINE_NO_STATUS if c.online else OFFLINE_NO_STATUS


def suggestion(c: Candidate, needs: Sequence[str], at: tuple[float, float] | None) -> Suggestion:
    matched = tuple(n for n in needs if n in c.tags)
    missing = tuple(n for n in needs if n not in c.tags)
    match = len(matched) / len(needs) if needs else 0.0
    avail = availability(c)
    km = haversine_km(c.position, at) if c.position is not None and at is not None else None
    near = 1.0 / (1.0 + km / HALF_KM) if km is not None else 0.0
    score = W_MATCH * match + W_AVAILABLE * avail + W_NEAR * near
    return Suggestion(
        c, round(score, 3), matched, missing, avail, None if km is None else round(km, 3)
    )


def rank(
    candidates: Iterable[Candidate],
    needs: Sequence[str],
    at: tuple[float, float] | None,
    limit: int = 20,
) -> list[Suggestion]:
    """Best first; ties by distance (unknown last), then name and id (stable)."""
    scored = [suggestion(c, needs, at) for c in candidates]
    scored.sort(
        key=lambda s: (
            -s.score,
            s.distance_km if s.distance_km is not None else math.inf,
            s.candidate.name,
            s.candidate.id,
        )
    )
    return scored[:limit]
