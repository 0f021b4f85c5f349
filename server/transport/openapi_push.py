"""The OpenAPI paths and schemas of Web Push (SPEC section 26), beside rest_push.py.

Merged into ``server/transport/openapi.py``'s document by its ``_paths`` and
``SCHEMAS``.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_B64URL: Schema = {"type": "string", "minLength": 1, "maxLength": 200}

SCHEMAS: dict[str, Schema] = {
    "PushKey": {
        "type": "object",
        "required": ["public_key"],
        "properties": {
            "public_key": {
                "type": "string",
                "description": "the VAPID public key (P-256 point, base64url): the"
                " Push API's applicationServerKey",
            }
        },
        "additionalProperties": False,
    },
    "PushSubscribe": {
        "type": "object",
        "required": ["endpoint", "keys"],
        "properties": {
            "endpoint": {"type": "string", "minLength": 1, "maxLength": 2048},
            "keys": {
                "type": "object",
                "required": ["p256dh", "auth"],
                "properties": {"p256dh": _B64URL, "auth": _B64URL},
            },
            "expirationTime": {"type": ["integer", "null"]},
        },
        "description": "PushSubscription.toJSON() of the browser",
    },
    "PushSubscribed": {
        "type": "object",
        "required": ["endpoint", "expires"],
        "properties": {
            "endpoint": {"type": "string"},
            "expires": {"type": "integer", "description": "ms; it ends with the session"},
        },
        "additionalProperties": False,
    },
    "PushDeleted": {
        "type": "object",
        "required": ["deleted"],
        "properties": {"deleted": {"type": "boolean"}},
        "additionalProperties": False,
    },
}


def paths(op: Any, q: Any, ref: Any) -> dict[str, dict[str, Schema]]:
    """The paths, built with openapi.py's own ``_op``, ``_q`` and ``ref``."""
    return {
        "/api/v1/push/key": {
            "get": op("The VAPID key a browser subscribes with", "push", (200, ref("PushKey")), ())
        },
        "/api/v1/push/subscriptions": {
            "post": op(
                "Subscribe this browser to Web Push (a person's session, not an API key)",
                "push",
                (201, ref("PushSubscribed")),
                (403,),
                body="PushSubscribe",
            ),
            "delete": op(
                "Unsubscribe a browser of yours",
                "push",
                (200, ref("PushDeleted")),
                (400,),
                query=(
                    {
                        "name": "endpoint",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "minLength": 1},
                        "description": "the subscription's endpoint",
                    },
                ),
            ),
        },
    }
