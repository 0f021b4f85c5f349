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


#: Roles that run incidents: open them, change them, hand out tasks.
COORDINATORS = frozenset({Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN, Role.BOT})


@dataclass(frozen=True, slots=True)
class Org:
    id: str
    name: str
    kind: str  # "police", "ngo", "system", ...
    #: The TLP label its people's new incidents and events get unless they
    #: choose one (SPEC section 9.4).
    default_label: Label = DEFAULT_ORG_LABEL


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting: a user or a bot, always within one organisation."""

    user_id: str
    org_id: str
    role: Role
    name: str

    @property
    def coordinates(self) -> bool:
        return self.role in COORDINATORS
