"""CAP, EIDO and CoT end to end: a real server, a bot with an API key, real readers.

The CAP alerts are the specification's own examples (tests/fixtures/cap);
each export is checked against its standard's schema and for what its reader
may not see.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import tostring

import aiohttp
import jsonschema_rs
import orjson
import pytest

from liaison_client import LiaisonClient
from server.integrations import cap, cot
from server.integrations.xml_input import parse_xml
from tests.conftest import LiaisonServer, bot_client, connect
from tests.unit.test_cap import BILLION_LAUGHS, XXE, example

SCHEMAS = Path(__file__).parents[2] / "server" / "integrations" / "schemas"
SECRET = "Police only: the caller is a known informant"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiaisonServer]:
    """A server of this module's own: its CAP incidents stay out of other tests' lists."""
    server = LiaisonServer(tmp_path_factory.mktemp("standards"))
    server.start()
    yield server
    server.stop()
    assert server.errors_logged() == [], "the server logged errors"


async def call(
    srv: LiaisonServer, token: str | None, method: str, path: str, body: bytes = b""
) -> tuple[int, str, bytes]:
    headers = {"Content-Type": "application/xml"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, srv.url + path, data=body, headers=headers) as resp,
    ):
        return resp.status, resp.content_type, await resp.read()


async def post_cap(srv: LiaisonServer, token: str, raw: bytes) -> tuple[int, dict[str, Any]]:
    status, kind, body = await call(srv, token, "POST", "/api/v1/integrations/cap", raw)
    assert kind == "application/json", body
    answer: dict[str, Any] = orjson.loads(body)
    return status, answer


def variant(raw: bytes, identifier: str, msg_type: str, references: str, headline: str) -> bytes:
    """The thunderstorm example as a later message of the same sender."""
    return (
        raw.replace(b"<identifier>KSTO1055887203<", f"<identifier>{identifier}<".encode())
        .replace(b"<msgType>Alert<", f"<msgType>{msg_type}<".encode())
        .replace(
            b"<scope>Public</scope>",
            f"<scope>Public</scope><references>{references}</references>".encode(),
        )
        .replace(b"SEVERE THUNDERSTORM WARNING<", f"{headline}<".encode())
    )


async def test_cap_alerts_become_incidents_updates_and_closures_once(
    srv: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    bot = await bot_client(clients, srv, coordinator=True, live=False)
    assert bot.token is not None
    made = {}
    for name in ("homeland_security", "thunderstorm", "earthquake", "amber_alert"):
        status, answer = await post_cap(srv, bot.token, example(name))
        assert (status, answer["action"], answer["duplicate"]) == (201, "created", False), answer
        made[name] = answer["incident"]
    # The earthquake is an Update of an alert this server never saw: a new incident.
    assert len(set(made.values())) == 4

    storm = made["thunderstorm"]
    status, again = await post_cap(srv, bot.token, example("thunderstorm"))
    assert (status, again["incident"], again["duplicate"]) == (200, storm, True)
    assert (await bot.request("GET", f"/api/v1/incidents/{storm}/timeline"))["head_seq"] == 1
    view = await bot.request("GET", f"/api/v1/incidents/{storm}")
    assert (view["title"], view["priority"], view["tlp"]) == (
        "SEVERE THUNDERSTORM WARNING",
        "critical",
        "CLEAR",
    )
    assert view["source"] == {
        "format": "CAP-1.2",
        "sender": "KSTO@NWS.NOAA.GOV",
        "identifier": "KSTO1055887203",
        "sent": "2003-06-17T14:57:00-07:00",
        "status": "Actual",
    }
    assert (view["location"]["lat"], view["location"]["lon"]) == (38.4875, -119.93)

    first = "KSTO@NWS.NOAA.GOV,KSTO1055887203,2003-06-17T14:57:00-07:00"
    update = variant(
        example("thunderstorm"), "KSTO1055887203-2", "Update", first, "STORM WEAKENING"
    )
    for expected_duplicate in (False, True):
        status, answer = await post_cap(srv, bot.token, update)
        assert (status, answer["action"], answer["incident"]) == (200, "updated", storm), answer
        assert answer["duplicate"] is expected_duplicate
    assert (await bot.request("GET", f"/api/v1/incidents/{storm}"))["title"] == "STORM WEAKENING"

    both = first + " KSTO@NWS.NOAA.GOV,KSTO1055887203-2,2003-06-17T15:10:00-07:00"
    cancel = variant(example("thunderstorm"), "KSTO1055887203-3", "Cancel", both, "ALL CLEAR")
    for expected_duplicate in (False, True):
        status, answer = await post_cap(srv, bot.token, cancel)
        assert (status, answer["action"], answer["incident"]) == (200, "cancelled", storm), answer
        assert answer["duplicate"] is expected_duplicate
    closed = await bot.request("GET", f"/api/v1/incidents/{storm}")
    assert closed["status"] == "closed"
    assert closed["seq"] == 3  # created, updated, closed: each once

    stray = variant(
        example("thunderstorm"), "X-9", "Cancel", "a@b,never-sent,2003-06-17T15:10:00-07:00", "X"
    )
    status, answer = await post_cap(srv, bot.token, stray)
    assert (status, answer["error"]["code"]) == (404, "not_found")


async def test_an_exercise_stays_an_exercise_through_export(
    srv: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    bot = await bot_client(clients, srv, coordinator=True, live=False)
    assert bot.token is not None
    raw = (
        example("amber_alert")
        .replace(b"<status>Actual", b"<status>Exercise")
        .replace(b"KAR0-0306112239-SW", b"KAR0-EXERCISE-1")
    )
    status, answer = await post_cap(srv, bot.token, raw)
    assert status == 201, answer
    view = await bot.request("GET", f"/api/v1/incidents/{answer['incident']}")
    assert view["title"] == "[Exercise] Amber Alert in Los Angeles County"
    status, kind, body = await call(
        srv, bot.token, "GET", f"/api/v1/incidents/{answer['incident']}/cap"
    )
    assert (status, kind) == (200, "application/xml")
    exported = cap.parse_alert(body)  # valid against the XSD
    assert (exported.status, exported.msg_type, exported.scope) == ("Exercise", "Update", "Public")
    assert exported.references == (
        cap.CapReference("KARO@CLETS.DOJ.CA.GOV", "KAR0-EXERCISE-1", "2003-06-11T22:39:00-07:00"),
    )


#: Hostile and invalid bodies, with the answer each gets.
BAD_CAP = [
    (BILLION_LAUGHS, 400, "malformed"),
    (XXE, 400, "malformed"),
    (b"<alert", 400, "malformed"),
    (b'{"type": "incident.create"}', 400, "malformed"),
    (b"", 400, "malformed"),
    (b"<a>" + b"x" * 300_000 + b"</a>", 413, "too_large"),
    (example("thunderstorm").replace(b"<status>Actual", b"<status>Real"), 400, "invalid"),
    (example("thunderstorm").replace(b"<msgType>Alert", b"<msgType>Ack"), 400, "invalid"),
    (example("thunderstorm").replace(b"<status>Actual", b"<status>System"), 400, "invalid"),
]


async def test_hostile_or_invalid_cap_is_a_typed_error(
    srv: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    bot = await bot_client(clients, srv, coordinator=True, live=False)
    assert bot.token is not None
    for raw, status, code in BAD_CAP:
        answered, answer = await post_cap(srv, bot.token, raw)
        assert (answered, answer["error"]["code"]) == (status, code), (raw[:80], answer)
    denied, _ = await post_cap(srv, "", example("thunderstorm"))
    assert denied == 401


def cot_event(uid: str, lat: float, lon: float, ce: float = 6.0) -> bytes:
    now = int(time.time() * 1000)
    return (
        f'<?xml version="1.0" standalone="yes"?><event version="2.0" uid="{uid}" '
        f'type="a-f-G-U-C" how="m-g" time="{cot.cot_time(now)}" start="{cot.cot_time(now)}" '
        f'stale="{cot.cot_time(now + 120_000)}"><point lat="{lat}" lon="{lon}" hae="9999999.0" '
        f'ce="{ce}" le="9999999.0"/><detail><contact callsign="{uid}"/></detail></event>'
    ).encode()


async def tracks(srv: LiaisonServer, token: str | None, incident: str) -> dict[str, cot.CotEvent]:
    status, kind, body = await call(srv, token, "GET", f"/api/v1/incidents/{incident}/cot")
    assert (status, kind) == (200, "application/xml"), body
    return {e.uid: e for e in (cot.parse_event(tostring(n)) for n in parse_xml(body, "test"))}


async def test_exports_and_cot_follow_the_sharing_rules(
    srv: LiaisonServer, clients: list[LiaisonClient]
) -> None:
    dispatch = await connect(clients, srv, "dispatch", live=False)
    officer = await connect(clients, srv, "officer", live=False)
    outreach = await connect(clients, srv, "outreach", live=False)
    shelter = await connect(clients, srv, "shelter-lead", live=False)
    created = await dispatch.request(
        "POST",
        "/api/v1/incidents",
        {
            "id": "standards-theft",
            "title": "Theft at the harbour",
            "category": "theft",  # no demo agreement covers it: positions stay home
            "orgs": ["metro-police", "harbour-shelter"],
            "location": {"lat": 51.5, "lon": -0.07, "address": "Harbour Street"},
        },
    )
    incident = created["incident"]
    await dispatch.request(
        "POST",
        "/api/v1/commands",
        {
            "type": "message.post",
            "id": "s-secret",
            "incident": incident,
            "text": SECRET,
            "visibility": ["metro-police"],
        },
    )
    # Each responder's TAK device posts its position as CoT; a re-sent event is stored once.
    for client, uid, lat in (
        (officer, "ANDROID-officer", 51.50612),
        (outreach, "ANDROID-outreach", 51.50551),
    ):
        event = cot_event(uid, lat, -0.0768)
        for expected in (False, True):
            status, _, body = await call(
                srv, client.token, "POST", f"/api/v1/incidents/{incident}/cot", event
            )
            assert status == 200, body
            assert orjson.loads(body)["duplicate"] is expected

    officer_track = cot.track_uid(incident, "u_officer")
    outreach_track = cot.track_uid(incident, "u_outreach")
    assert set(await tracks(srv, dispatch.token, incident)) == {officer_track}
    assert set(await tracks(srv, shelter.token, incident)) == {outreach_track}
    assert (await tracks(srv, dispatch.token, incident))[officer_track].lat == 51.50612

    validator = jsonschema_rs.validator_for(
        orjson.loads((SCHEMAS / "eido-subset.schema.json").read_bytes())
    )
    for client, sees_secret in ((dispatch, True), (shelter, False)):
        status, kind, body = await call(
            srv, client.token, "GET", f"/api/v1/incidents/{incident}/eido"
        )
        assert (status, kind) == (200, "application/json")
        validator.validate(orjson.loads(body))
        assert (SECRET.encode() in body) is sees_secret
        assert (b"51.50612" in body) is sees_secret  # the officer's position: police only
        status, kind, body = await call(
            srv, client.token, "GET", f"/api/v1/incidents/{incident}/cap"
        )
        assert (status, kind) == (200, "application/xml")
        assert cap.parse_alert(body).scope == "Restricted"  # AMBER: valid CAP, not public
        assert SECRET.encode() not in body

    # Not shared, not there, or no credentials: the same refusals as the incident view.
    for path in ("eido", "cap", "cot"):
        status, _, _ = await call(srv, shelter.token, "GET", f"/api/v1/incidents/inc_nope/{path}")
        assert status == 404
        status, _, _ = await call(srv, None, "GET", f"/api/v1/incidents/{incident}/{path}")
        assert status == 401
    status, _, body = await call(
        srv, officer.token, "POST", f"/api/v1/incidents/{incident}/cot", b"<event/>"
    )
    assert (status, orjson.loads(body)["error"]["code"]) == (400, "invalid")
