"""Audit records of restricted content read live (CJIS 5.4: reads of restricted data).

The REST timeline records each page that hands a reader restricted content.
Live delivery cannot write a record per event and recipient: at thousands of
deliveries a second that would be a second log as big as the first, written
on the fan-out path. So deliveries are counted per (user, incident) in
memory and written as one record per pair every ``FLUSH_S`` seconds, and at
shutdown: who read restricted events of which incident, how many, the
first of their seqs, when (the record's time bounds the window).

What counts as restricted: an event addressed to named organisations
(``visibility``), or labelled ``AMBER+STRICT`` or ``RED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from server.storage.audit import AuditEntry

log = logging.getLogger(__name__)

#: How often counted reads are written (the window an audit record covers).
FLUSH_S = 5.0
#: Seqs kept per record; ``count`` says how many there were in all.
MAX_SEQS = 100
_STRICT = frozenset({"AMBER+STRICT", "RED"})

Recorder = Callable[[AuditEntry], Awaitable[None]]


def is_restricted(visibility: tuple[str, ...] | None, body: dict[str, Any]) -> bool:
    return visibility is not None or body.get("tlp") in _STRICT


@dataclass(slots=True)
class _Reads:
    count: int = 0
    seqs: list[int] = field(default_factory=list)


class RestrictedReadAudit:
    """Counts live restricted deliveries; writes them as audit records in batches."""

    def __init__(self, record: Recorder, flush_s: float = FLUSH_S) -> None:
        self._record = record
        self._flush_s = flush_s
        self._pending: dict[tuple[str, str], _Reads] = {}
        self._task: asyncio.Task[None] | None = None

    def note(self, user: str, incident: str, seq: int) -> None:
        """One restricted event was handed to ``user`` (sync: the fan-out path)."""
        if self._task is None:
            self.start()  # on the first restricted delivery, in the server's loop
        reads = self._pending.get((user, incident))
        if reads is None:
            reads = self._pending[(user, incident)] = _Reads()
        reads.count += 1
        if len(reads.seqs) < MAX_SEQS:
            reads.seqs.append(seq)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="restricted-read-audit")

    async def close(self) -> None:
        """Stop the flushing and write what is left (before storage closes)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.flush()
        except Exception:  # shutdown goes on; say exactly what was not recorded
            lost = sum(r.count for r in self._pending.values())
            log.exception("restricted-read audit: %d reads not recorded at shutdown", lost)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            try:
                await self.flush()
            except Exception:  # logged; the counts were put back for the next round
                log.exception("writing restricted-read audit records failed")

    async def flush(self) -> None:
        """Write what was counted; on failure the rest is kept for the next flush."""
        pending, self._pending = self._pending, {}
        items = list(pending.items())
        for i, ((user, incident), reads) in enumerate(items):
            entry = AuditEntry(
                user,
                "incident.read_restricted",
                incident,
                "ok",
                "",
                {"path": "live", "count": reads.count, "seqs": reads.seqs},
            )
            try:
                await self._record(entry)
            except BaseException:
                for key, left in items[i:]:
                    self._merge_back(key, left)
                raise

    def _merge_back(self, key: tuple[str, str], reads: _Reads) -> None:
        now = self._pending.get(key)
        if now is None:
            self._pending[key] = reads
            return
        now.count += reads.count
        now.seqs = (reads.seqs + now.seqs)[:MAX_SEQS]
