"""The pure retention rules (server/domain/retention.py), on an injected clock."""

from __future__ import annotations

import pytest

from protocol.errors import ProtocolError
from server.domain.retention import DAY_MS, Policy, decide, parse_policy

NOW = 1_800_000_000_000


def test_the_most_protective_period_wins_each_on_its_own() -> None:
    policies = [
        Policy("welfare", 30, 365, categories=("welfare",)),
        Policy("police", 7 * 365, None, orgs=("metro-police",)),
        Policy("default", 1, 10),
    ]
    joint = decide(policies, "welfare", ["metro-police", "harbour-shelter"])
    assert joint is not None
    assert (joint.archive_after_days, joint.archive_policy) == (7 * 365, "police")
    assert (joint.purge_after_days, joint.purge_policy) == (None, "police"), "never is longest"
    ngo = decide(policies, "welfare", ["harbour-shelter"])
    assert ngo is not None
    assert (ngo.archive_policy, ngo.purge_after_days) == ("welfare", 365)
    other = decide(policies, "theft", ["harbour-shelter"])
    assert other is not None
    assert other.archive_policy == "default", "the default only where nothing else matches"
    assert decide(policies[:2], "theft", ["harbour-shelter"]) is None, "no policy: kept hot"


def test_due_times_count_from_the_last_event_and_the_archiving() -> None:
    decision = decide([Policy("default", 30, 365)], "any", [])
    assert decision is not None
    last = NOW - 30 * DAY_MS
    assert decision.archive_due(True, last, NOW)
    assert not decision.archive_due(True, last + 1, NOW)
    assert not decision.archive_due(False, 0, NOW), "an open incident is never due"
    assert decision.purge_due(NOW - 365 * DAY_MS, NOW)
    assert not decision.purge_due(NOW - 364 * DAY_MS, NOW)
    keep = decide([Policy("default", 0)], "any", [])
    assert keep is not None
    assert not keep.purge_due(0, NOW)


@pytest.mark.parametrize(
    ("policy_id", "body", "field"),
    [
        ("bad id!", {"archive_after_days": 1}, "id"),
        ("p", {"archive_after_days": -1}, "archive_after_days"),
        ("p", {"archive_after_days": True}, "archive_after_days"),
        ("p", {"archive_after_days": 1, "purge_after_days": "7y"}, "purge_after_days"),
        ("p", {"archive_after_days": 1, "orgs": "metro-police"}, "orgs"),
        ("p", {"archive_after_days": 1, "colour": "red"}, "colour"),
        ("default", {"archive_after_days": 1, "categories": ["theft"]}, "id"),
    ],
)
def test_bad_policies_are_refused_by_field(policy_id: str, body: object, field: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_policy(policy_id, body)
    assert info.value.code.code == "invalid"
    assert info.value.detail == {"field": field}
