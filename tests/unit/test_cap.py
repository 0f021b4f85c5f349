"""CAP 1.2 mapping: the specification's own examples in, hostile XML refused, export valid.

The four alerts of CAP 1.2 Appendix A are in tests/fixtures/cap/ (their
README says where from). Exports are checked against the same OASIS XSD
imports are, and read back by the importer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import v1
from protocol.errors import ErrorCode, ProtocolError
from protocol.limits import LIMITS
from server.integrations import cap

FIXTURES = Path(__file__).parent.parent / "fixtures" / "cap"
EXAMPLES = ("homeland_security", "thunderstorm", "earthquake", "amber_alert")


def example(name: str) -> bytes:
    return (FIXTURES / f"{name}.xml").read_bytes()


def refused(raw: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        cap.parse_alert(raw)
    return caught.value


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_specification_example_is_a_valid_alert(name: str) -> None:
    alert = cap.parse_alert(example(name))
    assert alert.identifier
    assert alert.sender
    assert alert.status == "Actual"
    command = cap.create_command(alert, LIMITS)
    assert isinstance(command, v1.IncidentCreate)
    assert command.source is not None
    assert command.source.identifier == alert.identifier
    assert command.tlp == "CLEAR"  # every example is scope Public


def test_the_examples_map_as_a_dispatcher_would_read_them() -> None:
    storm = cap.create_command(cap.parse_alert(example("thunderstorm")), LIMITS)
    assert isinstance(storm, v1.IncidentCreate)
    assert (storm.title, storm.category, storm.priority) == (
        "SEVERE THUNDERSTORM WARNING",
        "met",
        "critical",
    )
    # The polygon's vertex mean, the closing vertex counted once.
    assert storm.location is not None
    assert (storm.location.lat, storm.location.lon) == (38.4875, -119.93)
    assert storm.description is not None
    assert "TAKE COVER" in storm.description
    assert "KSTO1055887203" in storm.description

    quake = cap.parse_alert(example("earthquake"))
    assert quake.msg_type == "Update"
    assert quake.references == (
        cap.CapReference("trinet@caltech.edu", "TRI13970876.1", "2003-06-11T20:30:00-07:00"),
    )
    made = cap.create_command(quake, LIMITS)
    assert isinstance(made, v1.IncidentCreate)
    assert made.priority == "low"  # Minor, and Past
    assert made.location is not None
    assert (made.location.lat, made.location.lon) == (
        32.9525,
        -115.5527,
    )

    amber = cap.parse_alert(example("amber_alert"))
    assert [i.language for i in amber.infos] == ["en-US", "es-US"]
    made = cap.create_command(amber, LIMITS)
    assert isinstance(made, v1.IncidentCreate)
    assert made.title == "Amber Alert in Los Angeles County"  # the English block
    assert made.location is None  # a geocode only: the area is in the description
    assert made.description is not None
    assert "Los Angeles County" in made.description


def test_an_exercise_says_so_in_its_title_and_its_source() -> None:
    raw = example("homeland_security").replace(b"<status>Actual", b"<status>Exercise")
    made = cap.create_command(cap.parse_alert(raw), LIMITS)
    assert isinstance(made, v1.IncidentCreate)
    assert made.title.startswith("[Exercise] ")
    assert made.source is not None
    assert made.source.status == "Exercise"


def test_a_repost_is_the_same_action_and_another_alert_is_not() -> None:
    first = cap.parse_alert(example("thunderstorm"))
    again = cap.parse_alert(example("thunderstorm"))
    assert first.client_id == again.client_id
    assert first.client_id != cap.parse_alert(example("amber_alert")).client_id
    assert len(first.client_id) <= LIMITS.max_id_chars


def test_update_and_cancel_commands() -> None:
    alert = cap.parse_alert(example("earthquake"))
    update = cap.update_command(alert, "inc_0123456789abcdef", LIMITS)
    assert isinstance(update, v1.IncidentUpdate)
    assert update.incident == "inc_0123456789abcdef"
    assert update.priority == "low"
    cancel = cap.cancel_command(alert, "inc_0123456789abcdef", LIMITS)
    assert isinstance(cancel, v1.IncidentStatus)
    assert cancel.status == "closed"


# ------------------------------------------------------------------- hostile


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&lol9;</identifier></alert>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>&secret;</identifier></alert>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE alert SYSTEM "http://127.0.0.1:9/evil.dtd">
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>"""

PARAMETER_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE alert [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd"> %remote;]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"/>"""


@pytest.mark.parametrize(
    "raw",
    [BILLION_LAUGHS, XXE, EXTERNAL_DTD, PARAMETER_ENTITY],
    ids=["billion-laughs", "xxe", "external-dtd", "parameter-entity"],
)
def test_a_dtd_is_refused_before_any_entity_is_expanded(raw: bytes) -> None:
    err = refused(raw)
    assert err.code is ErrorCode.MALFORMED
    assert "DTD" in err.message
    assert "root:" not in err.message


def test_xml_that_is_not_a_cap_alert_is_a_typed_error() -> None:
    assert refused(b"<alert").code is ErrorCode.MALFORMED
    assert refused(b"").code is ErrorCode.MALFORMED
    assert refused(b"\xff\xfe<a/>").code is ErrorCode.MALFORMED
    deep = b"<a>" * 40 + b"</a>" * 40
    assert refused(deep).code is ErrorCode.MALFORMED
    cap11 = example("thunderstorm").replace(b"cap:1.2", b"cap:1.1")
    assert refused(cap11).code is ErrorCode.INVALID
    no_sender = example("thunderstorm").replace(b"<sender>KSTO@NWS.NOAA.GOV</sender>", b"")
    err = refused(no_sender)
    assert err.code is ErrorCode.INVALID
    assert err.detail == {"field": "/alert"}
    bad_status = example("thunderstorm").replace(b"<status>Actual", b"<status>Real")
    err = refused(bad_status)
    assert err.code is ErrorCode.INVALID
    assert err.detail == {"field": "/alert/status"}
    zulu = example("thunderstorm").replace(b"14:57:00-07:00", b"14:57:00Z")
    assert refused(zulu).code is ErrorCode.INVALID  # CAP 1.2 wants an offset, not "Z"


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_any_bytes_are_an_alert_or_a_typed_error(raw: bytes) -> None:
    try:
        cap.parse_alert(raw)
    except ProtocolError as err:
        code = err.code
    else:
        code = ErrorCode.INVALID  # (no random bytes are a valid alert)
    assert code in (ErrorCode.MALFORMED, ErrorCode.INVALID)


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=80))
def test_any_text_in_an_element_is_an_alert_or_a_typed_error(text: str) -> None:
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").encode("utf-8", "replace")
    raw = example("earthquake").replace(
        b"<circle>32.9525,-115.5527 0</circle>", b"<circle>" + escaped + b"</circle>"
    )
    try:
        alert = cap.parse_alert(raw)
    except ProtocolError as err:
        code = err.code
    else:
        code = ErrorCode.INVALID
        cap.create_command(alert, LIMITS)  # any circle text maps, or is skipped
    assert code in (ErrorCode.MALFORMED, ErrorCode.INVALID)


# -------------------------------------------------------------------- export


def view_of(command: v1.IncidentCreate, **extra: Any) -> dict[str, Any]:
    """What IncidentState.view holds for a just-created incident (the keys to_cap reads)."""
    return {
        "id": "inc_0123456789abcdef",
        "seq": 1,
        "title": command.title,
        "category": command.category,
        "priority": command.priority,
        "status": "reported",
        "tlp": command.tlp or "AMBER",
        "description": command.description,
        "location": command.location.to_wire() if command.location else None,
        "source": command.source.to_wire() if command.source else None,
        **extra,
    }


@pytest.mark.parametrize("name", EXAMPLES)
def test_an_imported_example_exports_as_valid_cap_and_reads_back(name: str) -> None:
    alert = cap.parse_alert(example(name))
    made = cap.create_command(alert, LIMITS)
    assert isinstance(made, v1.IncidentCreate)
    out = cap.to_cap(view_of(made), sender="liaison@example.org", now_ms=1_700_000_000_000)
    back = cap.parse_alert(out)  # validates against the XSD on the way
    assert back.msg_type == "Update"  # of the alert it came from
    assert back.references == (cap.CapReference(alert.sender, alert.identifier, alert.sent),)
    assert back.status == alert.status
    assert back.scope == "Public"
    (info,) = back.infos
    assert info.headline == made.title
    assert info.description == made.description
    assert cap.priority(info) == made.priority  # the scales map back to the same priority
    if made.location is not None:
        assert info.areas[0].point == (made.location.lat, made.location.lon)


def test_a_liaison_incident_exports_as_a_restricted_alert() -> None:
    made = v1.IncidentCreate(
        id="x",
        title="Person in crisis, Harbour Bridge",
        category="welfare",
        priority="high",
        location=v1.Location(51.5, -0.07, "Harbour Bridge"),
        orgs=(),
        lead_org=None,
        liaisons={},
        description=None,
    )
    out = cap.to_cap(view_of(made, tlp="AMBER"), sender="liaison@x y,z", now_ms=0)
    back = cap.parse_alert(out)
    assert (back.msg_type, back.status, back.scope) == ("Alert", "Actual", "Restricted")
    assert back.sender == "liaison@x_y_z"
    assert back.sent == "1970-01-01T00:00:00+00:00"
    assert back.infos[0].categories == ("Other",)
    assert back.infos[0].event == "welfare"
