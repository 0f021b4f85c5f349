"""The line formats of an export: JSONL (verifiable) and CSV (for spreadsheets).

Both are produced a page at a time from ``Exporter.pages`` and yielded as
bytes chunks, so a response or a file gets them as they come.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import orjson

from server.services.export import Exporter, Scope, describe, header_line, trailer_line

CSV_COLUMNS = (
    "incident",
    "seq",
    "time_utc",
    "type",
    "actor_org",
    "actor_user",
    "actor_name",
    "visibility",
    "tlp",
    "text",
    "redacted",
    "body",
    "digest",
    "hash",
)

#: A spreadsheet runs a cell that starts with one of these as a formula
#: (OWASP "CSV injection"); tab and carriage return hide one.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    """``value`` as CSV cell text that no spreadsheet evaluates: a leading ``'`` if needed."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _line(value: Any) -> bytes:
    return orjson.dumps(value) + b"\n"


async def jsonl(exporter: Exporter, scopes: AsyncIterator[Scope]) -> AsyncIterator[bytes]:
    """Per incident: a header line, one envelope per line, a trailer with the signed head."""
    async for scope in scopes:
        yield _line(header_line(scope, "jsonl"))
        async for page in exporter.pages(scope):
            yield b"".join(_line(env) for env in page)
        await exporter.finish(scope)
        yield _line(trailer_line(scope))


def _iso(ms: Any) -> str:
    if not isinstance(ms, int):
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def csv_row(env: dict[str, Any]) -> list[str]:
    """One event as CSV cells; a placeholder keeps only its position and links."""
    actor = env.get("actor") or {}
    body = env.get("body")
    visibility = env.get("visibility")
    cells = [
        env["incident"],
        env["seq"],
        _iso(env.get("ts")),
        env["type"],
        actor.get("org"),
        actor.get("user"),
        actor.get("name"),
        ",".join(visibility) if visibility else "",
        (body or {}).get("tlp", ""),
        describe(env),
        ",".join(env.get("redacted") or ()),
        orjson.dumps(body).decode() if body is not None else "",
        env["digest"],
        env["hash"],
    ]
    return [safe_cell(cell) for cell in cells]


async def csv_chunks(exporter: Exporter, scopes: AsyncIterator[Scope]) -> AsyncIterator[bytes]:
    """A header row, then one row per event of every incident, in seq order."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue().encode()
    async for scope in scopes:
        async for page in exporter.pages(scope):
            buffer.seek(0)
            buffer.truncate()
            writer.writerows(csv_row(env) for env in page)
            yield buffer.getvalue().encode()
        await exporter.finish(scope)
