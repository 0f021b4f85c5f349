"""OASIS CAP 1.2 in and out (protocol/INTEGRATIONS.md, "CAP").

In: ``parse_alert`` reads untrusted XML (xml_input: no DTD, no entities),
validates it against OASIS's CAP-v1.2.xsd (committed beside this module:
schemas/README.md says where it came from) and returns a ``CapAlert``.
``create_command`` / ``update_command`` / ``cancel_command`` turn it into the
ordinary v1 commands any client could send, so every rule of the write path
(roles, lead organisation, limits, idempotency) applies unchanged. Their
client ids derive from (sender, identifier), the CAP message's identity, so
a re-posted alert is a retry: the log answers with the original event.

Out: ``to_cap`` renders an incident *view* (what one reader may see) as a
CAP ``<alert>``; nothing else of the incident is read.

Priority, both ways (CAP has three scales, Liaison one):

=============================================  ========
CAP in: severity, adjusted by urgency/certainty  priority
=============================================  ========
Extreme; or Severe and Immediate, Observed/Likely  critical
Severe; or Moderate and Immediate, Observed/Likely high
Moderate, Unknown                                  normal
Minor; or anything Past or Unlikely, one step down low
=============================================  ========
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

import xmlschema

from protocol import v1
from protocol.errors import ErrorCode, ProtocolError
from protocol.limits import Limits
from server.integrations.xml_input import parse_xml

NS = "urn:oasis:names:tc:emergency:cap:1.2"
_Q = "{" + NS + "}"
FORMAT = "CAP-1.2"

STATUSES = ("Actual", "Exercise", "System", "Test", "Draft")
#: CAP categories (the XSD's enumeration), matched case-insensitively on export.
CATEGORIES = (
    "Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health",
    "Env", "Transport", "Infra", "CBRNE", "Other",
)  # fmt: skip

_SEVERITY = {"Extreme": 3, "Severe": 2, "Moderate": 1, "Unknown": 1, "Minor": 0}
#: Liaison priority -> (urgency, severity, certainty) on export.
_EXPORT_SCALES = {
    "critical": ("Immediate", "Extreme", "Observed"),
    "high": ("Immediate", "Severe", "Likely"),
    "normal": ("Expected", "Moderate", "Likely"),
    "low": ("Future", "Minor", "Possible"),
}


@dataclass(frozen=True, slots=True)
class CapReference:
    """One entry of ``<references>``: ``sender,identifier,sent``."""

    sender: str
    identifier: str
    sent: str


@dataclass(frozen=True, slots=True)
class CapArea:
    description: str
    #: (lat, lon) of a point inside it: a polygon's vertex mean, a circle's centre.
    point: tuple[float, float] | None


@dataclass(frozen=True, slots=True)
class CapInfo:
    language: str
    categories: tuple[str, ...]
    event: str
    urgency: str
    severity: str
    certainty: str
    headline: str | None
    description: str | None
    instruction: str | None
    sender_name: str | None
    areas: tuple[CapArea, ...]


@dataclass(frozen=True, slots=True)
class CapAlert:
    identifier: str
    sender: str
    sent: str
    status: str
    msg_type: str
    scope: str
    note: str | None
    references: tuple[CapReference, ...]
    infos: tuple[CapInfo, ...]

    @property
    def client_id(self) -> str:
        return client_id(self.sender, self.identifier)

    def source(self) -> dict[str, Any]:
        """The incident's ``source`` object (SPEC section 18)."""
        return {
            "format": FORMAT,
            "sender": self.sender,
            "identifier": self.identifier,
            "sent": self.sent,
            "status": self.status,
        }


def client_id(sender: str, identifier: str) -> str:
    """The client id of the commands a CAP message becomes: its identity, hashed
    (sender and identifier are up to 64 KiB of text; a client id is 64 chars)."""
    return "cap-" + hashlib.sha256(f"{sender}\x00{identifier}".encode()).hexdigest()[:40]


# ----------------------------------------------------------------------- parse


@cache
def schema() -> xmlschema.XMLSchema10:
    """OASIS's CAP-v1.2.xsd, loaded once (about a second), reading nothing else."""
    text = resources.files(__package__).joinpath("schemas/CAP-v1.2.xsd").read_text()
    return xmlschema.XMLSchema10(text, allow="none", defuse="always")


def validate(root: Element) -> None:
    """ProtocolError ``invalid`` naming the first place ``root`` breaks the CAP 1.2 XSD."""
    error = next(iter(schema().iter_errors(root)), None)
    if error is not None:
        where = (error.path or "/").replace(_Q, "")
        raise ProtocolError(
            ErrorCode.INVALID,
            f"not a valid CAP 1.2 alert at {where}: {error.reason}",
            {"field": where},
        )


def parse_alert(raw: bytes) -> CapAlert:
    """A CAP 1.2 alert from untrusted bytes: well-formed, DTD-free, schema-valid."""
    root = parse_xml(raw, "a CAP alert")
    if root.tag != _Q + "alert":
        raise ProtocolError(
            ErrorCode.INVALID, f"expected a CAP 1.2 <alert> in namespace {NS}", {"field": "alert"}
        )
    validate(root)
    return CapAlert(
        identifier=_text(root, "identifier") or "",
        sender=_text(root, "sender") or "",
        sent=_text(root, "sent") or "",
        status=_text(root, "status") or "",
        msg_type=_text(root, "msgType") or "",
        scope=_text(root, "scope") or "",
        note=_text(root, "note"),
        references=_references(_text(root, "references")),
        infos=tuple(_info(node) for node in root.findall(_Q + "info")),
    )


def _text(node: Element, name: str) -> str | None:
    child = node.find(_Q + name)
    if child is None or child.text is None:
        return None
    return child.text.strip() or None


def _references(raw: str | None) -> tuple[CapReference, ...]:
    out = []
    for triple in (raw or "").split():
        parts = triple.split(",")
        if len(parts) != 3:
            raise ProtocolError(
                ErrorCode.INVALID,
                "references: each entry is sender,identifier,sent",
                {"field": "references"},
            )
        out.append(CapReference(*parts))
    return tuple(out)


def _info(node: Element) -> CapInfo:
    return CapInfo(
        language=_text(node, "language") or "en-US",
        categories=tuple(c.text or "" for c in node.findall(_Q + "category")),
        event=_text(node, "event") or "",
        urgency=_text(node, "urgency") or "Unknown",
        severity=_text(node, "severity") or "Unknown",
        certainty=_text(node, "certainty") or "Unknown",
        headline=_text(node, "headline"),
        description=_text(node, "description"),
        instruction=_text(node, "instruction"),
        sender_name=_text(node, "senderName"),
        areas=tuple(_area(a) for a in node.findall(_Q + "area")),
    )


def _area(node: Element) -> CapArea:
    point = None
    for polygon in node.findall(_Q + "polygon"):
        point = point or _polygon_point(polygon.text or "")
    for circle in node.findall(_Q + "circle"):
        point = point or _circle_point(circle.text or "")
    return CapArea(description=_text(node, "areaDesc") or "", point=point)


def _pair(text: str) -> tuple[float, float] | None:
    try:
        lat, lon = (float(x) for x in text.split(","))
    except ValueError:
        return None
    if -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0:
        return lat, lon
    return None


def _polygon_point(text: str) -> tuple[float, float] | None:
    """The mean of a polygon's vertices (its closing vertex counted once)."""
    pairs = [p for p in (_pair(t) for t in text.split()) if p is not None]
    if len(pairs) > 1 and pairs[0] == pairs[-1]:
        pairs.pop()
    if not pairs:
        return None
    return (
        round(sum(p[0] for p in pairs) / len(pairs), 6),
        round(sum(p[1] for p in pairs) / len(pairs), 6),
    )


def _circle_point(text: str) -> tuple[float, float] | None:
    centre, _, _radius = text.strip().partition(" ")
    return _pair(centre)


# --------------------------------------------------------------- CAP -> Liaison


def priority(info: CapInfo) -> str:
    """The Liaison priority of a CAP info block (module docstring's table)."""
    score = _SEVERITY.get(info.severity, 1)
    if info.urgency == "Immediate" and info.certainty in ("Observed", "Likely"):
        score += 1
    if info.urgency == "Past" or info.certainty == "Unlikely":
        score -= 1
    return v1.PRIORITIES[max(0, min(score, len(v1.PRIORITIES) - 1))]


def _title(alert: CapAlert, info: CapInfo | None, limits: Limits) -> str:
    base = (info.headline or info.event) if info else f"CAP {alert.msg_type} {alert.identifier}"
    prefix = "" if alert.status == "Actual" else f"[{alert.status}] "
    return (prefix + base)[: limits.max_short_chars]


def _description(alert: CapAlert, info: CapInfo | None, limits: Limits) -> str:
    parts = []
    if info is not None:
        parts += [info.description, info.instruction]
        parts += [f"Area: {a.description}" for a in info.areas if a.description]
        if info.sender_name:
            parts.append(f"From: {info.sender_name}")
    if alert.note:
        parts.append(f"Note: {alert.note}")
    parts.append(
        f"CAP {alert.status} {alert.msg_type} {alert.identifier} from {alert.sender}, "
        f"sent {alert.sent}"
    )
    return "\n\n".join(p for p in parts if p)[: limits.max_text_chars]


def _location(info: CapInfo | None, limits: Limits) -> dict[str, Any] | None:
    for area in info.areas if info else ():
        if area.point is not None:
            lat, lon = area.point
            return {"lat": lat, "lon": lon, "address": area.description[: limits.max_short_chars]}
    return None


def _first_info(alert: CapAlert) -> CapInfo | None:
    """The info block to map: the first in English, else the first (CAP orders none)."""
    for info in alert.infos:
        if info.language.lower().startswith("en"):
            return info
    return alert.infos[0] if alert.infos else None


def _category(info: CapInfo | None) -> str:
    return (info.categories[0] if info and info.categories else "Other").lower()


#: CAP status -> Liaison incident mode (SPEC 28), and back for what we send.
_MODE_OF_STATUS = {"Exercise": "exercise", "Test": "test"}
_STATUS_OF_MODE = {mode: status for status, mode in _MODE_OF_STATUS.items()}


def create_command(alert: CapAlert, limits: Limits) -> v1.Command:
    """``incident.create`` for an Alert (or an Update of nothing Liaison holds)."""
    info = _first_info(alert)
    frame: dict[str, Any] = {
        "type": "incident.create",
        "id": alert.client_id,
        "title": _title(alert, info, limits),
        "category": _category(info)[:64],
        "priority": priority(info) if info else "normal",
        "description": _description(alert, info, limits),
        "source": alert.source(),
    }
    if alert.status in _MODE_OF_STATUS:  # an Exercise or a Test is never live (SPEC 28)
        frame["mode"] = _MODE_OF_STATUS[alert.status]
    if alert.scope == "Public":
        frame["tlp"] = "CLEAR"  # a public alert is public information
    location = _location(info, limits)
    if location is not None:
        frame["location"] = location
    return v1.parse_command(frame, limits)


def update_command(alert: CapAlert, incident: str, limits: Limits) -> v1.Command:
    """``incident.update`` of ``incident`` for an Update that references it."""
    info = _first_info(alert)
    frame: dict[str, Any] = {
        "type": "incident.update",
        "id": alert.client_id,
        "incident": incident,
        "title": _title(alert, info, limits),
        "description": _description(alert, info, limits),
    }
    if info is not None:
        frame["priority"] = priority(info)
    location = _location(info, limits)
    if location is not None:
        frame["location"] = location
    return v1.parse_command(frame, limits)


def cancel_command(alert: CapAlert, incident: str, limits: Limits) -> v1.Command:
    """``incident.status`` ``closed`` for a Cancel that references ``incident``."""
    note = f"CAP Cancel {alert.identifier} from {alert.sender}"
    if alert.note:
        note += f": {alert.note}"
    frame = {
        "type": "incident.status",
        "id": alert.client_id,
        "incident": incident,
        "status": "closed",
        "note": note[: limits.max_short_chars],
    }
    return v1.parse_command(frame, limits)


# --------------------------------------------------------------- Liaison -> CAP


def cap_time(ms: int) -> str:
    """A CAP date-time: seconds, and an explicit offset (the XSD refuses "Z")."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _add(parent: Element, name: str, text: str | None) -> None:
    if text:
        SubElement(parent, _Q + name).text = text


def _cap_safe(text: str) -> str:
    """Identifier and sender may not hold spaces, commas, '<' or '&' (CAP 3.2.1)."""
    return "".join("_" if c.isspace() or c in ",<&" else c for c in text)


def to_cap(view: Mapping[str, Any], *, sender: str, now_ms: int) -> bytes:
    """The CAP 1.2 ``<alert>`` of an incident ``view`` (already shaped for its reader).

    An incident raised from a CAP alert keeps that alert's status (an
    Exercise stays an Exercise) and is sent as an Update referencing it; an
    incident in exercise or test mode is sent as ``Exercise`` or ``Test``.
    """
    source = view.get("source") or {}
    from_cap = source.get("format") == FORMAT
    status = source.get("status") if from_cap and source.get("status") in STATUSES else "Actual"
    # An exercise or a test goes out as one, whatever raised it (SPEC 28).
    status = _STATUS_OF_MODE.get(str(view.get("mode")), status)
    alert = Element(_Q + "alert")
    _add(alert, "identifier", _cap_safe(f"{view['id']}.{view['seq']}"))
    _add(alert, "sender", _cap_safe(sender))
    _add(alert, "sent", cap_time(now_ms))
    _add(alert, "status", status)
    _add(alert, "msgType", "Update" if from_cap else "Alert")
    public = view.get("tlp") == "CLEAR"
    _add(alert, "scope", "Public" if public else "Restricted")
    if not public:
        _add(alert, "restriction", f"TLP:{view.get('tlp')}: the incident's organisations only")
    _add(alert, "code", f"TLP:{view.get('tlp')}")
    if from_cap:
        _add(alert, "references", f"{source['sender']},{source['identifier']},{source['sent']}")
    _add(alert, "incidents", str(view["id"]))
    alert.append(_export_info(view))
    document: bytes = tostring(alert, encoding="utf-8", xml_declaration=True)
    return document


def _export_info(view: Mapping[str, Any]) -> Element:
    info = Element(_Q + "info")
    category = str(view.get("category") or "")
    cap_category = next((c for c in CATEGORIES if c.lower() == category.lower()), "Other")
    _add(info, "category", cap_category)
    _add(info, "event", category or "incident")
    urgency, severity, certainty = _EXPORT_SCALES.get(
        str(view.get("priority")), _EXPORT_SCALES["normal"]
    )
    _add(info, "urgency", urgency)
    _add(info, "severity", severity)
    _add(info, "certainty", certainty)
    _add(info, "headline", str(view.get("title") or ""))
    _add(info, "description", view.get("description"))
    for name, value in (
        ("LiaisonStatus", view.get("status")),
        ("LiaisonPriority", view.get("priority")),
    ):
        parameter = SubElement(info, _Q + "parameter")
        _add(parameter, "valueName", name)
        _add(parameter, "value", str(value))
    location = view.get("location")
    if location:
        area = SubElement(info, _Q + "area")
        _add(area, "areaDesc", location.get("address") or f"Location of incident {view['id']}")
        _add(area, "circle", f"{location['lat']},{location['lon']} 0")
    return info
