"""Cursor-on-Target and NENA EIDO mappings, on views built by the real projection.

The views come from ``IncidentState.view`` with a reader's ``Sight``, as the
REST routes build them, so these tests also show that what the reader may
not see (a police-only message, a redacted or coarsened position) never
reaches either export.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import tostring

import jsonschema_rs
import orjson
import pytest

from protocol import v1
from protocol.errors import ErrorCode, ProtocolError
from protocol.limits import LIMITS
from server.domain.events import StoredEvent
from server.domain.incident import IncidentState
from server.domain.sharing import (
    Agreement,
    AgreementsView,
    FieldClass,
    NoAgreements,
    Precision,
    StaticAgreements,
)
from server.integrations import cot, eido
from server.integrations.xml_input import parse_xml
from tests.views import view_of

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cot"
SCHEMA = Path(__file__).parents[2] / "server" / "integrations" / "schemas"
NOW = 1_764_650_000_000
POLICE, SHELTER = "metro-police", "harbour-shelter"
SECRET = "Police only: suspect known to carry a knife"
KINDS = {POLICE: "police", SHELTER: "ngo"}


def stored(
    seq: int, kind: str, user: str, org: str, body: dict[str, Any], **kw: Any
) -> StoredEvent:
    return StoredEvent(
        incident="inc_1",
        seq=seq,
        epoch="e1",
        type=kind,
        ts_ms=NOW - 60_000 + seq,
        actor_user=user,
        actor_org=org,
        actor_name=user.title(),
        client_id=f"c{seq}",
        visibility=kw.get("visibility"),
        body=body,
        digest="",
        hash="",
    )


def state() -> IncidentState:
    """A joint welfare incident: a police-only note, a responder of each side."""
    s = IncidentState(id="inc_1", epoch="e1")
    seq = itertools.count(1)
    events = [
        stored(
            next(seq),
            "incident.created",
            "u_dispatch",
            POLICE,
            {
                "title": "Person in crisis",
                "category": "welfare",
                "priority": "high",
                "location": {"lat": 51.5055, "lon": -0.0754, "address": "Harbour Bridge"},
                "orgs": [POLICE, SHELTER],
                "lead_org": POLICE,
                "status": "reported",
                "tlp": "AMBER",
            },
        ),
        stored(next(seq), "message.posted", "u_dispatch", POLICE, {"text": "Shelter informed"}),
        stored(
            next(seq),
            "message.posted",
            "u_dispatch",
            POLICE,
            {"text": SECRET},
            visibility=(POLICE,),
        ),
        stored(
            next(seq),
            "responder.status",
            "u_officer",
            POLICE,
            {"status": "en_route", "position": {"lat": 51.50612, "lon": -0.07684, "accuracy_m": 8}},
        ),
        stored(
            next(seq),
            "responder.status",
            "u_outreach",
            SHELTER,
            {"status": "on_scene", "position": {"lat": 51.50551, "lon": -0.07543, "accuracy_m": 5}},
        ),
    ]
    for ev in events:
        s.apply(ev)
    return s


def agreement(owner: str, recipient: str, precision: Precision) -> Agreement:
    return Agreement(
        id=f"{owner}-{recipient}",
        owner=owner,
        recipients=(recipient,),
        kinds=(),
        fields=(FieldClass.POSITION,),
        position=precision,
        categories=None,
        history=False,
        valid_from_ms=0,
        valid_until_ms=None,
        revoked_ms=None,
        created_by="test",
    )


def view_for(org: str, rules: AgreementsView) -> dict[str, Any]:
    return view_of(state(), org, NOW, rules, user=f"u_{org}")


# ------------------------------------------------------------------------ CoT


def test_the_cot_base_schema_example_reads() -> None:
    event = cot.parse_event((FIXTURES / "base_event.xml").read_bytes())
    assert (event.uid, event.type, event.how) == ("J-01334", "a-h-A-M-F-U-M", cot.DEFAULT_HOW)
    assert (event.lat, event.lon, event.hae, event.ce, event.le) == (
        30.0090027,
        -85.9578735,
        -42.6,
        45.3,
        99.5,
    )
    assert event.stale_ms - event.start_ms == 120_000
    # Stale since 2005: not a current position.
    with pytest.raises(ProtocolError) as stale:
        cot.position_command(event, "inc_1", NOW, LIMITS)
    assert stale.value.detail == {"field": "stale"}
    command = cot.position_command(event, "inc_1", event.start_ms, LIMITS)
    assert isinstance(command, v1.ResponderPosition)
    assert command.position == v1.Position(30.0090027, -85.9578735, 45.3)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b"<event/>", "version"),
        (b'<event version="1.0"/>', "version"),
        (b'<evt version="2.0"/>', "event"),
        (
            b'<event version="2.0" uid="a" type="t" time="x" start="x" stale="x"><point/></event>',
            "time",
        ),
        (
            b'<event version="2.0" uid="a" type="t" time="2026-01-01T00:00:00Z" '
            b'start="2026-01-01T00:00:00Z" stale="2026-01-01T00:01:00Z">'
            b'<point lat="91" lon="0"/></event>',
            "point.lat",
        ),
        (
            b'<event version="2.0" uid="a" type="t" time="2026-01-01T00:00:00Z" '
            b'start="2026-01-01T00:00:00Z" stale="2026-01-01T00:01:00Z">'
            b'<point lat="nan" lon="0"/></event>',
            "point.lat",
        ),
        (
            b'<event version="2.0" uid="a" type="t" time="2026-01-01T00:00:00Z" '
            b'start="2026-01-01T00:00:00Z" stale="2026-01-01T00:01:00Z"></event>',
            "point",
        ),
    ],
)
def test_a_bad_cot_event_names_its_field(raw: bytes, field: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        cot.parse_event(raw)
    assert caught.value.code is ErrorCode.INVALID
    assert caught.value.detail == {"field": field}


def test_a_cot_event_with_a_dtd_is_refused() -> None:
    raw = (
        b'<!DOCTYPE event [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<event version="2.0">&x;</event>'
    )
    with pytest.raises(ProtocolError) as caught:
        cot.parse_event(raw)
    assert caught.value.code is ErrorCode.MALFORMED


def cot_positions(view: dict[str, Any]) -> dict[str, cot.CotEvent]:
    """Each exported event, read back by the importer, by track uid."""
    root = parse_xml(cot.to_cot(view), "test")
    assert root.tag == "events"
    out = {}
    for node in root:
        event = cot.parse_event(tostring(node))
        out[event.uid] = event
    return out


def test_cot_out_follows_the_position_agreements() -> None:
    officer, outreach = cot.track_uid("inc_1", "u_officer"), cot.track_uid("inc_1", "u_outreach")
    # The police read their own officer exactly; the shelter's responder is
    # redacted without an agreement: not sent at all.
    police = cot_positions(view_for(POLICE, NoAgreements()))
    assert set(police) == {officer}
    assert (police[officer].lat, police[officer].lon, police[officer].ce) == (
        51.50612,
        -0.07684,
        8.0,
    )
    # An agreement for coarse positions: the shelter gets the officer on the
    # ~100 m grid, never the exact point.
    coarse = StaticAgreements([agreement(POLICE, SHELTER, Precision.COARSE)])
    shelter = cot_positions(view_for(SHELTER, coarse))
    assert set(shelter) == {officer, outreach}
    assert (shelter[officer].lat, shelter[officer].lon) == (51.506, -0.077)
    assert shelter[officer].ce >= 100.0
    assert shelter[outreach].ce == 5.0  # its own responder, exact
    exact = StaticAgreements([agreement(POLICE, SHELTER, Precision.EXACT)])
    assert cot_positions(view_for(SHELTER, exact))[officer].lat == 51.50612


# ----------------------------------------------------------------------- EIDO


@pytest.fixture(scope="module")
def eido_schema() -> Any:
    return jsonschema_rs.validator_for(
        orjson.loads((SCHEMA / "eido-subset.schema.json").read_bytes())
    )


def ids_and_refs(value: Any) -> tuple[set[str], set[str]]:
    ids: set[str] = set()
    refs: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$id":
                ids.add(item)
            elif key == "$ref":
                refs.add(item)
            else:
                more_ids, more_refs = ids_and_refs(item)
                ids |= more_ids
                refs |= more_refs
    elif isinstance(value, list):
        for item in value:
            more_ids, more_refs = ids_and_refs(item)
            ids |= more_ids
            refs |= more_refs
    return ids, refs


def test_the_eido_has_nena_shape_and_every_reference_resolves(eido_schema: Any) -> None:
    document = eido.to_eido(
        view_for(POLICE, NoAgreements()), issuer="liaison.example.org", org_kinds=KINDS
    )
    eido_schema.validate(document)
    ids, refs = ids_and_refs(document)
    assert refs <= ids, refs - ids
    incident = document["incidentComponent"]
    assert incident["incidentTypeCommonRegistryText"] == "WELFARE"
    assert incident["incidentCommonPriorityNumber"] == 8
    assert incident["incidentStatusCommonRegistryText"] == [
        "Active",
        "ResourcesEnroute",
        "ResourcesOnscene",
    ]
    owner = [a for a in document["agencyComponent"] if a["incidentOwningAgencyIndicator"]]
    assert [a["$id"] for a in owner] == ["metro-police.liaison.example.org"]
    # The same incident exported again names its components alike.
    again = eido.to_eido(
        view_for(POLICE, NoAgreements()), issuer="liaison.example.org", org_kinds=KINDS
    )
    assert again == document


def test_the_eido_holds_nothing_the_reader_may_not_see(eido_schema: Any) -> None:
    police = orjson.dumps(
        eido.to_eido(view_for(POLICE, NoAgreements()), issuer="x.org", org_kinds=KINDS)
    )
    assert SECRET.encode() in police  # the police see their own note
    shelter_doc = eido.to_eido(view_for(SHELTER, NoAgreements()), issuer="x.org", org_kinds=KINDS)
    eido_schema.validate(shelter_doc)
    shelter = orjson.dumps(shelter_doc)
    assert SECRET.encode() not in shelter
    assert b"Shelter informed" in shelter
    # No agreement: the officer's position is in no location of the shelter's EIDO.
    assert b"51.50612" not in shelter
    assert b"51.506 " not in shelter
    units = [
        loc
        for loc in shelter_doc["locationComponent"]
        if loc["locationTypeDescriptionRegistryText"] == "UnitLocation"
    ]
    assert len(units) == 1  # its own responder's
    coarse = StaticAgreements([agreement(POLICE, SHELTER, Precision.COARSE)])
    coarse_doc = orjson.dumps(
        eido.to_eido(view_for(SHELTER, coarse), issuer="x.org", org_kinds=KINDS)
    )
    assert b"51.50612" not in coarse_doc
    assert b"51.506 -0.077" in coarse_doc  # the ~100 m grid, as a PIDF-LO circle
