"""Typed protocol errors with stable codes.

Every error a client can receive is one row of ``ErrorCode``: a stable string
code (never renamed, never reused), whether retrying the same request later can
succeed, and a default human message. Ack frames carry them as::

    {"ok": false, "error": {"code": "not_found", "message": "...", "retryable": false}}

Hierarchy::

    Exception
    └── ProtocolError            (carries one ErrorCode + message + detail)
"""

from __future__ import annotations

from enum import Enum
from typing import Any


class ErrorCode(Enum):
    """(code, retryable, default message). Append rows only; never rename one."""

    # -- the request itself is wrong: retrying it unchanged fails again ---------
    MALFORMED = ("malformed", False, "The frame could not be decoded.")
    TOO_LARGE = ("too_large", False, "The frame exceeds the documented size limit.")
    INVALID = ("invalid", False, "A field is missing or has the wrong type or value.")
    UNKNOWN_TYPE = ("unknown_type", False, "This message type is not part of the protocol.")
    UNSUPPORTED_VERSION = ("unsupported_version", False, "No protocol version in common.")
    UNSUPPORTED_ENCODING = ("unsupported_encoding", False, "Encoding must be json or msgpack.")
    # -- who is asking ----------------------------------------------------------
    UNAUTHENTICATED = ("unauthenticated", False, "Missing, invalid or expired credentials.")
    FORBIDDEN = ("forbidden", False, "Your role or organisation may not do this.")
    # -- the state of the world -------------------------------------------------
    NOT_FOUND = ("not_found", False, "No such object, or you may not see it.")
    CONFLICT = ("conflict", False, "The object is not in a state that allows this.")
    OUT_OF_RANGE = ("out_of_range", False, "This position is beyond the end of the log.")
    RESYNC_REQUIRED = (
        "resync_required",
        False,
        "Your position in this incident's log can no longer be served: reload from seq 0.",
    )
    # -- the server, transiently: retry the same request (same client id) -------
    RATE_LIMITED = ("rate_limited", True, "Too many requests; slow down and retry.")
    UNAVAILABLE = ("unavailable", True, "Storage is unavailable; retry with the same id.")
    SLOW_CONSUMER = (
        "slow_consumer",
        True,
        "You fell too far behind; reconnect and resume from your last seq.",
    )
    INTERNAL = ("internal", True, "Unexpected server error; retry with the same id.")
    # -- added in v1 (SPEC §19: codes are only ever appended) --------------------
    SHUTDOWN = (
        "shutdown",
        True,
        "This server is shutting down; reconnect and resume from your last seq.",
    )
    OUTCOME_UNKNOWN = (
        "outcome_unknown",
        True,
        "The server cannot tell whether this was stored; retry with the same id.",
    )
    ARCHIVED = (
        "archived",
        False,
        "This incident was closed and archived under a retention policy: "
        "a supervisor or admin can export it.",
    )

    @property
    def code(self) -> str:
        return self.value[0]

    @property
    def retryable(self) -> bool:
        return self.value[1]

    @property
    def default_message(self) -> str:
        return self.value[2]

    @classmethod
    def from_code(cls, code: str) -> ErrorCode:
        for member in cls:
            if member.code == code:
                return member
        raise ValueError(f"unknown error code {code!r}")


class ProtocolError(Exception):
    """An error that is reported to the client as a typed error frame."""

    def __init__(
        self, code: ErrorCode, message: str | None = None, detail: dict[str, Any] | None = None
    ) -> None:
        self.code = code
        self.message = message or code.default_message
        self.detail = detail
        super().__init__(f"{code.code}: {self.message}")

    def to_wire(self) -> dict[str, Any]:
        """The ``error`` object of a failed ack."""
        err: dict[str, Any] = {
            "code": self.code.code,
            "message": self.message,
            "retryable": self.code.retryable,
        }
        if self.detail:
            err["detail"] = self.detail
        return err
