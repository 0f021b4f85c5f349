"""The OpenAPI operations of the public-safety standards (rest_standards.py).

Kept beside the document (openapi.py merges them into its paths) so the
standards' routes are described in one place. XML bodies are documented as
``application/xml`` strings: the schema of what they hold is the standard's
own (CAP-v1.2.xsd, the CoT base schema), not JSON Schema.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

XML_BODY: Schema = {
    "required": True,
    "content": {"application/xml": {"schema": {"type": "string"}}},
}


def _xml_answer(op: Schema, description: str) -> Schema:
    op["responses"]["200"] = {
        "description": description,
        "content": {"application/xml": {"schema": {"type": "string"}}},
    }
    return op


def _xml_input(op: Schema) -> Schema:
    op["requestBody"] = XML_BODY
    for status, name in (("400", "BadRequest"), ("413", "TooLarge")):
        op["responses"].setdefault(status, {"$ref": f"#/components/responses/{name}"})
    return op


def standards_paths() -> dict[str, dict[str, Schema]]:
    from server.transport.openapi import STR, _op, obj, ref

    incident = "an incident id"
    imported = {
        "allOf": [
            ref("Stored"),
            obj(
                {"action": {"enum": ["created", "updated", "cancelled"]}, "cap": STR},
                extra=True,
            ),
        ]
    }
    cap_in = _op(
        "Import a CAP 1.2 alert (XML): Alert creates, Update updates, Cancel closes"
        " (protocol/INTEGRATIONS.md); 201 when it created an incident",
        "standards",
        (200, imported),
        (403, 404, 409),
    )
    cap_in["responses"]["201"] = {
        "description": "an incident was created",
        "content": {"application/json": {"schema": imported}},
    }
    return {
        "/api/v1/integrations/cap": {"post": _xml_input(cap_in)},
        "/api/v1/incidents/{id}/cap": {
            "get": _xml_answer(
                _op(
                    "The incident as a CAP 1.2 alert",
                    "standards",
                    (200, {}),
                    (403, 404),
                    path_id=incident,
                ),
                "a CAP 1.2 `<alert>` (valid against OASIS's CAP-v1.2.xsd)",
            )
        },
        "/api/v1/incidents/{id}/eido": {
            "get": _op(
                "The incident as a NENA EIDO (NENA-STA-021.1, JSON)",
                "standards",
                (200, {"type": "object", "required": ["eidoVersion", "incidentComponent"]}),
                (403, 404),
                path_id=incident,
            )
        },
        "/api/v1/incidents/{id}/cot": {
            "get": _xml_answer(
                _op(
                    "The positions you may see, as Cursor-on-Target events",
                    "standards",
                    (200, {}),
                    (403, 404),
                    path_id=incident,
                ),
                "`<events>` holding one CoT `<event>` per visible responder position",
            ),
            "post": _xml_input(
                _op(
                    "Your position, as a Cursor-on-Target `<event>` (XML)",
                    "standards",
                    (200, ref("Stored")),
                    (403, 404, 409),
                    path_id=incident,
                )
            ),
        },
    }
