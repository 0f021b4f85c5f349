"""The OpenAPI part of the report routes (rest_reports.py): KPIs and the view as of a moment."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_NUM_OR_NULL: Schema = {"anyOf": [{"type": "number"}, {"type": "null"}]}
_STATS: Schema = {
    "type": "object",
    "properties": {"median_s": _NUM_OR_NULL, "mean_s": _NUM_OR_NULL, "max_s": _NUM_OR_NULL},
    "required": ["median_s", "mean_s", "max_s"],
}
_COUNT: Schema = {"type": "integer", "minimum": 0}
_BY_TYPE: Schema = {
    "type": "object",
    "properties": {
        "total": _COUNT,
        "by_type": {"type": "object", "additionalProperties": _COUNT},
    },
    "required": ["total", "by_type"],
}


def _rows(props: dict[str, Schema]) -> Schema:
    return {
        "type": "array",
        "items": {"type": "object", "properties": props, "required": list(props)},
    }


SCHEMAS: dict[str, Schema] = {
    "Kpis": {
        "type": "object",
        "description": "SPEC section 18.2: figures over what the caller may see",
        "properties": {
            "from": {"type": "integer"},
            "to": {"type": "integer"},
            "org": {"type": "string"},
            "incidents": _COUNT,
            "acknowledgement": _rows(
                {"org": {"type": "string"}, "count": _COUNT, "unacknowledged": _COUNT}
            ),
            "tasks": _rows({"org": {"type": "string"}, "assigned": _COUNT, "to_accept": _STATS}),
            "resolution": _rows(
                {"category": {"type": "string"}, "priority": {"type": "string"}, "resolved": _COUNT}
            ),
            "joint": _rows({"orgs": {"type": "array"}, "incidents": _COUNT}),
            "escalations": _BY_TYPE,
            "checkins": _BY_TYPE,
            "exercises_excluded": _COUNT,
            "exercises": {
                "type": "object",
                "description": "include_exercises=true: the figures of exercises and tests",
            },
        },
        "required": [
            "from",
            "to",
            "org",
            "incidents",
            "acknowledgement",
            "tasks",
            "resolution",
            "joint",
            "escalations",
            "checkins",
        ],
    },
}


def paths(op: Any, q: Any, ref: Any) -> dict[str, dict[str, Schema]]:
    """The two paths, built with openapi.py's own helpers (``_op``, ``_q``, ``ref``)."""
    when = {"type": "string", "maxLength": 40}
    kpis = op(
        "KPIs of joint operations over a date range (supervisors, admins); `format=csv` for CSV",
        "reports",
        (200, ref("Kpis")),
        (400, 403),
        query=(
            q("from", when, "ms or ISO 8601; default `to` minus 30 days"),
            q("to", when, "ms or ISO 8601; default now"),
            q("format", {"enum": ["json", "csv"]}, "default json"),
            q(
                "include_exercises",
                {"enum": ["true", "false"]},
                "default false: exercise and test incidents are left out (SPEC 28)",
            ),
        ),
    )
    kpis["responses"]["200"]["content"]["text/csv"] = {"schema": {"type": "string"}}
    view = op(
        "The incident view as of a seq or a time (participants): what the replay shows there",
        "incidents",
        (200, ref("IncidentView")),
        (400, 403, 404, 416),
        query=(
            q("at_seq", {"type": "integer", "minimum": 0, "maximum": 2**53}, "a seq"),
            q("at", when, "or a time: ms or ISO 8601"),
        ),
        path_id="an incident id",
    )
    return {"/api/v1/kpis": {"get": kpis}, "/api/v1/incidents/{id}/view": {"get": view}}
