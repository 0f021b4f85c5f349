"""The retention job: ``Retention.run`` every ``poll_s`` on the node holding its lease.

Derived from the log, not from timers (DESIGN.md "Time, escalations and
background work"): each run looks at every incident as it is, so a restart
forgets nothing and a missed run is made up by the next. In Redis mode one
node holds the ``retention`` lease (storage/leases.py) and runs it; another
takes over once it lapses. What the lease guards is idempotent (archives
compare and remove; a purge marks its tombstone), so two nodes briefly both
running it do no harm. The lease is renewed before each run and lasts
``lease_s``, which must outlast a run (an archive of a very long incident
takes seconds; deploy/README.md gives figures).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from server.errors import StorageUnavailable
from server.services.retention import Retention
from server.storage.leases import Leases

log = logging.getLogger(__name__)

LEASE = "retention"
#: Longest pause between two tries while storage is unavailable.
OUTAGE_CAP_S = 300.0


class RetentionJob:
    def __init__(
        self, retention: Retention, leases: Leases, node: str, poll_s: float, lease_s: float
    ) -> None:
        self.retention, self._leases, self.node = retention, leases, node
        self.poll_s, self.lease_s = poll_s, lease_s
        self._task: asyncio.Task[None] | None = None
        self.holding = False
        #: Completed runs on this node (tests and logs).
        self.runs = 0

    async def start(self) -> None:
        if self.poll_s > 0:
            self._task = asyncio.create_task(self._supervise(), name="retention")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.holding:
            try:
                await self._leases.release(LEASE, self.node)
            except StorageUnavailable as exc:
                log.warning("retention: could not release the lease (it will lapse): %s", exc)
            self.holding = False

    async def _supervise(self) -> None:
        pause = self.poll_s
        while True:
            try:
                await self.round()
                pause = self.poll_s
            except asyncio.CancelledError:
                raise
            except StorageUnavailable as exc:
                pause = min(max(pause, 1.0) * 2, OUTAGE_CAP_S)
                log.warning("retention: storage unavailable (%s); again in %.0f s", exc, pause)
                self.holding = False
            except Exception:
                pause = min(max(pause, 1.0) * 2, OUTAGE_CAP_S)
                log.exception("retention: a run failed; again in %.0f s", pause)
            await asyncio.sleep(pause)

    async def round(self) -> None:
        """Claim or renew the lease; if held, run the retention rules once."""
        if not await self._leases.claim(LEASE, self.node, int(self.lease_s * 1000)):
            self.holding = False
            return
        self.holding = True
        report = await self.retention.run()
        self.runs += 1
        if report.archived or report.purged or report.failed:
            log.info(
                "retention: archived %d, purged %d, skipped %d, failed %d",
                len(report.archived),
                len(report.purged),
                len(report.skipped),
                len(report.failed),
            )
