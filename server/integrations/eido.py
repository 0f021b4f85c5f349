"""An incident as a NENA EIDO (Emergency Incident Data Object), JSON.

Shape followed: NENA-STA-021.1-2021 ("NENA Standard for Emergency Incident
Data Object (EIDO)", 19 October 2021), its Appendix A OpenAPI schema:
``EmergencyIncidentDataObjectType`` with ``eidoVersion`` "1.0", one
``incidentComponent`` object and arrays of ``agencyComponent``,
``agentComponent``, ``emergencyResourceComponent``, ``locationComponent`` and
``notesComponent``; every component opens with the common prologue (``$id``,
``lastUpdateTimeStamp``, ``updatedByAgencyReference``), and components point
at each other with ``{"$ref": <$id>}``. Registry values are taken from the
standard's section 3 registries (Incident Type: APCO codes; Incident Status;
Primary/Secondary Unit Status; Location Type; Agency Role).
schemas/eido-subset.schema.json states the subset as a JSON Schema.

What maps to what:

* the incident -> ``incidentComponent`` (type, status, priority 0..10);
* participating organisations -> ``agencyComponent`` (the lead owns it);
* responders -> ``agentComponent`` + ``emergencyResourceComponent``, their
  positions -> ``locationComponent`` (PIDF-LO by value, ``UnitLocation``);
* the incident's location -> ``locationComponent`` (``CurrentIncident``);
* messages -> ``notesComponent``.

Only what the reader's *view* holds is read: a message it may not see is not
in the view, a coarsened position arrives coarsened, a redacted one not at
all. The person an incident is about (``subject``) is not exported.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

EIDO_VERSION = "1.0"

#: Liaison incident status -> EIDO Incident Status-Common (Table 3-3).
_STATUS = {
    "reported": "Active",
    "active": "Active",
    "contained": "Active",
    "resolved": "Closed",
    "closed": "Closed",
}
#: Liaison priority -> incidentCommonPriorityNumber (0 lowest .. 10 highest).
_PRIORITY = {"low": 2, "normal": 5, "high": 8, "critical": 10}
#: Liaison categories with an Incident Type-Common (APCO 2.103.2) code; other
#: categories are "ASSIST" (assist to other agency) with the category as the
#: internal text.
_INCIDENT_TYPE = {
    "welfare": "WELFARE",
    "welfare_check": "WELFARE",
    "mental_health": "MNTL",
    "missing_person": "PERWANT",
    "domestic": "DVA",
    "assault": "ASSAULT",
    "fire": "FOTHER",
    "wildlife": "WILDLIFE",
    "rescue": "RESCUE",
    "hazmat": "HAZMAT",
    "security": "SUSP",
    "met": "INFO",
    "geo": "INFO",
}
#: Responder status -> (Primary Unit Status-Common, Secondary Unit Status-Common).
_UNIT_STATUS: dict[str | None, tuple[str, list[str]]] = {
    "available": ("Available", []),
    "en_route": ("ConditionallyAvailable", ["EnRoute"]),
    "on_scene": ("ConditionallyAvailable", ["OnScene"]),
    "unavailable": ("NotAvailable", []),
    None: ("ConditionallyAvailable", []),
}
#: Organisation kind -> IANA urn:emergency:service:responder type, and the
#: Emergency Resource Type-Common of its responders.
_AGENCY_TYPE = {"police": "police", "fire": "fire", "ems": "ems"}
_RESOURCE_TYPE = {"police": "PatrolUnit"}

PIDF = "urn:ietf:params:xml:ns:pidf"
GP = "urn:ietf:params:xml:ns:pidf:geopriv10"
GML = "http://www.opengis.net/gml"
GS = "http://www.opengis.net/pidflo/1.0"
WGS84_2D = "urn:ogc:def:crs:EPSG::4326"


def nena_time(ms: int) -> str:
    """A NENA-STA-010 timestamp: milliseconds and an explicit offset."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}+00:00"


class _Ids:
    """Stable component ids: the same incident exported twice names things alike."""

    def __init__(self, issuer: str, incident: str) -> None:
        self.issuer, self.incident = issuer, incident

    def of(self, kind: str, key: str) -> str:
        name = f"{self.issuer}/{self.incident}/{kind}/{key}"
        return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name)}"

    def agency(self, org: str) -> str:
        return f"{org}.{self.issuer}"


def _prologue(component_id: str, ms: int, agency: str) -> dict[str, Any]:
    return {
        "$id": component_id,
        "lastUpdateTimeStamp": nena_time(ms),
        "updatedByAgencyReference": {"$ref": agency},
    }


def pidf_lo(entity: str, lat: float, lon: float, radius_m: float | None) -> str:
    """A PIDF-LO document (RFC 4119 / 5491) holding one point, or a circle of ``radius_m``."""
    presence = Element(f"{{{PIDF}}}presence", {"entity": f"pres:{entity}"})
    tuple_ = SubElement(presence, f"{{{PIDF}}}tuple", {"id": "loc"})
    geopriv = SubElement(SubElement(tuple_, f"{{{PIDF}}}status"), f"{{{GP}}}geopriv")
    info = SubElement(geopriv, f"{{{GP}}}location-info")
    if radius_m:
        shape = SubElement(info, f"{{{GS}}}Circle", {"srsName": WGS84_2D})
        SubElement(shape, f"{{{GML}}}pos").text = f"{lat} {lon}"
        radius = SubElement(shape, f"{{{GS}}}radius", {"uom": "urn:ogc:def:uom:EPSG::9001"})
        radius.text = f"{radius_m:g}"
    else:
        point = SubElement(info, f"{{{GML}}}Point", {"srsName": WGS84_2D})
        SubElement(point, f"{{{GML}}}pos").text = f"{lat} {lon}"
    SubElement(geopriv, f"{{{GP}}}usage-rules")
    return tostring(presence, encoding="unicode")


def to_eido(
    view: Mapping[str, Any], *, issuer: str, org_kinds: Mapping[str, str]
) -> dict[str, Any]:
    """The EIDO of an incident ``view`` (already shaped for its reader).

    ``issuer`` is this Liaison's NENA element identifier (a domain name);
    ``org_kinds`` maps an organisation id to its kind ("police", "ngo"...).
    """
    ids = _Ids(issuer, str(view["id"]))
    updated = int(view["updated"])
    lead = ids.agency(str(view.get("lead_org") or view["orgs"][0]))
    locations: list[dict[str, Any]] = []
    incident_locations = []
    location = view.get("location")
    if location:
        loc_id = ids.of("location", "incident")
        entry = {
            **_prologue(loc_id, updated, lead),
            "locationTypeDescriptionRegistryText": "CurrentIncident",
            "locationByValue": pidf_lo(loc_id, location["lat"], location["lon"], None),
        }
        if location.get("address"):
            entry["locationDescriptionText"] = location["address"]
        locations.append(entry)
        incident_locations.append({"$ref": loc_id})
    agents, resources = _responders(view, ids, org_kinds, locations)
    notes = _notes(view, ids)
    incident = {
        **_prologue(ids.of("incident", "incident"), updated, lead),
        "incidentTypeCommonRegistryText": _INCIDENT_TYPE.get(
            str(view.get("category")).lower(), "ASSIST"
        ),
        "incidentTypeInternalText": view.get("category"),
        "incidentStatusCommonRegistryText": _incident_statuses(view),
        # EIDO has no exercise flag: an exercise or a test says so here (SPEC 28).
        "incidentStatusInternalText": [view.get("status")]
        + ([str(view["mode"]).upper()] if view.get("mode", "actual") != "actual" else []),
        "internalIncidentId": view["id"],
        "incidentPriorityInternalText": view.get("priority"),
        "incidentCommonPriorityNumber": _PRIORITY.get(str(view.get("priority")), 5),
        "locationReference": incident_locations,
        "agentReference": [{"$ref": a["$id"]} for a in agents],
        "notesReference": [{"$ref": n["$id"]} for n in notes],
    }
    return {
        **_prologue(f"urn:emergency:uid:incidentid:{view['id']}:{issuer}", updated, lead),
        "eidoVersion": EIDO_VERSION,
        "issuingElementIdentification": issuer,
        "incidentComponent": incident,
        "agencyComponent": _agencies(view, ids, org_kinds, updated),
        "agentComponent": agents,
        "emergencyResourceComponent": resources,
        "locationComponent": locations,
        "notesComponent": notes,
    }


def _incident_statuses(view: Mapping[str, Any]) -> list[str]:
    statuses = [_STATUS.get(str(view.get("status")), "Active")]
    seen = {r.get("status") for r in view.get("responders", ())}
    if "en_route" in seen:
        statuses.append("ResourcesEnroute")
    if "on_scene" in seen:
        statuses.append("ResourcesOnscene")
    return statuses


def _agencies(
    view: Mapping[str, Any], ids: _Ids, org_kinds: Mapping[str, str], ms: int
) -> list[dict[str, Any]]:
    out = []
    for org in view["orgs"]:
        agency = ids.agency(org)
        lead = org == view.get("lead_org")
        out.append(
            {
                **_prologue(agency, ms, agency),
                "agencyRoleDescriptionRegistryText": ["Dispatching" if lead else "Assisting"],
                "agencyType": [_AGENCY_TYPE.get(org_kinds.get(org, ""), "other")],
                "incidentOwningAgencyIndicator": lead,
            }
        )
    return out


def _responders(
    view: Mapping[str, Any],
    ids: _Ids,
    org_kinds: Mapping[str, str],
    locations: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Agents and emergency resources; each position that is shown, a location."""
    agents, resources = [], []
    for r in view.get("responders", ()):
        agency = ids.agency(r["org"])
        ms = max(r.get("status_ts") or 0, r.get("position_ts") or 0) or int(view["updated"])
        agent_id = ids.of("agent", r["user"])
        agents.append(
            {
                **_prologue(agent_id, ms, agency),
                "agentRoleRegistryText": ["Responder"],
                "agencyReference": {"$ref": agency},
            }
        )
        primary, secondary = _UNIT_STATUS.get(r.get("status"), _UNIT_STATUS[None])
        resource: dict[str, Any] = {
            **_prologue(ids.of("resource", r["user"]), ms, agency),
            "agentReference": [{"$ref": agent_id}],
            "emergencyResourceTypeCommonRegistryText": _RESOURCE_TYPE.get(
                org_kinds.get(r["org"], ""), "CrisisInterventionUnit"
            ),
            "emergencyResourceName": r["name"],
            "primaryUnitStatusRegistryText": primary,
            "secondaryUnitStatusRegistryText": secondary,
            "resourceAttributeRegistryText": [],
        }
        position = r.get("position")
        if isinstance(position, Mapping) and "lat" in position:  # not redacted
            loc_id = ids.of("location", r["user"])
            locations.append(
                {
                    **_prologue(loc_id, r.get("position_ts") or ms, agency),
                    "locationTypeDescriptionRegistryText": "UnitLocation",
                    "locationByValue": pidf_lo(
                        loc_id, position["lat"], position["lon"], position.get("accuracy_m")
                    ),
                }
            )
            resource["unitLocationReference"] = {"$ref": loc_id}
        resources.append(resource)
    return agents, resources


def _notes(view: Mapping[str, Any], ids: _Ids) -> list[dict[str, Any]]:
    return [
        {
            **_prologue(ids.of("note", str(m["seq"])), m["ts"], ids.agency(m["author"]["org"])),
            "notesActionComments": m["text"],
        }
        for m in view.get("messages", ())
        if m.get("text") is not None  # retracted
    ]
