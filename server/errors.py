"""Server-side exceptions, translated to protocol errors at the transport edge.

Exception
└── LiaisonError
    ├── StorageUnavailable   the log could not be read or written (retryable)
    ├── StorageOutcomeUnknown  a write was sent but not answered: maybe stored
    ├── LogNotFound          no log for that incident
    │   └── IncidentArchived  a creation of an incident that was archived
    └── ClientIdReused       a client id names a different, earlier action
"""

from __future__ import annotations


class LiaisonError(Exception):
    """Base of the server's own exceptions."""


class StorageUnavailable(LiaisonError):
    """The durable log failed; nothing was acknowledged, the client may retry."""


class StorageOutcomeUnknown(LiaisonError):
    """A write reached the store but its answer was lost: it may have been stored.

    Not a StorageUnavailable on purpose: that one promises "not stored". The
    client retries with the same id; idempotency answers it with the stored
    event if there is one.
    """


class LogNotFound(LiaisonError):
    """An append or read named an incident whose log does not exist."""


class IncidentArchived(LogNotFound):
    """An ``incident.created`` names an incident that was archived (it has a tombstone).

    Its id is derived from the creator's client id, so this is a retry of the
    original creation: stored once, forever (SPEC 12), it must not start the
    incident again in hot storage. A LogNotFound, so a caller that does not
    tell them apart still refuses it.
    """


class ClientIdReused(LiaisonError):
    """A client id was already used by the same user for a different action."""
