"""Retention: policies, legal holds, archiving closed incidents, purging archives.

    run(now) ─▶ every closed incident whose policy says it is due
                  held? ─▶ skipped (legal_hold)
                  write_archive ─▶ verified file ─▶ EventLog.archive (tombstone)
             ─▶ every archived incident whose archive is due to go
                  held? ─▶ skipped
                  audit record "retention.purge" ─▶ file removed ─▶ tombstone "purged"

* **Nothing removed that is not kept.** An incident leaves hot storage only
  after its archive was written, fsynced, read back and verified against the
  node key, and only at the head the archive ends on (compare and remove):
  an event appended meanwhile keeps it hot until the next run.
* **Idempotent.** A run that stops half way (a crash, a lost lease) is
  repeated by the next one: the file name is deterministic and the removal
  answers True for an incident removed already.
* **Every act is audited**: policy and hold changes, each archive, each purge
  (the purge record keeps what was removed: seq range, head hash, file and
  its sha256, the policy; the audit log is hash-chained and never trimmed),
  and each run.

The job is derived from the log, not from timers: each run looks at the
incidents as they are (server/services/retention_job.py runs it on the node
holding the ``retention`` lease).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocol.errors import ErrorCode, ProtocolError
from server.domain.model import Principal, Role
from server.domain.retention import Decision, Policy, decide, parse_policy, policy_of
from server.errors import LogNotFound
from server.services.admin import ADMIN_ORG
from server.services.anchors import Anchorer
from server.services.archive_file import ArchiveFailed, sha256_of, write_archive
from server.services.projections import Projections
from server.storage.audit import AuditEntry
from server.storage.base import EventLog, IncidentQuery, Tombstone
from server.storage.retention import RetentionStore

log = logging.getLogger(__name__)

Record = Callable[[AuditEntry], Awaitable[None]]
Clock = Callable[[], int]

#: The system actor of the scheduled job in the audit log.
JOB_ACTOR = "system:retention"
#: Tombstone fields only the deployment's administrators are shown.
ORG_HIDDEN = frozenset({"closed_ms", "archived_by"})
#: Longest reason kept with a legal hold.
MAX_REASON = 500


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class RunReport:
    """What a run did (or, dry, would do)."""

    dry_run: bool
    archived: list[dict[str, Any]] = field(default_factory=list)
    purged: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)

    def to_wire(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "archived": self.archived,
            "purged": self.purged,
            "skipped": self.skipped,
            "failed": self.failed,
        }


def require_admin(who: Principal) -> None:
    """Retention is the deployment's: its administrators (the ``admin`` organisation)
    set policies and holds and run the job, not an organisation's own admins."""
    if who.role is not Role.ADMIN or who.org_id != ADMIN_ORG.id or who.scope is not None:
        raise ProtocolError(ErrorCode.FORBIDDEN, "the deployment's administrators only")


_admin = require_admin


class Retention:
    def __init__(
        self,
        *,
        log: EventLog,
        store: RetentionStore,
        projections: Projections,
        anchorer: Anchorer,
        record: Record,
        archive_dir: Path,
        orgs: Callable[[], Iterable[str]],
        clock: Clock = now_ms,
    ) -> None:
        #: The directory's organisations: whose incident lists the job walks.
        self.orgs = orgs
        self.log, self.store, self.projections = log, store, projections
        self.anchorer, self.record = anchorer, record
        self.archive_dir, self.clock = archive_dir, clock
        #: One run at a time on this node (the lease makes it one per deployment).
        self._running = asyncio.Lock()

    async def _audit(
        self, actor: str, action: str, target: str, detail: dict[str, Any], address: str = ""
    ) -> None:
        await self.record(AuditEntry(actor, action, target, "ok", address, detail))

    # ------------------------------------------------------------ policies

    async def policies(self) -> list[Policy]:
        return [policy_of(raw) for raw in (await self.store.all("policy")).values()]

    async def put_policy(self, who: Principal, policy_id: str, body: Any, address: str) -> Policy:
        _admin(who)
        policy = parse_policy(policy_id, body)
        await self.store.put("policy", policy.id, policy.to_wire())
        await self._audit(who.user_id, "retention.policy.set", policy.id, policy.to_wire(), address)
        return policy

    async def delete_policy(self, who: Principal, policy_id: str, address: str) -> None:
        _admin(who)
        if not await self.store.delete("policy", policy_id):
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such policy")
        await self._audit(who.user_id, "retention.policy.delete", policy_id, {}, address)

    # --------------------------------------------------------------- holds

    async def holds(self) -> dict[str, dict[str, Any]]:
        return await self.store.all("hold")

    async def set_hold(
        self, who: Principal, incident: str, body: Any, address: str
    ) -> dict[str, Any]:
        _admin(who)
        reason = body.get("reason") if isinstance(body, dict) else None
        if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
            raise ProtocolError(
                ErrorCode.INVALID,
                f"a legal hold needs a reason (1-{MAX_REASON} characters)",
                {"field": "reason"},
            )
        tombstone = await self.log.tombstone(incident)
        if tombstone is None and await self.log.head(incident) is None:
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such incident")
        if tombstone is not None and tombstone.get("state") == "purged":
            raise ProtocolError(ErrorCode.CONFLICT, "the archive of this incident was purged")
        hold = {"incident": incident, "reason": reason, "by": who.user_id, "at_ms": self.clock()}
        await self.store.put("hold", incident, hold)
        await self._audit(who.user_id, "retention.hold.set", incident, {"reason": reason}, address)
        return hold

    async def clear_hold(self, who: Principal, incident: str, address: str) -> None:
        _admin(who)
        hold = await self.store.get("hold", incident)
        if hold is None or not await self.store.delete("hold", incident):
            raise ProtocolError(ErrorCode.NOT_FOUND, "no legal hold on this incident")
        detail = {"reason_set": hold.get("reason"), "set_by": hold.get("by")}
        await self._audit(who.user_id, "retention.hold.clear", incident, detail, address)

    # ---------------------------------------------------------------- runs

    async def run(
        self, actor: str = JOB_ACTOR, dry_run: bool = False, address: str = ""
    ) -> RunReport:
        """Archive what is due, then purge what is due; ``dry_run`` changes nothing."""
        async with self._running:
            report = RunReport(dry_run)
            now = self.clock()
            policies = await self.policies()
            if not policies:  # nothing to do: no walk at all (the default)
                return report
            holds = await self.holds()
            await self._archive_due(report, policies, holds, now, actor)
            await self._purge_due(report, policies, holds, now, actor)
            if not dry_run and (report.archived or report.purged or report.failed):
                detail = {
                    "archived": len(report.archived),
                    "purged": len(report.purged),
                    "skipped": len(report.skipped),
                    "failed": len(report.failed),
                }
                await self._audit(actor, "retention.run", "", detail, address)
            return report

    async def _closed(self) -> dict[str, dict[str, Any]]:
        """Closed incidents from the index, per organisation: no projection is loaded.

        ``updated`` is the latest any participant saw, which is the last event
        but for a RED one (those move nobody's, SPEC section 18).
        """
        found: dict[str, dict[str, Any]] = {}
        for org in self.orgs():
            after = None
            while True:
                query = IncidentQuery(org=org, status="closed", after=after, limit=500)
                page = await self.log.list_incidents(query)
                for summary in page.incidents:
                    known = found.setdefault(summary["id"], summary)
                    known["updated"] = max(known["updated"], summary["updated"])
                if page.next is None:
                    break
                after = page.next
        return found

    async def _archive_due(
        self,
        report: RunReport,
        policies: list[Policy],
        holds: dict[str, Any],
        now: int,
        actor: str,
    ) -> None:
        for incident, summary in sorted((await self._closed()).items()):
            decision = decide(policies, summary["category"], summary["orgs"])
            if decision is None or not decision.archive_due(True, summary["updated"], now):
                continue
            item = {"incident": incident, "seq": summary["seq"], "policy": decision.archive_policy}
            if incident in holds:
                report.skipped.append({**item, "reason": "legal_hold", "action": "archive"})
                continue
            if report.dry_run:
                report.archived.append(item)
                continue
            try:
                tombstone = await self._archive(incident, policies, now, actor)
            except ArchiveFailed as exc:
                log.error("retention: archive of %s failed: %s", incident, exc)
                report.failed.append({**item, "error": str(exc)})
                continue
            if tombstone is None:
                report.skipped.append({**item, "reason": "moved", "action": "archive"})
            else:
                item |= {"seq": tombstone["seq"], "policy": tombstone["policy"]}
                report.archived.append({**item, "file": tombstone["file"]})

    async def _archive(
        self, incident: str, policies: list[Policy], now: int, actor: str
    ) -> Tombstone | None:
        """Archive at the head now, if the incident is still closed and due there.

        The index said so when it was listed; the archive's own fold of the
        header events says what held at the head it ends on, and the removal
        happens only at that head (compare and remove), so what is archived
        is an incident that was closed and due when it left.
        """
        head = await self.log.head(incident)
        if head is None:
            return None
        written = await write_archive(
            self.log, self.anchorer.signer, self.archive_dir, incident, head
        )
        at_head = written.summary
        decision = decide(policies, at_head["category"], at_head["orgs"])
        if (
            at_head["status"] != "closed"
            or decision is None
            or not decision.archive_due(True, written.last_ts, now)
        ):
            await asyncio.to_thread((self.archive_dir / written.name).unlink, missing_ok=True)
            return None
        await self.anchorer.anchor(written.signed, "archive")
        orgs, category, closed_ms = at_head["orgs"], at_head["category"], written.last_ts
        tombstone: Tombstone = {
            "incident": incident,
            "epoch": head.epoch,
            "orgs": sorted(orgs),
            "category": category,
            "first_seq": 1,
            "seq": head.seq,
            "last_hash": written.last_hash,
            "head": written.signed.to_wire(),
            "file": written.name,
            "sha256": written.sha256,
            "bytes": written.size,
            "closed_ms": closed_ms,
            "archived_ms": self.clock(),
            "archived_by": actor,
            "policy": decision.archive_policy,
            "state": "archived",
        }
        if not await self.log.archive(incident, head.seq, tombstone):
            await asyncio.to_thread((self.archive_dir / written.name).unlink, missing_ok=True)
            return None  # appended to meanwhile: archived by a later run
        self.projections.forget(incident)
        stored = await self.log.tombstone(incident) or tombstone
        detail = {k: stored[k] for k in ("seq", "last_hash", "file", "sha256", "bytes", "policy")}
        await self._audit(actor, "retention.archive", incident, detail)
        log.info("retention: archived %s (%d events) to %s", incident, head.seq, written.name)
        return stored

    async def _purge_due(
        self,
        report: RunReport,
        policies: list[Policy],
        holds: dict[str, Any],
        now: int,
        actor: str,
    ) -> None:
        after = ""
        while page := await self.log.tombstones(after, 500):
            after = str(page[-1]["incident"])
            for tombstone in page:
                if tombstone.get("state") != "archived":
                    continue
                decision = decide(policies, tombstone.get("category", ""), tombstone["orgs"])
                if decision is None or not decision.purge_due(tombstone["archived_ms"], now):
                    continue
                item = {"incident": tombstone["incident"], "policy": decision.purge_policy}
                if tombstone["incident"] in holds:
                    report.skipped.append({**item, "reason": "legal_hold", "action": "purge"})
                elif report.dry_run:
                    report.purged.append({**item, "file": tombstone["file"]})
                else:
                    report.purged.append(await self._purge(tombstone, decision, actor))

    async def _purge(self, tombstone: Tombstone, decision: Decision, actor: str) -> dict[str, Any]:
        """Remove the archive file; the audit record of what went comes first."""
        incident = str(tombstone["incident"])
        path = self.archive_dir / str(tombstone["file"])
        exists = await asyncio.to_thread(path.exists)
        found_sha = await asyncio.to_thread(sha256_of, path) if exists else None
        purge = {
            "incident": incident,
            "epoch": tombstone["epoch"],
            "first_seq": tombstone.get("first_seq", 1),
            "seq": tombstone["seq"],
            "last_hash": tombstone["last_hash"],
            "file": tombstone["file"],
            "sha256": tombstone["sha256"],
            "sha256_removed": found_sha,
            "file_missing": not exists,
            "policy": decision.purge_policy,
            "purged_ms": self.clock(),
            "purged_by": actor,
        }
        await self._audit(actor, "retention.purge", incident, purge)
        if exists:
            await asyncio.to_thread(path.unlink, missing_ok=True)
        try:
            await self.log.update_tombstone(
                incident, {**tombstone, "state": "purged", "purge": purge}
            )
        except LogNotFound:  # cannot happen: the tombstone was just listed
            log.error("retention: the tombstone of %s went away during its purge", incident)
        log.info("retention: purged the archive of %s (%s)", incident, tombstone["file"])
        return purge

    # ------------------------------------------------------------ archives

    async def listed(
        self, who: Principal, after: str, limit: int, state: str | None
    ) -> list[Tombstone]:
        """Tombstones the caller may see: all for an admin, its organisation's for a supervisor."""
        if who.role not in (Role.ADMIN, Role.SUPERVISOR) or who.scope is not None:
            raise ProtocolError(ErrorCode.FORBIDDEN, "administrators and supervisors only")
        everything = who.org_id == ADMIN_ORG.id
        out: list[Tombstone] = []
        while len(out) < limit:
            page = await self.log.tombstones(after, limit)
            if not page:
                break
            after = str(page[-1]["incident"])
            for t in page:
                if state is not None and t.get("state") != state:
                    continue
                if everything:
                    out.append(t)
                elif who.org_id in t.get("orgs", ()):
                    # The last event's time may be a restricted one's (SPEC 18:
                    # it must not move what another organisation sees).
                    out.append({k: v for k, v in t.items() if k not in ORG_HIDDEN})
        return out[:limit]

    def archive_path(self, tombstone: Tombstone) -> Path:
        return self.archive_dir / str(tombstone["file"])
