"""Organisations, roles and the authenticated principal."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from server.domain.sharing import DEFAULT_ORG_LABEL, Label


class Role(StrEnum):
    DISPATCHER = "dispatcher"
    RESPONDER = "responder"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    BOT = "bot"
    #: Reads and exports the audit log; nothing else (separation of duties).
    AUDITOR = "auditor"


#: Roles that run incidents: open them, change them, hand out tasks. A bot is
#: not among them: it acts with an API key, and coordinates only if the key's
#: scope says so (``Scope.coordinator``).
COORDINATORS = frozenset({Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN})


@dataclass(frozen=True, slots=True)
class Org:
    id: str
    name: str
    kind: str  # "police", "ngo", "system", ...
    #: The TLP label its people's new incidents and events get unless they
    #: choose one (SPEC section 9.4).
    default_label: Label = DEFAULT_ORG_LABEL
    #: Expertise tags (server/domain/expertise.py), set by an admin.
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Scope:
    """What an API key lets its bot do, within the key's organisation.

    Decided once, when the key is checked at authentication, and carried by the
    ``Principal``: the domain reads it and knows nothing of keys or storage.
    """

    #: The incidents it may see and act on; None: every one its org takes part in.
    incidents: frozenset[str] | None = None
    #: The write command types it may send (``message.post``...); None: all.
    commands: frozenset[str] | None = None
    #: Whether it runs incidents as a coordinator role does.
    coordinator: bool = False


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting: a user or a bot, always within one organisation."""

    user_id: str
    org_id: str
    role: Role
    name: str
    #: Set for a principal authenticated with an API key; None for a person.
    scope: Scope | None = None

    @property
    def coordinates(self) -> bool:
        if self.scope is not None:
            return self.scope.coordinator
        return self.role in COORDINATORS

    def sees(self, incident: str) -> bool:
        """False for an incident outside its key's scope: refused as one not shared."""
        allowed = self.scope.incidents if self.scope is not None else None
        return allowed is None or incident in allowed

    def may_send(self, command_type: str) -> bool:
        """False for a write command type its key does not allow."""
        allowed = self.scope.commands if self.scope is not None else None
        return allowed is None or command_type in allowed
