"""The leak test's oracle states the SPEC's sharing rules (tests/sharing_oracle.py)."""

from __future__ import annotations

from tests.sharing_oracle import (
    Audience,
    EventMeta,
    IncidentFacts,
    Reader,
    entitled,
    mention_outsiders,
    normalise,
    reply_visibility,
    responders_for,
    updated_for,
    visible_online,
)

POLICE, SHELTER, WILDLIFE = "metro-police", "harbour-shelter", "city-wildlife"
OFFICER = Reader("u_officer", POLICE, "responder")
OUTREACH = Reader("u_outreach", SHELTER, "responder")
RANGER = Reader("u_ranger", WILDLIFE, "responder")


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


def test_a_newcomer_sees_earlier_public_events_but_not_restricted_ones() -> None:
    public, police = event(1, None), event(2, (POLICE,))
    facts = incident(public, police)
    facts.joined[WILDLIFE] = 3
    assert entitled(public, RANGER, facts) is Audience.FULL
    assert entitled(police, RANGER, facts) is Audience.PLACEHOLDER


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
