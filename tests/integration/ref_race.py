"""Creating a live incident and a drill at once with one reference (SPEC 18.3, 28)."""

from __future__ import annotations

import asyncio
import time

from liaison_client import CommandFailed, LiaisonClient

POLICE, SHELTER = "metro-police", "harbour-shelter"


async def one_of_each_pair_is_stored(live_desk: LiaisonClient, drill_desk: LiaisonClient) -> None:
    """Pairs of a live incident and a drill created at once with one new reference:
    of each pair exactly one is stored, the other refused with ``conflict``."""
    orgs = [POLICE, SHELTER]
    for attempt in range(12):
        ref = f"CAD-RACE-{time.time_ns()}-{attempt}"
        outcomes = await asyncio.gather(
            live_desk.open_incident("Person on the bridge", "welfare", external_ref=ref, orgs=orgs),
            drill_desk.open_incident(
                "Drill: bridge", "welfare", mode="exercise", external_ref=ref, orgs=orgs
            ),
            return_exceptions=True,
        )
        created = [o for o in outcomes if isinstance(o, str)]
        refused = [o for o in outcomes if isinstance(o, CommandFailed)]
        assert len(created) == 1, f"attempt {attempt}: {outcomes}"
        assert [(r.code, r.error["detail"]["reason"]) for r in refused] == [("conflict", "mode")]
        listed = [
            s["id"]
            for mode in ("actual", "exercise")
            for s in await live_desk.incidents(f"ref={ref}&mode={mode}&limit=10")
        ]
        assert listed == created
