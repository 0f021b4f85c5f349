"""The capacity board: publish a change, read the board, its history and its changes.

Every read goes through ``domain.capacity.sees_capacity`` (the one rule).
Live readers long-poll ``changes``: a change on this node wakes them at
once; another node's is seen within ``POLL_S`` by comparing the log's head
(the log, not a pub/sub message, is the truth, as for the feed).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from protocol.errors import ErrorCode, ProtocolError
from server.domain.capacity import may_publish, on_board, sees_capacity
from server.domain.model import Org, Principal
from server.storage.capacity import CapacityDraft, CapacityEntry, CapacityLog, CurrentItem
from server.storage.directory import Directory

POLL_S = 0.5
#: Longest a ``changes`` request waits (below the proxies' idle timeouts).
MAX_WAIT_S = 30
PAGE = 200


def _items(current: dict[str, CurrentItem]) -> dict[str, Any]:
    return {k: {"value": v.value, "seq": v.seq, "ts": v.ts_ms} for k, v in current.items()}


class CapacityService:
    def __init__(self, log: CapacityLog, directory: Directory) -> None:
        self.log, self.directory = log, directory
        self._changed = asyncio.Event()

    def _org(self, org_id: str) -> Org:
        org = self.directory.org(org_id)
        if org is None or not on_board(org):
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such organisation")
        return org

    def _visible_org(self, who: Principal, org_id: str) -> Org:
        org = self._org(org_id)
        if not sees_capacity(who, org):
            raise ProtocolError(ErrorCode.NOT_FOUND, "no such organisation")
        return org

    async def publish(
        self, who: Principal, org_id: str, client_id: str, items: dict[str, Any]
    ) -> tuple[CapacityEntry, bool]:
        org = self._visible_org(who, org_id)
        if not may_publish(who, org):
            raise ProtocolError(
                ErrorCode.FORBIDDEN, "its coordinators, an admin or its bot publish its capacity"
            )
        draft = CapacityDraft(
            org.id, who.user_id, who.org_id, who.name, client_id, items, int(time.time() * 1000)
        )
        entry, duplicate = await self.log.append(draft)
        self._changed.set()
        self._changed = asyncio.Event()
        return entry, duplicate

    async def board(self, who: Principal) -> dict[str, Any]:
        pos = await self.log.head()
        current = await self.log.current()
        rows = []
        for org in sorted(self.directory.orgs.values(), key=lambda o: o.name):
            if not sees_capacity(who, org):
                continue
            items = current.get(org.id, {})
            rows.append(self._row(org, items))
        return {"orgs": rows, "pos": pos}

    @staticmethod
    def _row(org: Org, items: dict[str, CurrentItem]) -> dict[str, Any]:
        return {
            "org": org.id,
            "name": org.name,
            "kind": org.kind,
            "seq": max((v.seq for v in items.values()), default=0),
            "updated": max((v.ts_ms for v in items.values()), default=None),
            "items": _items(items),
        }

    async def history(
        self, who: Principal, org_id: str, after_seq: int, limit: int
    ) -> dict[str, Any]:
        org = self._visible_org(who, org_id)
        entries = await self.log.history(org.id, after_seq, limit)
        current = (await self.log.current()).get(org.id, {})
        return {
            "current": self._row(org, current),
            "history": [e.to_wire() for e in entries],
            "next_after_seq": entries[-1].seq if len(entries) == limit else None,
        }

    async def changes(self, who: Principal, after: int, wait_s: int) -> dict[str, Any]:
        """Entries after ``after`` the reader may see; waits up to ``wait_s`` for one.

        ``pos`` is where to continue from: past entries the reader may not
        see too, so a hidden change is skipped, never re-read.
        """
        deadline = time.monotonic() + min(wait_s, MAX_WAIT_S)
        head = await self.log.head()
        if after > head:
            raise ProtocolError(ErrorCode.OUT_OF_RANGE, "after is beyond the head", {"head": head})
        while True:
            changed = self._changed
            entries = await self.log.since(after, PAGE)
            shown = [e.to_wire() for e in entries if self._sees(who, e.org)]
            if entries:
                after = entries[-1].pos
            if shown or (entries and len(entries) == PAGE):
                return {"entries": shown, "pos": after}
            left = deadline - time.monotonic()
            if left <= 0:
                return {"entries": [], "pos": max(after, 0)}
            try:
                await asyncio.wait_for(changed.wait(), min(left, POLL_S))
            except TimeoutError:
                pass

    async def seed_demo(self, who: Principal) -> None:
        """The demo shelter's capacity (``liaison serve --demo``): something to look at."""
        items = {"beds": 6, "staff_on_duty": 2, "opening_hours": "18:00-08:00"}
        await self.publish(
            who, "harbour-shelter", "demo-capacity-1", items | {"languages": ["en", "ar"]}
        )

    def _sees(self, who: Principal, org_id: str) -> bool:
        org = self.directory.org(org_id)
        return org is not None and sees_capacity(who, org)
