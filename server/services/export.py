"""Exports of an incident's log as one reader may see it (SPEC section 23).

An export is a read path like the timeline: every envelope goes through
``server/domain/audience.py`` (via ``Sight``) and ``services.envelope.shaped``,
so restricted events are placeholders and protected fields redacted exactly
as live delivery would hand them to this reader. The log is read in pages
(``PAGE`` events) up to the head taken when the export starts; nothing holds
the whole log. The formats (server/services/export_formats.py,
export_report.py) consume the pages as they come.

    Exporter.open(who, incident) ─▶ Scope (state, head)
    Exporter.pages(scope)        ─▶ [shaped envelope, ...] per page
    Exporter.finish(scope)       ─▶ SignedHead (also appended to the anchor log)
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from protocol.errors import ErrorCode, ProtocolError
from server.backends import Backends
from server.domain.audience import Reader, event_meta
from server.domain.incident import IncidentState
from server.domain.model import Principal, Role
from server.domain.sharing import AgreementsView
from server.services.anchors import Anchorer, SignedHead
from server.services.archived import refusal
from server.services.envelope import shaped
from server.services.projections import Projections
from server.settings import Settings
from server.storage.audit import AuditEntry
from server.storage.base import EventLog, IncidentQuery

#: Events read from the log at a time: a page is what an export holds.
PAGE = 500
#: Incidents one date-range export may span (each is exported whole).
MAX_RANGE_INCIDENTS = 1000

FORMATS = ("jsonl", "csv", "html", "pdf")
#: Formats a date range (many incidents) can be exported in.
RANGE_FORMATS = ("jsonl", "csv")


@dataclass(slots=True)
class Scope:
    """One incident being exported to one reader."""

    who: Principal
    state: IncidentState
    epoch: str
    head_seq: int
    #: Filled while the pages go out.
    count: int = 0
    restricted_seen: int = 0
    placeholders: int = 0
    last_hash: str = ""
    signed: SignedHead | None = field(default=None)

    @property
    def incident(self) -> str:
        return self.state.id

    @property
    def reader(self) -> Reader:
        return Reader(org=self.who.org_id, user=self.who.user_id)


def header_line(scope: Scope, fmt: str) -> dict[str, Any]:
    """The JSONL header of one incident's section."""
    return {
        "liaison_export": 1,
        "kind": "header",
        "incident": scope.incident,
        "epoch": scope.epoch,
        "reader": {"user": scope.who.user_id, "org": scope.who.org_id},
        "format": fmt,
        "exported_ms": int(time.time() * 1000),
        "head_seq": scope.head_seq,
    }


def trailer_line(scope: Scope) -> dict[str, Any]:
    """The JSONL trailer: how many events, and the signed head they end on."""
    assert scope.signed is not None
    return {
        "liaison_export": 1,
        "kind": "trailer",
        "incident": scope.incident,
        "epoch": scope.epoch,
        "events": scope.count,
        "head": scope.signed.statement,
        "signature": scope.signed.signature,
    }


Record = Callable[[AuditEntry], Awaitable[None]]


class Exporter:
    def __init__(
        self,
        log: EventLog,
        projections: Projections,
        rules: AgreementsView,
        anchorer: Anchorer,
        record: Record,
    ) -> None:
        self.log, self.projections, self.rules = log, projections, rules
        self.anchorer = anchorer
        #: ``Accounts.record``: where the audit entry of each export goes.
        self.record = record

    async def open(self, who: Principal, incident: str) -> Scope:
        """The incident as of its head now; the same refusal for absent and not shared."""
        if who.role is Role.AUDITOR:  # separation of duties: the audit log only
            raise ProtocolError(ErrorCode.FORBIDDEN, "auditors read the audit log, not incidents")
        if not await self.log.participates(incident, who.org_id) or not who.sees(incident):
            raise await refusal(self.log, incident, who.org_id, who.sees(incident))
        head = await self.log.head(incident)
        state = await self.projections.at_least(incident, head.seq) if head else None
        if head is None or state is None or not state.participates(who.org_id):
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such incident")
        return Scope(who, state, head.epoch, head.seq)

    async def in_range(self, who: Principal, start_ms: int, end_ms: int) -> list[str]:
        """Incidents the reader takes part in, created in [start_ms, end_ms), oldest first."""
        found: list[tuple[int, str]] = []
        after = None
        while True:
            page = await self.log.list_incidents(
                IncidentQuery(org=who.org_id, updated_after=start_ms - 1, after=after, limit=200)
            )
            for summary in page.incidents:
                if start_ms <= summary["created"] < end_ms and who.sees(summary["id"]):
                    found.append((summary["created"], summary["id"]))
            if page.next is None or len(found) > MAX_RANGE_INCIDENTS:
                break
            after = page.next
        if len(found) > MAX_RANGE_INCIDENTS:
            raise ProtocolError(
                ErrorCode.INVALID,
                f"more than {MAX_RANGE_INCIDENTS} incidents in the range: narrow it",
                {"field": "from"},
            )
        return [incident for _, incident in sorted(found)]

    async def pages(self, scope: Scope) -> AsyncIterator[list[dict[str, Any]]]:
        """The reader's envelopes, seq 1 to the head, a page at a time."""
        sight = scope.state.sight(scope.reader, self.rules, int(time.time() * 1000))
        after = 0
        while after < scope.head_seq:
            events = await self.log.read(scope.incident, after, min(PAGE, scope.head_seq - after))
            if not events:
                break
            page = []
            for ev in events:
                aud = sight.of(event_meta(ev))
                if not aud.visible:
                    scope.placeholders += 1
                elif ev.visibility is not None or ev.body.get("tlp") in ("AMBER+STRICT", "RED"):
                    scope.restricted_seen += 1
                page.append(shaped(ev, aud))
            after = events[-1].seq
            scope.count += len(events)
            scope.last_hash = events[-1].hash
            yield page

    async def finish(self, scope: Scope) -> SignedHead:
        """Sign the head the export ended on, and anchor it."""
        signed = self.anchorer.signer.signed_head(
            scope.incident, scope.epoch, scope.count, scope.last_hash
        )
        await self.anchorer.anchor(signed, "export")
        scope.signed = signed
        return signed

    async def audit(
        self, who: Principal, address: str, target: str, detail: dict[str, Any], outcome: str
    ) -> None:
        entry = AuditEntry(who.user_id, "incident.export", target, outcome, address, detail)
        await self.record(entry)


def build_exports(
    settings: Settings,
    backends: Backends,
    projections: Projections,
    rules: AgreementsView,
    record: Record,
) -> tuple[Anchorer, Exporter]:
    """The anchorer and the exporter of one node (wired by server/app.py)."""
    assert backends.anchors is not None
    assert backends.node_key is not None
    anchorer = Anchorer(
        backends.log, backends.anchors, backends.node_key, settings.anchor_interval_s
    )
    return anchorer, Exporter(backends.log, projections, rules, anchorer, record)


def describe(env: dict[str, Any]) -> str:
    """One line of human text for an envelope, for the CSV and the report's timeline."""
    kind, body = env["type"], env.get("body") or {}
    if kind == "restricted":
        return "(restricted entry)"
    text: Any
    match kind:
        case "message.posted" | "message.edited":
            text = body.get("text")
        case "incident.created":
            text = f"{body.get('title')} ({body.get('category')}, {body.get('priority')})"
        case "incident.status_changed":
            text = f"{body.get('previous')} → {body.get('status')}" + (
                f": {body['note']}" if body.get("note") else ""
            )
        case "task.created":
            text = body.get("title")
        case "responder.status":
            text = body.get("status")
        case "review.submit":
            text = f"review by {body.get('org')}: rating {body.get('rating')}"
        case _:
            text = body.get("note") or body.get("title") or ""
    return str(text if text is not None else "")
