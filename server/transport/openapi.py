"""The OpenAPI 3.1 document of the REST API (SPEC section 18), as a maintained dict.

Written by hand beside the routes rather than generated from them: the shapes
of the answers live in ``to_wire`` methods and the SPEC, not in the handlers'
signatures. It cannot drift from the routes unnoticed: a test compares every
method and path aiohttp registers under ``/api/`` (and ``/healthz``) with the
document's, both ways, and schemathesis checks real answers against it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from protocol import external_ref
from protocol.errors import ErrorCode
from protocol.limits import LIMITS
from server.domain.model import Role
from server.domain.sharing import Label
from server.transport import (
    openapi_capacity,
    openapi_export,
    openapi_push,
    openapi_reports,
    openapi_retention,
)
from server.transport.openapi_standards import standards_paths

OPENAPI_PATH = "/api/v1/openapi.json"
DOCS_PATH = "/api/v1/docs"

Schema = dict[str, Any]

#: Each error status a route may answer, with the codes it carries (rest.STATUS).
ERROR_RESPONSES: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "`malformed`, `invalid` (`detail.field`) or `unknown_type`"),
    401: ("Unauthenticated", "`unauthenticated`: missing, invalid, expired or revoked credentials"),
    403: ("Forbidden", "`forbidden`: the caller's role, organisation or key scope may not"),
    404: ("NotFound", "`not_found`: no such object, or not visible to the caller"),
    409: (
        "Conflict",
        "`conflict`: the object is not in a state that allows this; `resync_required`:"
        " a feed cursor that can no longer be served",
    ),
    413: ("TooLarge", "`too_large`: the body exceeds `max_frame_bytes` (`detail.limit`)"),
    410: ("Archived", "`archived`: the incident was archived under a retention policy (SPEC 25)"),
    416: ("OutOfRange", "`out_of_range`: `after_seq` beyond the head (`detail.head_seq`)"),
    429: ("RateLimited", "`rate_limited`: wait `Retry-After` (= `detail.retry_after`) seconds"),
    503: ("Unavailable", "`unavailable`, `shutdown` or `outcome_unknown` (retryable)"),
}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(props: dict[str, Schema], *optional: str, extra: bool = False) -> Schema:
    """An object whose properties are all required except ``optional``."""
    schema: Schema = {
        "type": "object",
        "properties": props,
        "required": [k for k in props if k not in optional],
    }
    if not extra:
        schema["additionalProperties"] = False
    return schema


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer", "minimum": 0}
MS: Schema = {"type": "integer", "minimum": 0, "description": "milliseconds since the epoch"}
BOOL: Schema = {"type": "boolean"}
ANY_OBJ: Schema = {"type": "object"}
STRS: Schema = {"type": "array", "items": STR}
ID: Schema = {"type": "string", "minLength": 1, "maxLength": LIMITS.max_id_chars}
SHORT: Schema = {"type": "string", "maxLength": LIMITS.max_short_chars}
SECRET: Schema = {"type": "string", "maxLength": 256}
EXTERNAL_REF: Schema = {
    "type": "string",
    "minLength": 1,
    "maxLength": external_ref.MAX_CHARS,
    "pattern": f"^{external_ref.PATTERN.pattern}$",
    "description": "a CAD number or another system's id (SPEC 18.3)",
}
LABEL: Schema = {"enum": [label.value for label in Label]}
ROLE: Schema = {"enum": [role.value for role in Role]}
LOCATION: Schema = obj(
    {"lat": {"type": "number"}, "lon": {"type": "number"}, "address": nullable(STR)}, "address"
)
SUBJECT = ("name", "dob", "phone", "address")
SEQ: Schema = {"type": "integer", "minimum": 1}
#: SPEC 22.1: state -> user -> ms of their first receipt.
RECEIPTS: Schema = {
    "type": "object",
    "additionalProperties": {"type": "object", "additionalProperties": MS},
}
#: SPEC 22.2: the escalations stored about a message or task.
ESCALATIONS: Schema = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["seq", "type", "ts", "due", "orgs"],
        "properties": {"seq": SEQ, "type": STR, "ts": MS, "due": MS, "orgs": STRS},
    },
}
ACTOR: Schema = obj({"user": STR, "org": STR, "name": STR})

SCHEMAS: dict[str, Schema] = {
    "Error": obj(
        {
            "error": obj(
                {
                    "code": {"enum": [c.code for c in ErrorCode]},
                    "message": STR,
                    "retryable": BOOL,
                    "detail": ANY_OBJ,
                },
                "detail",
            )
        }
    ),
    "Ok": obj({"ok": {"const": True}}),
    "Health": obj(
        {
            "status": {"enum": ["ok", "degraded"]},
            "time": MS,
            "backend": {"enum": ["sqlite", "redis"]},
            "directory_reloads": INT,
        },
        extra=True,
    ),
    "User": obj(
        {
            "id": STR,
            "username": STR,
            "org": STR,
            "name": STR,
            "role": ROLE,
            "disabled": BOOL,
            "tags": STRS,
            "phone": nullable(STR),
        },
        "tags",
        "phone",
    ),
    "PhoneSet": obj({"phone": nullable({"type": "string", "maxLength": 32})}, extra=True),
    "Contacts": obj(
        {
            "incident": STR,
            "liaisons": {
                "type": "array",
                "items": obj({"org": STR, "user": STR, "name": STR, "phone": nullable(STR)}),
            },
            "bots": {"type": "array", "items": STR},
        }
    ),
    "Session": obj(
        {
            "token": STR,
            "expires": {"type": "integer", "description": "seconds since the epoch"},
            "refresh_token": STR,
            "idle_timeout_s": INT,
            "user": ref("User"),
        }
    ),
    "Login": obj({"username": SHORT, "password": SECRET}, extra=True),
    "Refresh": obj({"refresh_token": SECRET}, extra=True),
    "PasswordChange": obj({"password": SECRET, "new_password": SECRET}, extra=True),
    "PasswordReset": obj({"password": SECRET}, extra=True),
    "Me": obj(
        {
            "id": STR,
            "name": STR,
            "role": ROLE,
            "org": STR,
            "org_name": nullable(STR),
            "org_default_label": nullable(LABEL),
        }
    ),
    "Org": obj({"id": STR, "name": STR, "kind": STR, "default_label": LABEL, "tags": STRS}, "tags"),
    "NewOrg": obj(
        {"id": ID, "name": SHORT, "kind": {"type": "string", "maxLength": 32}}, extra=True
    ),
    "CreatedOrg": obj({"id": STR, "name": STR, "kind": STR}),
    "OrgLabel": obj({"default_label": LABEL}, extra=True),
    "NewUser": obj(
        {"username": ID, "org": ID, "name": SHORT, "role": ROLE, "password": SECRET}, extra=True
    ),
    "AuditRecord": obj(
        {
            "seq": {"type": "integer", "minimum": 1},
            "ts_ms": MS,
            "actor": STR,
            "action": STR,
            "target": STR,
            "outcome": STR,
            "address": STR,
            "detail": ANY_OBJ,
            "hash": STR,
        }
    ),
    "AuditPage": obj(
        {"records": {"type": "array", "items": ref("AuditRecord")}, "next_after_seq": nullable(INT)}
    ),
    "KeyScope": obj(
        {
            "incidents": {"anyOf": [{"const": "all"}, STRS]},
            "commands": {"anyOf": [{"const": "all"}, STRS]},
            "coordinator": BOOL,
        }
    ),
    "Key": obj(
        {
            "id": STR,
            "user": STR,
            "org": STR,
            "name": STR,
            "scope": ref("KeyScope"),
            "created": MS,
            "created_by": STR,
            "revoked": nullable(MS),
            "last_used": nullable(MS),
            "key": {"type": "string", "description": "`lk_<id>_<secret>`: on creation only"},
        },
        "key",
    ),
    "NewKey": obj(
        {
            "user": {"type": "string", "maxLength": 64},
            "name": {"type": "string", "maxLength": 100},
            "incidents": {"anyOf": [{"const": "all"}, STRS]},
            "commands": {"anyOf": [{"const": "all"}, STRS]},
            "coordinator": BOOL,
        },
        "incidents",
        "commands",
        "coordinator",
        extra=True,
    ),
    "Agreement": obj(
        {
            "id": STR,
            "owner": STR,
            "recipients": STRS,
            "kinds": STRS,
            "fields": STRS,
            "position": STR,
            "categories": nullable(STRS),
            "history": BOOL,
            "valid_from_ms": MS,
            "valid_until_ms": nullable(MS),
            "revoked_ms": nullable(MS),
            "revoked_by": nullable(STR),
            "created_by": nullable(STR),
            "note": nullable(STR),
            "in_force": BOOL,
        }
    ),
    "Ready": obj(
        {
            "status": {"enum": ["ready", "not_ready"]},
            "reasons": STRS,
        },
        "reasons",
    ),
    "Webhook": obj(
        {
            "id": STR,
            "org": STR,
            "url": STR,
            "description": STR,
            "filters": obj(
                {
                    "incidents": {"oneOf": [{"const": "all"}, STRS]},
                    "categories": {"oneOf": [{"const": "all"}, STRS]},
                    "types": {"oneOf": [{"const": "all"}, STRS]},
                    "modes": STRS,
                }
            ),
            "created": MS,
            "created_by": STR,
            "enabled": BOOL,
            "failures": INT,
            "failing_since": nullable(MS),
            "next_attempt": nullable(MS),
            "disabled": nullable(MS),
            "disabled_reason": nullable(STR),
            "secrets": {
                "type": "array",
                "items": obj({"created": MS, "expires": nullable(MS)}),
            },
        }
    ),
    "WebhookWithSecret": {
        "allOf": [ref("Webhook")],
        "properties": {"secret": {"type": "string", "description": "`whsec_...`, shown once"}},
        "required": ["secret"],
    },
    "NewWebhook": obj(
        {
            "url": {"type": "string", "description": "http(s) URL of the receiver"},
            "description": STR,
            "incidents": {"oneOf": [{"const": "all"}, STRS]},
            "categories": {"oneOf": [{"const": "all"}, STRS]},
            "types": {"oneOf": [{"const": "all"}, STRS]},
            "modes": {"oneOf": [{"const": "all"}, STRS]},
        },
        "description",
        "incidents",
        "categories",
        "types",
        "modes",
        extra=True,
    ),
    "WebhookRotation": obj({"window_s": {"type": "number"}}, "window_s", extra=True),
    "WebhookReplay": obj({"incident": STR, "from_seq": {"type": "integer"}}, extra=True),
    "WebhookDeleted": obj({"id": STR, "deleted": BOOL}),
    "WebhookDeliveries": obj(
        {
            "webhook": STR,
            "enabled": BOOL,
            "next_retry": nullable(MS),
            "deliveries": {
                "type": "array",
                "items": obj(
                    {
                        "ts_ms": MS,
                        "kind": {"enum": ["attempt", "notice"]},
                        "incident": STR,
                        "seq": INT,
                        "webhook_id": STR,
                        "status": nullable({"type": "integer"}),
                        "ok": BOOL,
                        "error": STR,
                        "duration_ms": INT,
                        "next_retry_ms": nullable(MS),
                        "attempt": INT,
                    }
                ),
            },
        }
    ),
    "NewAgreement": obj(
        {
            "recipients": STRS,
            "fields": STRS,
            "position": STR,
            "kinds": STRS,
            "categories": nullable(STRS),
            "history": BOOL,
            "valid_until_ms": MS,
            "note": STR,
            "owner": STR,
        },
        "fields",
        "position",
        "kinds",
        "categories",
        "history",
        "valid_until_ms",
        "note",
        "owner",
        extra=True,
    ),
    "IncidentSummary": obj(
        {
            "id": STR,
            "epoch": STR,
            "seq": {"type": "integer", "minimum": 1, "description": "the head"},
            "title": STR,
            "external_ref": nullable(STR),
            "category": STR,
            "priority": STR,
            "status": STR,
            "location": nullable(LOCATION),
            "orgs": STRS,
            "lead_org": STR,
            "liaisons": {"type": "object", "additionalProperties": STR},
            "tlp": LABEL,
            "created_by": STR,
            "created": MS,
            "updated": MS,
            "mode": {"enum": ["actual", "exercise", "test"], "description": "SPEC 28"},
        },
        "mode",
        extra=True,
    ),
    "IncidentPage": obj(
        {"incidents": {"type": "array", "items": ref("IncidentSummary")}, "next": nullable(STR)}
    ),
    "IncidentView": {
        "allOf": [
            ref("IncidentSummary"),
            obj(
                {
                    "description": nullable(STR),
                    "subject": nullable(ref("Subject")),
                    "source": nullable(ref("Source")),
                    "status_history": {"type": "array", "items": ref("StatusChange")},
                    "messages": {"type": "array", "items": ref("Message")},
                    "tasks": {"type": "array", "items": ref("Task")},
                    "responders": {"type": "array", "items": ref("Responder")},
                    "checkins": {"type": "array", "items": ref("Checkin")},
                    "online": STRS,
                },
                extra=True,
            ),
        ],
        "description": "SPEC section 18, Incident view: the summary plus these, filtered",
    },
    "StatusChange": obj(
        {"status": STR, "by": STR, "ts": MS, "seq": SEQ, "note": nullable(STR)}, "note", extra=True
    ),
    "Message": obj(
        {
            "seq": SEQ,
            "tlp": LABEL,
            "recipients": STRS,
            "author": ACTOR,
            "text": nullable(STR),
            "ts": MS,
            "visibility": nullable(STRS),
            "urgent": BOOL,
            "reply_to": nullable(SEQ),
            "mentions": obj({"users": STRS, "orgs": STRS}, extra=True),
            "edited_seq": nullable(SEQ),
            "retracted": BOOL,
            "acks": {"type": "object", "additionalProperties": MS},
            "receipts": RECEIPTS,
            "escalations": ESCALATIONS,
        },
        extra=True,
    ),
    "Task": obj(
        {
            "id": SEQ,
            "title": {},
            "details": {},
            "tlp": LABEL,
            "recipients": STRS,
            "subject": {},
            "created_by": STR,
            "visibility": nullable(STRS),
            "status": STR,
            "assignee": nullable(obj({"org": STR, "user": nullable(STR)}, extra=True)),
            "note": nullable(STR),
            "updated_seq": SEQ,
            "updated": MS,
            "due": nullable(MS),
            "receipts": RECEIPTS,
            "escalations": ESCALATIONS,
        },
        extra=True,
    ),
    "Checkin": obj(
        {
            "id": SEQ,
            "user": STR,
            "org": STR,
            "name": STR,
            "status": {"enum": ["active", "missed", "duress", "ended", "resolved"]},
            "due": nullable(MS),
            "position": {"anyOf": [ref("Position"), ref("Redacted"), {"type": "null"}]},
            "alarm": nullable(ANY_OBJ),
            "resolved": nullable(ANY_OBJ),
        },
        extra=True,
    ),
    "Redacted": obj({"redacted": {"const": True}}),
    "Position": obj(
        {
            "lat": {"type": "number"},
            "lon": {"type": "number"},
            "accuracy_m": nullable({"type": "number"}),
            "precision": {"const": "coarse"},
        },
        "accuracy_m",
        "precision",
    ),
    "Source": obj(
        {
            "format": STR,
            "sender": STR,
            "identifier": STR,
            "sent": nullable(STR),
            "status": nullable(STR),
        },
        extra=True,
    ),
    "Subject": obj(
        {k: {"anyOf": [STR, {"type": "null"}, ref("Redacted")]} for k in SUBJECT},
        *SUBJECT,
    ),
    "Responder": obj(
        {
            "user": STR,
            "org": STR,
            "name": STR,
            "status": nullable({"enum": ["available", "en_route", "on_scene", "unavailable"]}),
            "status_ts": nullable(MS),
            "position": {"anyOf": [ref("Position"), ref("Redacted"), {"type": "null"}]},
            "position_ts": nullable(MS),
            "position_age_s": nullable(INT),
        },
        extra=True,
    ),
    "Envelope": {
        "description": "SPEC 9.2, or the `restricted` placeholder of 9.3",
        "type": "object",
        "required": ["v", "type", "incident", "seq", "epoch", "digest", "hash"],
        "properties": {
            "v": {"const": 1},
            "type": STR,
            "incident": STR,
            "seq": {"type": "integer", "minimum": 1},
            "epoch": STR,
            "ts": MS,
            "actor": ACTOR,
            "cid": STR,
            "visibility": nullable(STRS),
            "body": ANY_OBJ,
            "digest": STR,
            "hash": STR,
            "salt": STR,
            "redacted": {"type": "array", "items": STR, "description": "fields redacted (9.4)"},
        },
    },
    "Timeline": obj(
        {
            "incident": STR,
            "epoch": STR,
            "head_seq": INT,
            "events": {"type": "array", "items": ref("Envelope")},
            "next_after_seq": nullable(INT),
            "scanned_to_seq": {
                "type": "integer",
                "description": "filtered reads only: events up to here not in `events` were"
                " skipped (SPEC 18.4)",
            },
        },
        "scanned_to_seq",
    ),
    "SearchHit": obj(
        {
            "incident": STR,
            "seq": SEQ,
            "snippet": STR,
            "event": ref("Envelope"),
        }
    ),
    "SearchPage": obj(
        {"hits": {"type": "array", "items": ref("SearchHit")}, "next": nullable(STR)}
    ),
    "FeedPage": obj(
        {
            "entries": {
                "type": "array",
                "items": ref("FeedEntry"),
                "description": "in feed order; each with the cursor just after it",
            },
            "cursor": {"type": "string", "description": "where the next page starts"},
            "more": {"type": "boolean", "description": "true: read on at once, not at the head"},
        }
    ),
    "FeedEntry": obj(
        {
            "kind": {
                "enum": ["incident.opened", "org.added", "incident.changed", "needs_you", "event"]
            },
            "incident": STR,
            "seq": INT,
            "ts": INT,
            "cursor": STR,
            "summary": ANY_OBJ,
            "changes": ANY_OBJ,
            "reasons": {
                "type": "array",
                "items": {
                    "enum": [
                        "urgent",
                        "mention",
                        "task",
                        "capacity",
                        "escalation",
                        "checkin",
                        "duress",
                    ]
                },
            },
            "request": INT,
            "items": ANY_OBJ,
            "type": {"type": "string", "description": "an alarm's event type"},
            "checkin": INT,
            "user": STR,
            "message": INT,
            "text": STR,
            "task": INT,
            "title": nullable(STR),
            "author": ANY_OBJ,
            "event": ANY_OBJ,
        },
        "summary",
        "changes",
        "reasons",
        "message",
        "text",
        "task",
        "title",
        "author",
        "event",
        "request",
        "items",
        "type",
        "checkin",
        "user",
    ),
    "IncidentCreate": obj(
        {
            "id": ID,
            "title": {"type": "string", "minLength": 1, "maxLength": LIMITS.max_short_chars},
            "category": {"type": "string", "minLength": 1, "maxLength": 64},
            "priority": {"enum": ["low", "normal", "high", "critical"]},
            "description": {"type": "string", "maxLength": LIMITS.max_text_chars},
            "location": LOCATION,
            "orgs": {"type": "array", "items": ID, "maxItems": LIMITS.max_list_items},
            "lead_org": ID,
            "liaisons": {"type": "object", "additionalProperties": ID},
            "tlp": {"enum": ["CLEAR", "GREEN", "AMBER"]},
            "subject": ANY_OBJ,
            "source": ANY_OBJ,
            "external_ref": EXTERNAL_REF,
        },
        *("priority", "description", "location", "orgs", "lead_org", "liaisons", "tlp"),
        "subject",
        "source",
        "external_ref",
        extra=True,
    ),
    "MessagePost": obj(
        {
            "type": {"const": "message.post"},
            "id": ID,
            "incident": ID,
            "text": {"type": "string", "minLength": 1, "maxLength": LIMITS.max_text_chars},
            "urgent": BOOL,
            "tlp": LABEL,
        },
        "urgent",
        "tlp",
        extra=True,
    ),
    "Command": {
        "description": "a write command of SPEC section 8 (`incident.create` without `type`"
        " on POST /api/v1/incidents)",
        "type": "object",
        "anyOf": [
            ref("MessagePost"),
            {
                "type": "object",
                "required": ["type"],
                "properties": {"type": STR, "id": ID, "incident": ID},
            },
        ],
    },
    "Stored": obj(
        {
            "ok": {"const": True},
            "incident": STR,
            "seq": {"type": "integer", "minimum": 1},
            "epoch": STR,
            "ts": MS,
            "duplicate": BOOL,
        },
        extra=True,
    ),
}


def _responses() -> dict[str, Schema]:
    out: dict[str, Schema] = {}
    for status, (name, description) in ERROR_RESPONSES.items():
        response: Schema = {
            "description": description,
            "content": {"application/json": {"schema": ref("Error")}},
        }
        if status == 429:
            response["headers"] = {
                "Retry-After": {"schema": {"type": "string"}, "description": "seconds"}
            }
        out[name] = response
    return out


def _op(
    summary: str,
    tag: str,
    ok: tuple[int, Schema],
    errors: tuple[int, ...],
    *,
    public: bool = False,
    body: str | None = None,
    query: tuple[Schema, ...] = (),
    path_id: str | None = None,
) -> Schema:
    status, schema = ok
    codes = sorted({*errors, 503, *(() if public else (401,)), *((400, 413) if body else ())})
    op: Schema = {
        "summary": summary,
        "tags": [tag],
        "responses": {
            str(status): {
                "description": "success",
                "content": {"application/json": {"schema": schema}},
            },
            **{str(c): {"$ref": f"#/components/responses/{ERROR_RESPONSES[c][0]}"} for c in codes},
        },
    }
    if public:
        op["security"] = []
    params = list(query)
    if path_id:
        params.insert(0, {"name": "id", "in": "path", "required": True, "schema": STR})
        op["description"] = f"`id`: {path_id}"
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(body)}},
        }
    return op


def _q(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


SEQ_Q = _q("after_seq", {"type": "integer", "minimum": 0, "maximum": 2**53}, "default 0")
LIMIT_Q = _q("limit", {"type": "integer", "minimum": 0, "maximum": LIMITS.max_page}, "default 200")
OK = (200, ref("Ok"))


def _list(name: str, item: str) -> Schema:
    return obj({name: {"type": "array", "items": ref(item)}})


def _paths() -> dict[str, dict[str, Schema]]:
    user = "a user id (`u_<username>`)"
    return {
        "/healthz": {
            "get": {
                **_op(
                    "Liveness and backend health", "health", (200, ref("Health")), (), public=True
                ),
                "responses": {
                    "200": {
                        "description": "healthy",
                        "content": {"application/json": {"schema": ref("Health")}},
                    },
                    "503": {
                        "description": "degraded: e.g. the node's Redis subscriber is down",
                        "content": {"application/json": {"schema": ref("Health")}},
                    },
                },
            }
        },
        "/api/v1/auth/login": {
            "post": _op(
                "Log in (SPEC 4)",
                "auth",
                (200, ref("Session")),
                (401, 403, 429),
                public=True,
                body="Login",
            )
        },
        "/api/v1/auth/refresh": {
            "post": _op(
                "Trade a refresh token for a new pair (SPEC 4.1)",
                "auth",
                (200, ref("Session")),
                (401,),
                public=True,
                body="Refresh",
            )
        },
        "/api/v1/auth/logout": {"post": _op("End this session (SPEC 4.2)", "auth", OK, (400,))},
        "/api/v1/auth/password": {
            "post": _op(
                "Change your password; every session ends, a new one is answered",
                "auth",
                (200, ref("Session")),
                (403,),
                body="PasswordChange",
            )
        },
        **{
            f"/api/v1/users/{{id}}/{action}": {
                "post": _op(summary, "users", OK, (403, 404, 409), path_id=user, body=body)
            }
            for action, summary, body in (
                ("disable", "Disable an account; its sessions end (admin)", None),
                ("enable", "Enable an account again (admin)", None),
                ("reset-password", "Set a password; its sessions end (admin)", "PasswordReset"),
                ("revoke-sessions", "End every session of a user (admin)", None),
            )
        },
        "/api/v1/users/{id}/phone": {
            "post": _op(
                "Set or remove (null) a user's phone number (admin)",
                "users",
                (200, ref("User")),
                (403, 404),
                path_id=user,
                body="PhoneSet",
            )
        },
        "/api/v1/users/{id}": {
            "delete": _op("Delete an account (admin)", "users", OK, (403, 404, 409), path_id=user)
        },
        "/api/v1/users": {
            "get": _op(
                "Users: all for admins, else your organisation's",
                "users",
                (200, _list("users", "User")),
                (403,),
            ),
            "post": _op(
                "Create a user (admin)", "users", (201, ref("User")), (403, 409), body="NewUser"
            ),
        },
        "/api/v1/keys": {
            "get": _op(
                "Your organisation's API keys (admin)", "keys", (200, _list("keys", "Key")), (403,)
            ),
            "post": _op(
                "Create an API key for a bot of your organisation (admin, SPEC 4.3)",
                "keys",
                (201, ref("Key")),
                (403, 404),
                body="NewKey",
            ),
        },
        "/api/v1/keys/{id}": {
            "get": _op(
                "One key, with last_used (admin)",
                "keys",
                (200, ref("Key")),
                (403, 404),
                path_id="a key id",
            ),
            "delete": _op(
                "Revoke a key (admin)", "keys", (200, ref("Key")), (403, 404), path_id="a key id"
            ),
        },
        "/api/v1/audit": {
            "get": _op(
                "A page of the audit log (auditor)",
                "audit",
                (200, ref("AuditPage")),
                (400, 403),
                query=(SEQ_Q, LIMIT_Q),
            ),
        },
        "/api/v1/me": {"get": _op("Who you are", "directory", (200, ref("Me")), (403,))},
        "/api/v1/orgs": {
            "get": _op("Organisations", "directory", (200, _list("orgs", "Org")), (403,)),
            "post": _op(
                "Create an organisation (admin)",
                "directory",
                (201, ref("CreatedOrg")),
                (403, 409),
                body="NewOrg",
            ),
        },
        "/api/v1/orgs/{id}": {
            "patch": _op(
                "Set an organisation's default label (its admins, SPEC 9.4)",
                "sharing",
                (200, ref("Org")),
                (403, 404),
                body="OrgLabel",
                path_id="an organisation id",
            ),
        },
        "/api/v1/agreements": {
            "get": _op(
                "Agreements your organisation owns or receives (admins, supervisors)",
                "sharing",
                (200, _list("agreements", "Agreement")),
                (403,),
            ),
            "post": _op(
                "Create a sharing agreement (admin, SPEC 9.4)",
                "sharing",
                (201, ref("Agreement")),
                (403, 409),
                body="NewAgreement",
            ),
        },
        "/api/v1/agreements/{id}": {
            "get": _op(
                "One agreement (admins, supervisors)",
                "sharing",
                (200, ref("Agreement")),
                (403, 404),
                path_id="an agreement id",
            ),
        },
        "/api/v1/agreements/{id}/revoke": {
            "post": _op(
                "Revoke an agreement (admins of a party)",
                "sharing",
                (200, ref("Agreement")),
                (403, 404, 409),
                path_id="an agreement id",
            ),
        },
        "/readyz": {
            "get": {
                **_op(
                    "Readiness: the write path works (writer, Redis, revocation feed)",
                    "health",
                    (200, ref("Ready")),
                    (),
                    public=True,
                ),
                "responses": {
                    "200": {
                        "description": "ready",
                        "content": {"application/json": {"schema": ref("Ready")}},
                    },
                    "503": {
                        "description": "not ready, with the reasons",
                        "content": {"application/json": {"schema": ref("Ready")}},
                    },
                },
            }
        },
        "/metrics": {
            "get": {
                **_op(
                    "Prometheus metrics (a bearer token if LIAISON_METRICS_TOKEN is set)",
                    "health",
                    (200, STR),
                    (),
                    public=True,
                ),
                "responses": {
                    "200": {
                        "description": "the Prometheus text exposition format",
                        "content": {"text/plain": {"schema": STR}},
                    },
                    "401": {
                        "description": "LIAISON_METRICS_TOKEN is set and was not sent",
                        "content": {"application/json": {"schema": ref("Error")}},
                    },
                },
            }
        },
        "/api/v1/webhooks": {
            "get": _op(
                "Your organisation's webhooks (admin, SPEC 21)",
                "webhooks",
                (200, _list("webhooks", "Webhook")),
                (403,),
            ),
            "post": _op(
                "Subscribe a receiver (admin); the secret is shown once",
                "webhooks",
                (201, ref("WebhookWithSecret")),
                (403, 409),
                body="NewWebhook",
            ),
        },
        "/api/v1/webhooks/{id}": {
            "get": _op(
                "One webhook (admin)",
                "webhooks",
                (200, ref("Webhook")),
                (403, 404),
                path_id="a webhook id",
            ),
            "delete": _op(
                "Remove a webhook (admin)",
                "webhooks",
                (200, ref("WebhookDeleted")),
                (403, 404),
                path_id="a webhook id",
            ),
        },
        "/api/v1/webhooks/{id}/rotate": {
            "post": _op(
                "A new secret; the old one is also signed with for `window_s` (admin)",
                "webhooks",
                (200, ref("WebhookWithSecret")),
                (403, 404),
                body="WebhookRotation",
                path_id="a webhook id",
            ),
        },
        "/api/v1/webhooks/{id}/deliveries": {
            "get": _op(
                "The delivery log, newest first (admin)",
                "webhooks",
                (200, ref("WebhookDeliveries")),
                (400, 403, 404),
                query=(
                    _q("limit", {"type": "integer", "minimum": 0, "maximum": 500}, "default 100"),
                ),
                path_id="a webhook id",
            ),
        },
        "/api/v1/webhooks/{id}/replay": {
            "post": _op(
                "Deliver again from a seq of an incident, and re-enable (admin)",
                "webhooks",
                (200, ref("Webhook")),
                (403, 404),
                body="WebhookReplay",
                path_id="a webhook id",
            ),
        },
        "/api/v1/incidents": {
            "get": _op(
                "A page of the incidents your organisation takes part in, most recent first",
                "incidents",
                (200, ref("IncidentPage")),
                (400, 403),
                query=(
                    _q("status", STR, "exact match"),
                    _q("category", STR, "exact match"),
                    _q("q", STR, "case-insensitive substring of the title"),
                    _q("updated_after", {"type": "integer", "minimum": 0, "maximum": 2**53}, "ms"),
                    _q("ref", EXTERNAL_REF, "exact external reference (CAD number)"),
                    _q(
                        "mode",
                        {"type": "string", "enum": ["actual", "exercise", "test"]},
                        "only incidents of this mode (SPEC 28); with `ref` and without"
                        " `mode`: `actual`",
                    ),
                    LIMIT_Q,
                    _q("cursor", STR, "the `next` of the previous page"),
                ),
            ),
            "post": _op(
                "Open an incident (coordinators; `incident.create` without `type`)",
                "incidents",
                (201, ref("Stored")),
                (403, 404, 409),
                body="IncidentCreate",
            ),
        },
        "/api/v1/incidents/{id}": {
            "get": _op(
                "The incident view (participants)",
                "incidents",
                (200, ref("IncidentView")),
                (403, 404),
                path_id="an incident id",
            ),
        },
        "/api/v1/incidents/{id}/contacts": {
            "get": _op(
                "Each organisation's liaison with a phone number, and the bots you see act"
                " (participants)",
                "incidents",
                (200, ref("Contacts")),
                (403, 404),
                path_id="an incident id",
            ),
        },
        "/api/v1/incidents/{id}/timeline": {
            "get": _op(
                "A page of the incident's events (participants)",
                "incidents",
                (200, ref("Timeline")),
                (400, 403, 404, 416),
                query=(
                    SEQ_Q,
                    LIMIT_Q,
                    _q(
                        "types",
                        STR,
                        "comma-separated event types or `family.*`: a filtered read (SPEC 18.4)",
                    ),
                    _q("since", {"type": "integer", "minimum": 0}, "ms: events stored after it"),
                ),
                path_id="an incident id",
            ),
        },
        "/api/v1/search": {
            "get": _op(
                "Text search over the events you may see (SPEC 18.5)",
                "incidents",
                (200, ref("SearchPage")),
                (400, 403, 404),
                query=(
                    {
                        **_q("q", STR, "words, all must match (at most 8, 200 characters)"),
                        "required": True,
                    },
                    _q("incident", STR, "only this incident"),
                    _q("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "default 20"),
                    _q("cursor", STR, "the `next` of the previous page"),
                ),
            ),
        },
        "/api/v1/feed": {
            "get": {
                **_op(
                    "The cross-incident feed of what you may see, from a cursor (SPEC section 24)",
                    "feed",
                    (200, ref("FeedPage")),
                    (400, 409),
                    query=(
                        _q("after", STR, "a cursor; absent: no entries, the cursor of now"),
                        _q("kinds", STR, "comma-separated kinds; default all but `event`"),
                        _q("limit", {"type": "integer", "minimum": 0, "maximum": 500}, "100"),
                        _q("wait", {"type": "integer", "minimum": 0, "maximum": 30}, "seconds"),
                    ),
                ),
                "description": "Long-poll with `wait`: an empty page is held until an entry"
                " comes or `wait` ends. With `Accept: text/event-stream` the same read is"
                " Server-Sent Events (`id:` each entry's cursor, `data:` the entry), resumed"
                " from `Last-Event-ID`. 409 `resync_required`: the cursor can no longer be"
                " served; `detail.cursor` is where to go on after reloading the list.",
            },
        },
        "/api/v1/commands": {
            "post": _op(
                "Any write command of SPEC section 8",
                "incidents",
                (200, ref("Stored")),
                (403, 404, 409),
                body="Command",
            ),
        },
        **openapi_export.paths(_op, _q, ref),
        **openapi_push.paths(_op, _q, ref),
        OPENAPI_PATH: {
            "get": {
                "summary": "This document",
                "tags": ["meta"],
                "security": [],
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1",
                        "content": {"application/json": {"schema": ANY_OBJ}},
                    }
                },
            }
        },
        **standards_paths(),
        DOCS_PATH: {
            "get": {
                "summary": "This document as a page",
                "tags": ["meta"],
                "security": [],
                "responses": {
                    "200": {"description": "HTML", "content": {"text/html": {"schema": STR}}}
                },
            }
        },
    }


@cache
def document() -> dict[str, Any]:
    """The whole document (built once; callers must not modify it)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Liaison REST API",
            "version": "1",
            "description": "Joint incident coordination. The reference is protocol/SPEC.md"
            ' (section 18; authentication in 4). Errors are `{"error": {code, message,'
            " retryable, detail?}}` with the stable codes of SPEC section 16.",
        },
        "paths": {
            **_paths(),
            **openapi_reports.paths(_op, _q, ref),
            **openapi_retention.paths(_op, _q, ref),
            **openapi_capacity.paths(_op, _q, ref),
        },
        "components": {
            "schemas": {
                **SCHEMAS,
                **openapi_reports.SCHEMAS,
                **openapi_export.SCHEMAS,
                **openapi_push.SCHEMAS,
                **openapi_retention.SCHEMAS,
                **openapi_capacity.SCHEMAS,
            },
            "responses": _responses(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an access token from /api/v1/auth/login, or a bot's API key"
                    " `lk_...`",
                }
            },
        },
        "security": [{"bearer": []}],
    }
