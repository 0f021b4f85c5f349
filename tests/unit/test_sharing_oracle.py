"""The leak test's oracle states the SPEC's sharing rules (tests/sharing_oracle.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sharing_oracle import (
    DEMO_AGREEMENTS,
    Audience,
    EventMeta,
    IncidentFacts,
    Reader,
    entitled,
    mention_outsiders,
    normalise,
    reply_visibility,
    responders_for,
    set_agreements,
    updated_for,
    visible_online,
)

POLICE, SHELTER, WILDLIFE = "metro-police", "harbour-shelter", "city-wildlife"
OFFICER = Reader("u_officer", POLICE, "responder")
OUTREACH = Reader("u_outreach", SHELTER, "responder")
RANGER = Reader("u_ranger", WILDLIFE, "responder")


@pytest.fixture(autouse=True)
def demo_agreements() -> Iterator[None]:
    """The oracle's agreements are module state the leak test moves: start from the demo's."""
    previous = set_agreements(DEMO_AGREEMENTS)
    yield
    set_agreements(previous)


def event(seq: int, visibility: tuple[str, ...] | None, **fields: object) -> EventMeta:
    base = {"type": "message.posted", "actor": "u_dispatch", "actor_org": POLICE}
    return EventMeta(
        incident="inc_1", seq=seq, cid=f"c{seq}", visibility=visibility, ts=1000 + seq,
        **{**base, **fields},  # type: ignore[arg-type]
    )  # fmt: skip


def incident(*events: EventMeta) -> IncidentFacts:
    facts = IncidentFacts("inc_1", {POLICE: 1, SHELTER: 1}, {SHELTER: "u_shelter-lead"}, "t")
    facts.events = {ev.seq: ev for ev in events}
    return facts


def test_visibility_decides_between_the_event_and_a_placeholder() -> None:
    public, police = event(1, None), event(2, (POLICE,))
    facts = incident(public, police)
    assert entitled(police, OFFICER, facts) is Audience.FULL
    assert entitled(police, OUTREACH, facts) is Audience.PLACEHOLDER
    assert entitled(public, OUTREACH, facts) is Audience.FULL
    assert entitled(public, RANGER, facts) is Audience.NONE


def test_a_newcomer_sees_earlier_amber_only_by_an_agreement_granting_history() -> None:
    """SPEC 9.4: police share history with the shelter (the demo), not with wildlife."""
    public, police = event(1, None), event(2, (POLICE,))
    facts = incident(public, police)
    facts.joined[WILDLIFE] = 3
    facts.joined[SHELTER] = 3
    assert entitled(public, RANGER, facts) is Audience.PLACEHOLDER
    assert entitled(public, OUTREACH, facts) is Audience.FULL
    assert entitled(police, RANGER, facts) is Audience.PLACEHOLDER
    green = event(1, None, label="GREEN")
    assert entitled(green, RANGER, facts) is Audience.FULL


def test_red_reaches_its_recipients_and_author_only() -> None:
    red = event(1, (POLICE, SHELTER), label="RED", recipients=("u_outreach",))
    facts = incident(red)
    assert entitled(red, OUTREACH, facts) is Audience.FULL
    assert entitled(red, OFFICER, facts) is Audience.PLACEHOLDER  # the author's own org
    assert entitled(red, Reader("u_dispatch", POLICE, "dispatcher"), facts) is Audience.FULL


def test_a_position_is_redacted_without_an_agreement() -> None:
    position = {"lat": 1.0, "lon": 2.0, "accuracy_m": None}
    moved = event(1, None, type="responder.position", position=position)
    facts = incident(moved)
    facts.joined[WILDLIFE] = 1
    assert entitled(moved, OUTREACH, facts) is Audience.FULL  # the demo's agreement
    assert entitled(moved, RANGER, facts) is Audience.REDACTED  # none


def test_visibility_rules_of_section_13() -> None:
    assert normalise([], POLICE) == (POLICE,)
    assert normalise(None, POLICE) is None
    assert normalise([SHELTER], POLICE) == (SHELTER, POLICE)
    assert reply_visibility((POLICE,), None) == (POLICE,)
    assert reply_visibility(None, (SHELTER,)) == (SHELTER,)
    assert reply_visibility((POLICE, SHELTER), (SHELTER,)) == (SHELTER,)
    assert reply_visibility((POLICE,), (SHELTER,)) == (POLICE,)
    assert mention_outsiders((POLICE,), [SHELTER, POLICE]) == [SHELTER]
    assert mention_outsiders(None, [SHELTER]) == []


def test_presence_shows_the_own_organisation_and_the_liaisons() -> None:
    org_of = {"u_officer": POLICE, "u_outreach": SHELTER, "u_shelter-lead": SHELTER}
    shown = visible_online(OFFICER, org_of, incident(), org_of)
    assert shown == {"u_officer", "u_shelter-lead"}


def test_a_restricted_position_and_its_time_stay_hidden() -> None:
    where = {"lat": 1.0, "lon": 2.0, "accuracy_m": None}
    later = {"lat": 3.0, "lon": 4.0, "accuracy_m": None}
    public = event(1, None, type="responder.position", actor="u_officer", position=where)
    police = event(2, (POLICE,), type="responder.position", actor="u_officer", position=later)
    facts = incident(event(0, None, type="incident.created"), public, police)
    assert responders_for(facts, OUTREACH)["u_officer"]["position"] == where
    assert responders_for(facts, OUTREACH)["u_officer"]["position_ts"] == public.ts
    assert responders_for(facts, OFFICER)["u_officer"]["position"] == later
    assert updated_for(facts, OUTREACH) == public.ts
