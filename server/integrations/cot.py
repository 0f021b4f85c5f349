"""Cursor-on-Target (CoT) events <-> responder positions, for TAK users.

The CoT base schema (MITRE; Event.xsd, version 2.0): one ``<event>`` with
``version``, ``uid``, ``type``, ``how`` and the times ``time``, ``start``,
``stale`` (ISO 8601, UTC), a ``<point lat lon hae ce le>`` (WGS 84 degrees;
``hae`` height and ``ce``/``le`` circular/linear error in metres, 9999999
meaning unknown) and a free ``<detail>`` (TAK puts ``<contact callsign>``
there).

In: ``parse_event`` reads one untrusted event (xml_input: no DTD, no
entities); ``position_command`` makes it the sender's ``responder.position``
(a CoT event names a track, not a Liaison user: the position is the
authenticated poster's). Its client id derives from (uid, time), so a
re-sent event is a retry. An event already stale is refused: it would be
shown as a current position.

Out: ``to_cot`` renders the responders of an incident *view* (what one
reader may see) as events: a coarsened position is sent coarsened, with its
``ce`` at least the coarsening's 100 m; a redacted one is not sent.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

from protocol import v1
from protocol.errors import ErrorCode, ProtocolError
from protocol.limits import Limits
from server.integrations.xml_input import parse_xml

#: CoT's "unknown" for hae, ce and le.
UNKNOWN = 9_999_999.0
#: A missing ``how``: human-entered, "garbage in, garbage out" (CoT how codes).
DEFAULT_HOW = "h-g-i-g-o"
#: What Liaison's own tracks are: friendly, ground, unit (MIL-STD-2525 in CoT form).
TRACK_TYPE = "a-f-G-U-C"
#: How long an exported position stays fresh after it was reported.
STALE_AFTER_MS = 5 * 60 * 1000


@dataclass(frozen=True, slots=True)
class CotEvent:
    uid: str
    type: str
    how: str
    time_ms: int
    start_ms: int
    stale_ms: int
    lat: float
    lon: float
    hae: float
    ce: float
    le: float
    callsign: str | None

    @property
    def client_id(self) -> str:
        digest = hashlib.sha256(f"{self.uid}\x00{self.time_ms}".encode()).hexdigest()
        return "cot-" + digest[:40]

    @property
    def accuracy_m(self) -> float | None:
        return self.ce if 0.0 <= self.ce < UNKNOWN and self.ce <= 1e6 else None


def _invalid(field: str, why: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID, f"CoT event: {field}: {why}", {"field": field})


def _attr(node: Element, name: str, where: str) -> str:
    value = node.get(name)
    if value is None or not value.strip():
        raise _invalid(where + name, "required")
    return value.strip()


def _time(node: Element, name: str) -> int:
    raw = _attr(node, name, "")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise _invalid(name, "expected an ISO 8601 time such as 2005-04-05T11:43:38.07Z") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # CoT times are UTC
    return int(moment.timestamp() * 1000)


def _number(node: Element, name: str, low: float, high: float, default: float | None) -> float:
    raw = node.get(name)
    if raw is None and default is not None:
        return default
    try:
        value = float(raw if raw is not None else "")
    except ValueError as exc:
        raise _invalid("point." + name, "expected a number") from exc
    if not math.isfinite(value) or not low <= value <= high:
        raise _invalid("point." + name, f"must be within {low:g}..{high:g}")
    return value


def parse_event(raw: bytes) -> CotEvent:
    """One CoT ``<event>`` from untrusted bytes; ProtocolError for anything else."""
    root = parse_xml(raw, "a CoT event")
    if root.tag != "event":
        raise _invalid("event", "expected a CoT <event> root element")
    if not _attr(root, "version", "").startswith("2."):
        raise _invalid("version", "only CoT 2.x is understood")
    point = root.find("point")
    if point is None:
        raise _invalid("point", "required")
    contact = root.find("detail/contact")
    uid = _attr(root, "uid", "")
    if len(uid) > 256:
        raise _invalid("uid", "at most 256 characters")
    return CotEvent(
        uid=uid,
        type=_attr(root, "type", "")[:64],
        how=(root.get("how") or DEFAULT_HOW)[:16],
        time_ms=_time(root, "time"),
        start_ms=_time(root, "start"),
        stale_ms=_time(root, "stale"),
        lat=_number(point, "lat", -90.0, 90.0, None),
        lon=_number(point, "lon", -180.0, 180.0, None),
        hae=_number(point, "hae", -UNKNOWN, UNKNOWN, UNKNOWN),
        ce=_number(point, "ce", 0.0, UNKNOWN, UNKNOWN),
        le=_number(point, "le", 0.0, UNKNOWN, UNKNOWN),
        callsign=(contact.get("callsign") if contact is not None else None),
    )


def position_command(event: CotEvent, incident: str, now_ms: int, limits: Limits) -> v1.Command:
    """The poster's ``responder.position`` for ``event``; a stale event is refused."""
    if event.stale_ms <= now_ms:
        raise _invalid("stale", "the event is already stale: it is not a current position")
    frame: dict[str, Any] = {
        "type": "responder.position",
        "id": event.client_id,
        "incident": incident,
        "lat": event.lat,
        "lon": event.lon,
    }
    if event.accuracy_m is not None:
        frame["accuracy_m"] = event.accuracy_m
    return v1.parse_command(frame, limits)


# ----------------------------------------------------------------------- out


def cot_time(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def track_uid(incident: str, user: str) -> str:
    """A responder's stable track id within an incident."""
    return f"liaison.{incident}.{user}"


def to_cot(view: Mapping[str, Any]) -> bytes:
    """``<events>`` holding one CoT ``<event>`` per responder position the view shows."""
    events = Element("events")
    for r in view.get("responders", ()):
        position = r.get("position")
        if not isinstance(position, Mapping) or "lat" not in position:  # none, or redacted
            continue
        events.append(_event(str(view["id"]), r, position))
    document: bytes = tostring(events, encoding="utf-8", xml_declaration=True)
    return document


def _event(incident: str, r: Mapping[str, Any], position: Mapping[str, Any]) -> Element:
    ts = int(r.get("position_ts") or 0)
    event = Element(
        "event",
        {
            "version": "2.0",
            "uid": track_uid(incident, r["user"]),
            "type": TRACK_TYPE,
            "how": "m-g" if position.get("precision") != "coarse" else "h-e",
            "time": cot_time(ts),
            "start": cot_time(ts),
            "stale": cot_time(ts + STALE_AFTER_MS),
        },
    )
    accuracy = position.get("accuracy_m")
    SubElement(
        event,
        "point",
        {
            "lat": f"{position['lat']}",
            "lon": f"{position['lon']}",
            "hae": f"{UNKNOWN}",
            "ce": f"{float(accuracy) if accuracy is not None else UNKNOWN}",
            "le": f"{UNKNOWN}",
        },
    )
    detail = SubElement(event, "detail")
    SubElement(detail, "contact", {"callsign": str(r.get("name") or r["user"])})
    SubElement(detail, "__group", {"name": str(r["org"]), "role": "Team Member"})
    remarks = f"status: {r.get('status') or 'unknown'}"
    if position.get("precision") == "coarse":
        remarks += "; position coarsened to about 100 m by a sharing agreement"
    SubElement(detail, "remarks").text = remarks
    return event
