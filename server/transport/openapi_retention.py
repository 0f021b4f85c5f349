"""The OpenAPI paths and schemas of retention (SPEC section 25).

Merged into ``server/transport/openapi.py``'s document beside the other
route modules' own; kept here beside ``rest_retention.py``, the routes they
describe.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_STR: Schema = {"type": "string"}
_NAMES: Schema = {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 100}
_DAYS: Schema = {"type": "integer", "minimum": 0, "maximum": 36525}
_ANY: Schema = {"type": "object", "additionalProperties": True}

SCHEMAS: dict[str, Schema] = {
    "RetentionPolicy": {
        "type": "object",
        "required": ["archive_after_days"],
        "properties": {
            "id": _STR,
            "archive_after_days": _DAYS,
            "purge_after_days": {"anyOf": [_DAYS, {"type": "null"}]},
            "categories": _NAMES,
            "orgs": _NAMES,
            "note": {"type": "string", "maxLength": 500},
        },
        "additionalProperties": False,
    },
    "RetentionPolicies": {
        "type": "object",
        "required": ["policies"],
        "properties": {
            "policies": {"type": "array", "items": {"$ref": "#/components/schemas/RetentionPolicy"}}
        },
    },
    "LegalHoldRequest": {
        "type": "object",
        "required": ["reason"],
        "properties": {"reason": {"type": "string", "minLength": 1, "maxLength": 500}},
    },
    "LegalHold": {
        "type": "object",
        "required": ["incident", "reason", "by", "at_ms"],
        "properties": {
            "incident": _STR,
            "reason": _STR,
            "by": _STR,
            "at_ms": {"type": "integer"},
        },
    },
    "LegalHolds": {
        "type": "object",
        "required": ["holds"],
        "properties": {
            "holds": {"type": "array", "items": {"$ref": "#/components/schemas/LegalHold"}}
        },
    },
    "RetentionRun": {
        "type": "object",
        "required": ["dry_run", "archived", "purged", "skipped", "failed"],
        "properties": {
            "dry_run": {"type": "boolean"},
            "archived": {"type": "array", "items": _ANY},
            "purged": {"type": "array", "items": _ANY},
            "skipped": {"type": "array", "items": _ANY},
            "failed": {"type": "array", "items": _ANY},
        },
    },
    "Tombstones": {
        "type": "object",
        "required": ["archived", "next"],
        "properties": {
            "archived": {"type": "array", "items": _ANY},
            "next": {"anyOf": [_STR, {"type": "null"}]},
        },
    },
}


def paths(op: Any, q: Any, ref: Any) -> dict[str, dict[str, Schema]]:
    """The paths, built with openapi.py's own ``_op``, ``_q`` and ``ref``."""
    tag = "retention"
    return {
        "/api/v1/retention/policies": {
            "get": op(
                "The retention policies (deployment admin)",
                tag,
                (200, ref("RetentionPolicies")),
                (403,),
            ),
        },
        "/api/v1/retention/policies/{id}": {
            "put": op(
                "Create or replace a retention policy (deployment admin; audited)",
                tag,
                (200, ref("RetentionPolicy")),
                (403,),
                body="RetentionPolicy",
                path_id="the policy id (`default`: incidents no other policy matches)",
            ),
            "delete": op(
                "Delete a retention policy (deployment admin; audited)",
                tag,
                (200, ref("Ok")),
                (403, 404),
                path_id="the policy id",
            ),
        },
        "/api/v1/retention/holds": {
            "get": op("The legal holds (deployment admin)", tag, (200, ref("LegalHolds")), (403,)),
        },
        "/api/v1/retention/holds/{id}": {
            "put": op(
                "Put an incident under legal hold: never archived nor purged (audited)",
                tag,
                (200, ref("LegalHold")),
                (403, 404, 409),
                body="LegalHoldRequest",
                path_id="an incident id",
            ),
            "delete": op(
                "Lift a legal hold (deployment admin; audited)",
                tag,
                (200, ref("Ok")),
                (403, 404),
                path_id="an incident id",
            ),
        },
        "/api/v1/retention/run": {
            "post": op(
                "Run the retention job now: archive and purge what is due",
                tag,
                (200, ref("RetentionRun")),
                (400, 403),
                query=(q("dry_run", {"enum": ["0", "1", "true", "false"]}, "1: change nothing"),),
            ),
        },
        "/api/v1/retention/archived": {
            "get": op(
                "Archived incidents' tombstones (all for the deployment admin, else your org's)",
                tag,
                (200, ref("Tombstones")),
                (400, 403),
                query=(
                    q("after", {"type": "string", "maxLength": 200}, "an incident id"),
                    q("limit", {"type": "integer", "minimum": 0, "maximum": 500}, "default 100"),
                    q("state", {"enum": ["archived", "purged"]}, "only these"),
                ),
            ),
        },
    }
