"""The answer to a read of an incident that is not in hot storage (SPEC section 25).

Every read path first asks the index whether the reader's organisation takes
part (``EventLog.participates``). When it does not, this tells apart an
incident that was archived under a retention policy, for an organisation
that took part in it (``archived``, saying what to do), from everything
else (``not_found``, as before). A non-participant gets ``not_found`` for an
archived incident too: the tombstone tells nobody else that it existed.
Both answers take one more lookup, so they take the same time.
"""

from __future__ import annotations

from typing import Any

from protocol.errors import ErrorCode, ProtocolError
from server.storage.base import EventLog, Tombstone


def archived_detail(incident: str, tombstone: Tombstone) -> dict[str, Any]:
    """What a participant is told: when, and where the archive can be exported."""
    return {
        "incident": incident,
        "archived_ms": tombstone.get("archived_ms"),
        "purged": tombstone.get("state") == "purged",
        "export": f"/api/v1/incidents/{incident}/export?format=jsonl",
    }


async def archived_for(log: EventLog, incident: str, org: str) -> Tombstone | None:
    """The incident's tombstone if it was archived and ``org`` took part in it."""
    tombstone = await log.tombstone(incident)
    if tombstone is None or org not in tombstone.get("orgs", ()):
        return None
    return tombstone


async def refusal(log: EventLog, incident: str, org: str, sees: bool = True) -> ProtocolError:
    """``archived`` for a participant of an archived incident, else ``not_found``."""
    tombstone = await archived_for(log, incident, org) if sees else None
    if tombstone is None:
        return ProtocolError(ErrorCode.NOT_FOUND, "no such incident")
    purged = tombstone.get("state") == "purged"
    message = (
        "this incident was archived and its archive purged under a retention policy"
        if purged
        else "this incident was archived under a retention policy: export it (jsonl)"
        " as a supervisor or admin"
    )
    return ProtocolError(ErrorCode.ARCHIVED, message, archived_detail(incident, tombstone))
