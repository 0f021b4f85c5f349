"""The assignee ranking (server/domain/suggest.py) against a hand-computed fixture."""

from __future__ import annotations

import math

import pytest

from protocol.errors import ProtocolError
from server.domain.expertise import check_tags
from server.domain.suggest import Candidate, haversine_km, rank

NEEDS = ("first_aid", "lang:ar")
AT = (0.0, 0.0)
#: One degree of the equator: 6371.0088 km * pi / 180.
KM_PER_DEGREE = 111.19508


def c(name: str, tags: set[str], **kw: object) -> Candidate:
    return Candidate("user", "u_" + name, "o1", name, frozenset(tags), **kw)  # type: ignore[arg-type]


def test_haversine_matches_the_hand_computed_values() -> None:
    assert haversine_km((0, 0), (0, 1)) == pytest.approx(KM_PER_DEGREE, abs=1e-4)
    assert haversine_km((0, 0), (1, 0)) == pytest.approx(KM_PER_DEGREE, abs=1e-4)
    # Berlin to Paris, about 878 km.
    assert haversine_km((52.52, 13.405), (48.8566, 2.3522)) == pytest.approx(877.5, abs=1)
    assert haversine_km((10, 20), (10, 20)) == 0


def test_the_fixture_ranks_as_computed_by_hand() -> None:
    people = [
        # 0.5*0 + 0.3*0.5 (online, no status) + 0.2*1 (0 km) = 0.35
        c("Dana", set(), online=True, position=(0.0, 0.0)),
        # 0.5*1 + 0.3*0 (unavailable) + 0 (no position) = 0.5
        c("Cem", {"first_aid", "lang:ar"}, status="unavailable"),
        # 0.5*0.5 + 0.3*1 + 0.2/(1 + 10.00756/5) = 0.25 + 0.3 + 0.066634 = 0.617
        c("Bea", {"first_aid"}, status="available", position=(0.0, 0.09)),
        # the same as Bea; earlier by name
        c("Abe", {"first_aid"}, status="available", position=(0.0, 0.09)),
        # 0.5*1 + 0.3*1 + 0.2*1 = 1.0
        c("Ali", {"first_aid", "lang:ar", "shelter"}, status="available", position=(0.0, 0.0)),
        # 0.5*0.5 + 0.3*0.2 (offline, no status) = 0.31
        Candidate("org", "shelter", "shelter", "Shelter", frozenset({"lang:ar"})),
        # 0.3*0.4 (en route) = 0.12
        c("Eve", set(), status="en_route"),
    ]
    ranked = rank(people, NEEDS, AT)
    got = [(s.candidate.name, s.score) for s in ranked]
    assert got == [
        ("Ali", 1.0),
        ("Abe", 0.617),
        ("Bea", 0.617),
        ("Cem", 0.5),
        ("Dana", 0.35),
        ("Shelter", 0.31),
        ("Eve", 0.12),
    ]
    bea = ranked[2]
    assert bea.matched == ("first_aid",)
    assert bea.missing == ("lang:ar",)
    assert bea.distance_km == pytest.approx(0.09 * KM_PER_DEGREE, abs=1e-3)
    assert ranked[3].distance_km is None
    assert rank(people, NEEDS, AT, limit=2)[1].candidate.name == "Abe"


def test_without_needs_or_location_only_availability_counts() -> None:
    ranked = rank([c("A", {"first_aid"}, status="en_route"), c("B", set(), online=True)], (), None)
    assert [(s.candidate.name, s.score) for s in ranked] == [("B", 0.15), ("A", 0.12)]
    assert all(s.distance_km is None for s in ranked)
    assert not math.isnan(ranked[0].score)


def test_tags_are_the_vocabulary_or_a_language() -> None:
    assert check_tags(["lang:ar", "first_aid", "lang:ar"]) == ("lang:ar", "first_aid")
    for bad in ("First Aid", "lang:arabic", "lang:", 3, "cooking"):
        with pytest.raises(ProtocolError) as err:
            check_tags([bad])
        assert err.value.code.code == "invalid"
    with pytest.raises(ProtocolError):
        check_tags([f"lang:{a}{b}" for a in "abcdef" for b in "xyz"])
