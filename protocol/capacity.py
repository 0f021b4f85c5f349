"""Capacity items: what an organisation can offer right now (SPEC section 27.2).

No I/O and no server imports (a bot author can vendor this with the rest of
``protocol``). An organisation publishes *changes*: ``{"beds": 4, "note":
null}`` sets beds and clears the note, leaving the other items as they were.
A request from an incident names amounts of the countable items and
languages (``{"beds": 2, "languages": ["ar"]}``).
"""

from __future__ import annotations

import re
from typing import Any

from protocol.errors import ErrorCode, ProtocolError
from protocol.fields import Fields

#: Items counted in whole numbers (free beds, people on duty, vehicles free).
COUNT_ITEMS = ("beds", "staff_on_duty", "vehicles")
#: Free-text items and their longest length.
TEXT_ITEMS = {"opening_hours": 200, "note": 500}
LANGUAGES = "languages"
#: Every item, in the order a board shows them. Appended to, never renamed.
ITEMS = (*COUNT_ITEMS, "opening_hours", LANGUAGES, "note")
#: Items a request from an incident may name.
REQUESTABLE = (*COUNT_ITEMS, LANGUAGES)
MAX_COUNT = 100_000
MAX_LANGUAGES = 20
#: ISO 639-1/-2 codes: two or three lowercase letters.
LANGUAGE = re.compile(r"[a-z]{2,3}")


def _invalid(field: str, why: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID, f"{field}: {why}", {"field": field})


def _count(field: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_COUNT:
        raise _invalid(field, f"must be a whole number from {minimum} to {MAX_COUNT}")
    return value


def _languages(field: str, value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_LANGUAGES:
        raise _invalid(field, f"must be a list of at most {MAX_LANGUAGES} language codes")
    for code in value:
        if not isinstance(code, str) or LANGUAGE.fullmatch(code) is None:
            raise _invalid(field, f"{code!r} is not an ISO 639 code (two or three letters)")
    return list(dict.fromkeys(value))


def _item(where: str, key: str, value: Any) -> Any:
    field = f"{where}.{key}"
    if key in COUNT_ITEMS:
        return _count(field, value, 0)
    if key == LANGUAGES:
        return _languages(field, value)
    if not isinstance(value, str) or len(value) > TEXT_ITEMS[key]:
        raise _invalid(field, f"must be a string of at most {TEXT_ITEMS[key]} characters")
    return value


def parse_change(f: Fields, key: str = "items") -> dict[str, Any]:
    """A published change: item -> new value, or None to clear it. At least one item."""
    sub = f.sub(key, required=True)
    assert sub is not None
    if not sub.obj:
        raise _invalid(key, "name at least one item")
    out: dict[str, Any] = {}
    for item, value in sub.obj.items():
        if item not in ITEMS:
            raise _invalid(f"{key}.{item}", f"not an item (one of {', '.join(ITEMS)})")
        out[item] = None if value is None else _item(key, item, value)
    return out


def parse_request(f: Fields, key: str = "items") -> dict[str, Any]:
    """What an incident asks for: counts of at least 1, or languages. At least one item."""
    sub = f.sub(key, required=True)
    assert sub is not None
    if not sub.obj:
        raise _invalid(key, "name at least one item")
    out: dict[str, Any] = {}
    for item, value in sub.obj.items():
        field = f"{key}.{item}"
        if item not in REQUESTABLE:
            raise _invalid(field, f"not requestable (one of {', '.join(REQUESTABLE)})")
        out[item] = _languages(field, value) if item == LANGUAGES else _count(field, value, 1)
    return out
