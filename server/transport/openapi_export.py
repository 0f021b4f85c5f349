"""The OpenAPI paths and schemas of exports, signed heads and anchors (SPEC section 23).

Merged into ``server/transport/openapi.py``'s document by its ``_paths`` and
``SCHEMAS``; kept here beside ``rest_export.py``, the routes they describe.
"""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

_HEX: Schema = {"type": "string", "pattern": "^[0-9a-f]+$"}

SCHEMAS: dict[str, Schema] = {
    "HeadStatement": {
        "type": "object",
        "required": ["type", "incident", "epoch", "seq", "hash", "ts_ms", "key"],
        "properties": {
            "type": {"const": "liaison.chain_head"},
            "incident": {"type": "string"},
            "epoch": {"type": "string"},
            "seq": {"type": "integer", "minimum": 1},
            "hash": _HEX,
            "ts_ms": {"type": "integer", "minimum": 0},
            "key": _HEX,
        },
        "additionalProperties": False,
    },
    "SignedHead": {
        "type": "object",
        "required": ["statement", "signature"],
        "properties": {
            "statement": {"$ref": "#/components/schemas/HeadStatement"},
            "signature": _HEX,
        },
        "additionalProperties": False,
    },
    "NodeKey": {
        "type": "object",
        "required": ["algorithm", "public_key"],
        "properties": {"algorithm": {"const": "Ed25519"}, "public_key": _HEX},
        "additionalProperties": False,
    },
}

#: What an export answers, by format (the body is streamed).
_EXPORT_CONTENT = {
    "application/x-ndjson": {"schema": {"type": "string"}},
    "text/csv": {"schema": {"type": "string"}},
    "text/html": {"schema": {"type": "string"}},
    "application/pdf": {"schema": {"type": "string", "format": "binary"}},
}
_EVENTS_HEADER = {
    "X-Liaison-Export-Events": {
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
        "description": "events the export will hold (for a progress bar)",
    }
}


def _streamed(op: Schema, formats: tuple[str, ...]) -> Schema:
    """``op`` answering the export's content types instead of JSON on success."""
    types = {
        "jsonl": "application/x-ndjson",
        "csv": "text/csv",
        "html": "text/html",
        "pdf": "application/pdf",
    }
    op["responses"]["200"] = {
        "description": "the export, streamed (SPEC section 23)",
        "headers": _EVENTS_HEADER,
        "content": {types[f]: _EXPORT_CONTENT[types[f]] for f in formats},
    }
    return op


def paths(op: Any, q: Any, ref: Any) -> dict[str, dict[str, Schema]]:
    """The paths, built with openapi.py's own ``_op``, ``_q`` and ``ref``."""
    ms: Schema = {"type": "integer", "minimum": 0, "maximum": 2**53}
    every = ("jsonl", "csv", "html", "pdf")
    return {
        "/api/v1/incidents/{id}/export": {
            "get": _streamed(
                op(
                    "The incident's log as you may see it: JSONL, CSV, HTML or PDF (audited)",
                    "exports",
                    (200, {"type": "string"}),
                    (400, 403, 404, 410),
                    query=(q("format", {"enum": list(every)}, "default jsonl"),),
                    path_id="an incident id",
                ),
                every,
            )
        },
        "/api/v1/export": {
            "get": _streamed(
                op(
                    "Every incident you take part in created in [from, to): JSONL or CSV",
                    "exports",
                    (200, {"type": "string"}),
                    (400, 403),
                    query=(
                        q("format", {"enum": ["jsonl", "csv"]}, "default jsonl"),
                        q("from", ms, "ms, default 0"),
                        q("to", ms, "ms (exclusive), default: no end"),
                    ),
                ),
                ("jsonl", "csv"),
            )
        },
        "/api/v1/incidents/{id}/head": {
            "get": op(
                "The incident's chain head now, signed by the node (and anchored)",
                "exports",
                (200, ref("SignedHead")),
                (403, 404),
                path_id="an incident id",
            )
        },
        "/api/v1/node-key": {
            "get": op(
                "The Ed25519 public key chain heads are signed with",
                "exports",
                (200, ref("NodeKey")),
                (),
                public=True,
            )
        },
        "/api/v1/anchors": {
            "get": op(
                "A page of the anchor log of signed heads (yours; all for admins and auditors)",
                "exports",
                (200, ref("AuditPage")),
                (400,),
                query=(
                    q("after_seq", ms, "default 0"),
                    q("limit", {"type": "integer", "minimum": 0, "maximum": 1000}, "default 200"),
                ),
            )
        },
    }
