"""Expertise tags: what an organisation or a person can do, and what an incident needs.

A small controlled vocabulary, so that "first aid" and "First-Aid" and
"firstaid" are one tag a dispatcher can filter on, plus free-form language
tags ``lang:xx`` (an ISO 639 code, two or three lowercase letters): a list of
every language would be longer than the rest of the vocabulary together and
could not be kept current here (SPEC section 27.1).

Tags are on organisations and users (the directory, set by an admin) and
``needs`` are on an incident (``incident.create`` / ``incident.update``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from protocol.errors import ErrorCode, ProtocolError

#: The controlled vocabulary (SPEC 27.1). Appended to, never renamed: tags
#: are stored in the directory and in incident logs.
VOCABULARY = (
    "first_aid",
    "medical",
    "mental_health",
    "crisis_intervention",
    "child_protection",
    "domestic_violence",
    "victim_support",
    "substance_use",
    "homelessness",
    "shelter",
    "translation",
    "legal",
    "transport",
    "wildlife",
)
_KNOWN = frozenset(VOCABULARY)
LANG_PREFIX = "lang:"
_LANG = re.compile(r"lang:[a-z]{2,3}")
#: Tags one organisation, person or incident carries at most.
MAX_TAGS = 16


def is_tag(value: str) -> bool:
    return value in _KNOWN or _LANG.fullmatch(value) is not None


def check_tags(values: Iterable[object], field: str = "tags") -> tuple[str, ...]:
    """The tags, deduplicated in their order; INVALID naming the first bad one."""
    out: dict[str, None] = {}
    for value in values:
        if not isinstance(value, str) or not is_tag(value):
            raise ProtocolError(
                ErrorCode.INVALID,
                f"{field}: {value!r} is not a tag (one of {', '.join(VOCABULARY)}, or lang:xx)",
                {"field": field},
            )
        out[value] = None
    if len(out) > MAX_TAGS:
        raise ProtocolError(ErrorCode.INVALID, f"{field}: at most {MAX_TAGS}", {"field": field})
    return tuple(out)
