"""Events: the draft a command produces and the stored, sequenced form.

The event schema is defined here once. ``StoredEvent``'s fields, in their
declared order, are the storage order: the SQLite columns (sqlite.py), the
msgpack array of the Redis log and pub/sub (codec.py). Stored data is read
back positionally in that order, so fields are only ever appended (``salt``
was: rows and entries stored before it read back with ``salt=None``). The
hash chain commits to ``salt`` and ``CHAINED_FIELDS`` (chain.py); the wire
form is built from the same object in services/envelope.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
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

    def content(self) -> dict[str, Any]:
        """The fields a stored event takes over from its draft, by name."""
        return dict(zip(DRAFT_CONTENT, _draft_content(self), strict=True))


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as its incident's log holds it: sequenced, timestamped, chained.

    Field order is the storage order (see the module docstring): append only.
    """

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
    #: sha256 over ``salt`` and the canonical content (see chain.py).
    digest: str
    #: sha256 chained over the previous event's hash and this digest.
    hash: str
    #: 64 hex digits of per-event randomness the digest commits with, so that a
    #: placeholder's digest cannot be brute-forced from guessable content.
    #: Only readers who see the event receive it. None: an event stored before
    #: salts existed (chain rule 1, digest over the content alone).
    salt: str | None = None

    def visible_to(self, org_id: str) -> bool:
        return self.visibility is None or org_id in self.visibility

    def to_fields(self) -> tuple[Any, ...]:
        """The values in storage order (``visibility`` a tuple: msgpack and
        JSON encode it as the array they decode to a list)."""
        return _stored_fields(self)

    @classmethod
    def from_fields(cls, values: Sequence[Any]) -> StoredEvent:
        """The inverse of ``to_fields``, from decoded storage (lists for tuples).

        A shorter sequence is an event stored before the trailing fields
        existed (no ``salt``): they take their defaults.
        """
        visibility = values[_VISIBILITY]
        if visibility is not None and not isinstance(visibility, tuple):
            values = [*values]
            values[_VISIBILITY] = tuple(visibility)
        return cls(*values)

    def chained(self) -> dict[str, Any]:
        """The fields the digest commits to, by name (see chain.canonical_content)."""
        return dict(zip(CHAINED_FIELDS, _chained_fields(self), strict=True))


#: Every field of a stored event, in storage order.
STORED_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(StoredEvent))

#: What the digest's canonical JSON holds: everything but the derived links
#: themselves, the salt (prefixed as bytes, not a JSON field: chain.py) and
#: ``actor_name``, a display name kept for readers (the actor is ``actor_user``).
CHAINED_FIELDS: tuple[str, ...] = tuple(
    name for name in STORED_FIELDS if name not in ("actor_name", "digest", "hash", "salt")
)

#: The fields of a draft that its stored event carries unchanged.
DRAFT_CONTENT: tuple[str, ...] = tuple(
    f.name for f in fields(EventDraft) if f.name in STORED_FIELDS and f.name != "epoch"
)

_VISIBILITY = STORED_FIELDS.index("visibility")
_stored_fields = attrgetter(*STORED_FIELDS)
_chained_fields = attrgetter(*CHAINED_FIELDS)
_draft_content = attrgetter(*DRAFT_CONTENT)


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append returns: the stored event and whether it was a retry."""

    event: StoredEvent
    duplicate: bool
