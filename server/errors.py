"""Server-side exceptions, translated to protocol errors at the transport edge.

Exception
└── LiaisonError
    ├── StorageUnavailable   the log could not be read or written (retryable)
    ├── LogNotFound          no log for that incident
    └── ClientIdReused       a client id names a different, earlier action
"""

from __future__ import annotations


class LiaisonError(Exception):
    """Base of the server's own exceptions."""


class StorageUnavailable(LiaisonError):
    """The durable log failed; nothing was acknowledged, the client may retry."""


class LogNotFound(LiaisonError):
    """An append or read named an incident whose log does not exist."""


class ClientIdReused(LiaisonError):
    """A client id was already used by the same user for a different action."""
