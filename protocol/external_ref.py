"""An incident's external reference: the CAD number (or any other system's id) for it.

Set at ``incident.create`` and changed by ``incident.update``; the incident
list looks incidents up by it (``GET /api/v1/incidents?ref=``). The same
check runs on the command field and on the query parameter, so a reference
that can be stored can be found, and a lookup with one that cannot is refused
the same way (SPEC section 18.2).
"""

from __future__ import annotations

import re

from protocol.errors import ErrorCode, ProtocolError

#: Characters of a CAD number: long enough for "PD-2026-000123/A" and the like.
MAX_CHARS = 64
#: A letter or digit first, then letters, digits and ``- _ . / : #``: what CAD
#: systems print, and nothing a log line, a URL or a shell would mangle.
PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:#-]*")


def invalid_ref(field: str, reason: str, why: str) -> ProtocolError:
    """The refusal of a bad reference: code ``invalid``, ``detail.reason`` stable."""
    return ProtocolError(ErrorCode.INVALID, f"{field}: {why}", {"field": field, "reason": reason})


def check_ref(value: object, field: str = "external_ref") -> str:
    """``value`` if it is a valid reference, else ``invalid`` with a ``reason``:

    ``not_string``, ``empty``, ``too_long`` or ``charset``.
    """
    if not isinstance(value, str):
        raise invalid_ref(field, "not_string", "must be a string")
    if not value:
        raise invalid_ref(field, "empty", "must not be empty")
    if len(value) > MAX_CHARS:
        raise invalid_ref(field, "too_long", f"longer than {MAX_CHARS} characters")
    if not PATTERN.fullmatch(value):
        raise invalid_ref(
            field,
            "charset",
            "letters, digits and - _ . / : # only, starting with a letter or digit",
        )
    return value
