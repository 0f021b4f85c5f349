"""Print one field of a Liaison JSON answer read from stdin; for shell scripts.

    curl -s "$LIAISON/api/v1/auth/login" -d '{...}' | python -m liaison_client.jsonfield token
    curl -s ... /api/v1/incidents | python -m liaison_client.jsonfield incidents.0.id

Strings are printed as they are, anything else as JSON. When the server
answered with an error, or not at all, it says so on stderr and exits with 1
instead of printing a traceback, so ``TOKEN=$(...)`` fails visibly.
Standard library only.
"""

from __future__ import annotations

import json
import sys
from typing import Any


class FieldError(Exception):
    """The answer does not hold the field; the message says why, for a person."""


def pick(answer: Any, path: str) -> Any:
    """``answer[a][b]...`` for ``path`` "a.b...", where a number indexes a list."""
    value = answer
    for step in path.split("."):
        if isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        elif isinstance(value, dict) and step in value:
            value = value[step]
        else:
            raise FieldError(f"the answer has no {path!r} (stopped at {step!r})")
    return value


def field_of(text: str, path: str) -> str:
    if not text.strip():
        raise FieldError("no answer: is the server running at that address? (see $LIAISON)")
    try:
        answer = json.loads(text)
    except ValueError:
        first_line = text.strip().splitlines()[0][:120]
        raise FieldError(f"the answer is not JSON: {first_line}") from None
    error = answer.get("error") if isinstance(answer, dict) else None
    if isinstance(error, dict):
        raise FieldError(f"the server refused: {error.get('code')}: {error.get('message')}")
    value = pick(answer, path)
    return value if isinstance(value, str) else json.dumps(value)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m liaison_client.jsonfield FIELD[.FIELD...]", file=sys.stderr)
        return 2
    try:
        print(field_of(sys.stdin.read(), argv[0]))
    except FieldError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
