"""Log output: human lines (the default) or JSON lines, and the events worth a line.

``LIAISON_LOG_FORMAT=json`` writes one JSON object per line on stderr::

    {"ts": "2026-12-02T01:30:00.123Z", "level": "INFO", "logger": "server.audit",
     "event": "auth.login", "msg": "...", "actor": "u_dispatch", "outcome": "ok", ...}

``event`` is a stable name a collector can filter on (the table in
deploy/README.md, "Logs"); records that name none are ``"log"``. The extra
fields are what ``event()`` was given, nothing else. Never in a line: message
text, tokens, session ids, search terms. Fields are chosen not to carry them,
and every string (message, fields, traceback) also goes through the redaction
of http_log.py, which replaces session ids, tokens and query strings.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from server.storage.audit import AuditEntry, AuditLog, AuditRecord
from server.transport.http_log import EVENT_ATTR, FIELDS_ATTR, redact, redact_log_output

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

Field = str | int | float | bool | None


def event(
    logger: logging.Logger, level: int, name: str, message: str, *args: Any, **fields: Field
) -> None:
    """Log ``message % args`` as the event ``name`` with ``fields`` (JSON output only)."""
    if logger.isEnabledFor(level):
        logger.log(level, message, *args, extra={EVENT_ATTR: name, FIELDS_ATTR: fields})


class JsonLines(logging.Formatter):
    """One JSON object per record; see the module docstring."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "event": getattr(record, EVENT_ATTR, "log"),
            "msg": redact(record.getMessage()),
        }
        for key, value in getattr(record, FIELDS_ATTR, {}).items():
            line.setdefault(key, redact(value) if isinstance(value, str) else value)
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(line).decode()


def _iso(created: float) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{whole}.{int(created * 1000) % 1000:03d}Z"


def configure(level: str, fmt: str) -> None:
    """Root logging for ``liaison serve``: text or JSON lines on stderr, redacted."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    redact_log_output()


# ------------------------------------------------------------------- audit

audit_log = logging.getLogger("server.audit")


class LoggedAudit:
    """An AuditLog that also logs each record it stored, as the event of its action.

    Logins (``auth.login``) and admin actions (``user.disable``,
    ``agreement.create``, ``apikey.create``, ...) thereby each get one line.
    The line names who, what, how it ended and from where; not the detail
    (it may name a session), nor the target of ``auth.*`` records (a
    session's id).
    """

    def __init__(self, inner: AuditLog) -> None:
        self.inner = inner

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def read(self, after_seq: int, limit: int) -> list[AuditRecord]:
        return await self.inner.read(after_seq, limit)

    async def append(self, entry: AuditEntry, ts_ms: int) -> AuditRecord:
        record = await self.inner.append(entry, ts_ms)
        target = "" if entry.action.startswith("auth.") else entry.target
        event(
            audit_log,
            logging.INFO if entry.outcome == "ok" else logging.WARNING,
            entry.action,
            "%s by %s: %s%s",
            entry.action,
            entry.actor or "(unknown)",
            entry.outcome,
            f" from {entry.address}" if entry.address else "",
            actor=entry.actor,
            target=target,
            outcome=entry.outcome,
            address=entry.address,
            audit_seq=record.seq,
        )
        return record
