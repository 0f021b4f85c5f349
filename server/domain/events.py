"""Events: the draft a command produces and the stored, sequenced form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class EventDraft:
    """An event decided by the domain, not yet sequenced or stored."""

    incident: str
    type: str
    actor_user: str
    actor_org: str
    actor_name: str
    #: The client's own id for the action; the idempotency key with actor_user.
    client_id: str
    #: Organisations that may see it; None means every participant.
    visibility: tuple[str, ...] | None
    body: dict[str, Any]
    #: Only for ``incident.created``: the epoch of the new log.
    epoch: str | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as its incident's log holds it: sequenced, timestamped, chained."""

    incident: str
    seq: int
    epoch: str
    type: str
    ts_ms: int
    actor_user: str
    actor_org: str
    actor_name: str
    client_id: str
    visibility: tuple[str, ...] | None
    body: dict[str, Any]
    #: sha256 of the canonical content (see chain.py).
    digest: str
    #: sha256 chained over the previous event's hash and this digest.
    hash: str

    def visible_to(self, org_id: str) -> bool:
        return self.visibility is None or org_id in self.visibility


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append returns: the stored event and whether it was a retry."""

    event: StoredEvent
    duplicate: bool
