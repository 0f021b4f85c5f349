"""The OpenAPI part of expertise and capacity (rest_capacity.py, SPEC section 27)."""

from __future__ import annotations

from typing import Any

from protocol.capacity import ITEMS

Schema = dict[str, Any]

_STR: Schema = {"type": "string"}
_INT: Schema = {"type": "integer", "minimum": 0}
_STRS: Schema = {"type": "array", "items": _STR}
_NUM_OR_NULL: Schema = {"anyOf": [{"type": "number"}, {"type": "null"}]}


def _obj(props: dict[str, Schema], *optional: str) -> Schema:
    return {
        "type": "object",
        "properties": props,
        "required": [k for k in props if k not in optional],
    }


SCHEMAS: dict[str, Schema] = {
    "Tags": _obj({"tags": _STRS}),
    "Expertise": _obj({"vocabulary": _STRS, "languages": _STR, "max_tags": _INT}),
    "Suggestion": _obj(
        {
            "kind": {"enum": ["user", "org"]},
            "id": _STR,
            "org": _STR,
            "name": _STR,
            "score": {"type": "number"},
            "matched": _STRS,
            "missing": _STRS,
            "status": {"anyOf": [_STR, {"type": "null"}]},
            "online": {"type": "boolean"},
            "availability": {"type": "number"},
            "distance_km": _NUM_OR_NULL,
        }
    ),
    "Suggestions": _obj(
        {
            "incident": _STR,
            "task": {"anyOf": [_INT, {"type": "null"}]},
            "needs": _STRS,
            "suggestions": {"type": "array", "items": {"$ref": "#/components/schemas/Suggestion"}},
        }
    ),
    "CapacityChange": {
        **_obj({"id": _STR, "items": {"type": "object", "propertyNames": {"enum": list(ITEMS)}}}),
        "description": "SPEC 27.2: item -> new value, null clears it",
    },
    "CapacityEntry": _obj(
        {
            "org": _STR,
            "seq": {"type": "integer", "minimum": 1},
            "pos": {"type": "integer", "minimum": 1},
            "ts": _INT,
            "actor": {"type": "object"},
            "items": {"type": "object"},
            "duplicate": {"type": "boolean"},
        },
        "duplicate",
    ),
    "OrgCapacity": _obj(
        {
            "org": _STR,
            "name": _STR,
            "kind": _STR,
            "seq": _INT,
            "updated": {"anyOf": [_INT, {"type": "null"}]},
            "items": {"type": "object"},
        }
    ),
    "CapacityBoard": _obj(
        {
            "orgs": {"type": "array", "items": {"$ref": "#/components/schemas/OrgCapacity"}},
            "pos": _INT,
        }
    ),
    "CapacityChanges": _obj(
        {
            "entries": {"type": "array", "items": {"$ref": "#/components/schemas/CapacityEntry"}},
            "pos": _INT,
        }
    ),
    "CapacityHistory": _obj(
        {
            "current": {"$ref": "#/components/schemas/OrgCapacity"},
            "history": {"type": "array", "items": {"$ref": "#/components/schemas/CapacityEntry"}},
            "next_after_seq": {"anyOf": [_INT, {"type": "null"}]},
        }
    ),
}


def paths(op: Any, q: Any, ref: Any) -> dict[str, dict[str, Schema]]:
    """Built with openapi.py's own helpers (``_op``, ``_q``, ``ref``)."""
    pos = {"type": "integer", "minimum": 0, "maximum": 2**53}
    org, user = "an organisation id", "a user id (`u_<username>`)"
    return {
        "/api/v1/expertise": {
            "get": op(
                "The expertise vocabulary (SPEC 27.1)", "expertise", (200, ref("Expertise")), ()
            )
        },
        "/api/v1/orgs/{id}/tags": {
            "put": op(
                "Set an organisation's expertise tags (admins; audited)",
                "expertise",
                (200, ref("Org")),
                (403, 404),
                body="Tags",
                path_id=org,
            )
        },
        "/api/v1/users/{id}/tags": {
            "put": op(
                "Set a person's expertise tags (admins; audited)",
                "expertise",
                (200, ref("User")),
                (403, 404),
                body="Tags",
                path_id=user,
            )
        },
        "/api/v1/incidents/{id}/suggestions": {
            "get": op(
                "Assignees ranked by the incident's needs, availability and distance (SPEC 27.4)",
                "expertise",
                (200, ref("Suggestions")),
                (400, 403, 404),
                query=(
                    q("task", {"type": "integer", "minimum": 1}, "a task to assign"),
                    q("needs", {"type": "string", "maxLength": 400}, "comma-separated tags"),
                    q("limit", {"type": "integer", "minimum": 0, "maximum": 100}, "default 20"),
                ),
                path_id="an incident id",
            )
        },
        "/api/v1/capacity": {
            "get": op(
                "Every organisation's current capacity the caller may see (SPEC 27.2)",
                "capacity",
                (200, ref("CapacityBoard")),
                (403,),
            )
        },
        "/api/v1/capacity/changes": {
            "get": op(
                "Capacity changes after a position, waiting up to `wait_s` for one (long poll)",
                "capacity",
                (200, ref("CapacityChanges")),
                (400, 403, 416),
                query=(
                    q("after", pos, "a position (`pos`); default 0"),
                    q("wait_s", {"type": "integer", "minimum": 0, "maximum": 30}, "default 0"),
                ),
            )
        },
        "/api/v1/orgs/{id}/capacity": {
            "get": op(
                "An organisation's current capacity and its history",
                "capacity",
                (200, ref("CapacityHistory")),
                (400, 403, 404),
                query=(
                    q("after_seq", pos, "default 0"),
                    q("limit", {"type": "integer", "minimum": 0, "maximum": 1000}, "default 200"),
                ),
                path_id=org,
            ),
            "post": op(
                "Publish a change of the organisation's capacity (idempotent on `id`)",
                "capacity",
                (200, ref("CapacityEntry")),
                (403, 404),
                body="CapacityChange",
                path_id=org,
            ),
        },
    }
