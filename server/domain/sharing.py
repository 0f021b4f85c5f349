"""Sharing rules as data: TLP 2.0 labels and sharing agreements (SPEC section 9.4).

Who may read an event, and which of its fields, is decided by one function,
``audience`` (server/domain/audience.py), from the event's visibility, its
label and the agreements in force. This module holds the data it reads.

Labels (TLP 2.0), from the least to the most restrictive:

* ``CLEAR``: no limit. ``GREEN``: the community. Both reach every participant,
  newcomers included.
* ``AMBER``: the participating organisations. An organisation added to the
  incident later sees earlier AMBER events of another organisation only if an
  agreement from that organisation grants it ``history``.
* ``AMBER+STRICT``: the organisations the event names in its visibility, and
  only those (never all participants, never a newcomer).
* ``RED``: the users the event names as ``recipients``, and its author; no
  one else, not even the author's own organisation.

Agreements are directional: ``owner`` shares with ``recipients``. An agreement
in force grants, for events of the kinds and incident categories it covers,
the protected fields it lists (a person's name, date of birth, phone, exact
address; a responder's position, exactly or coarsened to about 100 m) and,
optionally, the AMBER history before a recipient joined. Without one, a reader
of another organisation gets those fields replaced by a redaction marker.
Expiry and revocation take effect at the next read: nothing is cached past
``valid_until_ms`` or ``revoked_ms``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol


class Label(StrEnum):
    CLEAR = "CLEAR"
    GREEN = "GREEN"
    AMBER = "AMBER"
    AMBER_STRICT = "AMBER+STRICT"
    RED = "RED"


#: What an event stored before labels existed, or without one, is treated as:
#: every participant read it then, and newcomers are the case AMBER covers.
UNLABELLED = Label.AMBER

#: The default label of an organisation that has not set one.
DEFAULT_ORG_LABEL = Label.AMBER


class FieldClass(StrEnum):
    """Protected fields an agreement can share (SPEC section 9.4)."""

    NAME = "name"
    DOB = "dob"
    PHONE = "phone"
    ADDRESS = "address"
    POSITION = "position"


class Precision(StrEnum):
    """How a shared position reaches the recipient."""

    EXACT = "exact"
    #: Rounded to a grid of about 100 m (3 decimal places of latitude).
    COARSE = "coarse"


@dataclass(frozen=True, slots=True)
class Agreement:
    """A sharing agreement: ``owner``'s data, as far as it reaches ``recipients``."""

    id: str
    owner: str
    recipients: tuple[str, ...]
    #: Event-type prefixes the grant applies to ("message", "task",
    #: "responder.position", "incident"...); empty: every kind.
    kinds: tuple[str, ...]
    #: Protected fields shared; POSITION with ``position`` precision.
    fields: tuple[FieldClass, ...]
    position: Precision
    #: Incident categories covered; None: every category.
    categories: tuple[str, ...] | None
    #: Newcomers among the recipients see the owner's AMBER history.
    history: bool
    valid_from_ms: int
    #: None: until revoked.
    valid_until_ms: int | None
    revoked_ms: int | None
    created_by: str
    note: str = ""
    #: Who revoked it (a user id, or "cli:<os user>"); None while not revoked.
    revoked_by: str | None = None

    def in_force(self, now_ms: int) -> bool:
        if self.revoked_ms is not None and self.revoked_ms <= now_ms:
            return False
        if self.valid_until_ms is not None and self.valid_until_ms <= now_ms:
            return False
        return self.valid_from_ms <= now_ms

    def covers(self, owner: str, recipient: str, category: str, kind: str) -> bool:
        """Does it speak of ``owner``'s ``kind`` events, read by ``recipient``?"""
        if owner != self.owner or recipient not in self.recipients:
            return False
        if self.categories is not None and category not in self.categories:
            return False
        return not self.kinds or any(
            kind == prefix or kind.startswith(prefix + ".") for prefix in self.kinds
        )

    def boundaries(self) -> tuple[int, ...]:
        """The instants at which ``in_force`` may change (for caches of grants)."""
        return tuple(
            t for t in (self.valid_from_ms, self.valid_until_ms, self.revoked_ms) if t is not None
        )

    def to_wire(self) -> dict[str, Any]:
        """The agreement object of SPEC section 9.4 (also its stored form)."""
        return {
            "id": self.id,
            "owner": self.owner,
            "recipients": list(self.recipients),
            "kinds": list(self.kinds),
            "fields": [f.value for f in self.fields],
            "position": self.position.value,
            "categories": None if self.categories is None else list(self.categories),
            "history": self.history,
            "valid_from_ms": self.valid_from_ms,
            "valid_until_ms": self.valid_until_ms,
            "revoked_ms": self.revoked_ms,
            "revoked_by": self.revoked_by,
            "created_by": self.created_by,
            "note": self.note,
        }

    @classmethod
    def from_wire(cls, obj: dict[str, Any]) -> Agreement:
        """The inverse of ``to_wire``, for trusted (stored) values only: the
        admin API validates what a client sends (server/services/sharing_admin.py)."""
        categories = obj.get("categories")
        return cls(
            id=obj["id"],
            owner=obj["owner"],
            recipients=tuple(obj["recipients"]),
            kinds=tuple(obj["kinds"]),
            fields=tuple(FieldClass(f) for f in obj["fields"]),
            position=Precision(obj["position"]),
            categories=None if categories is None else tuple(categories),
            history=bool(obj["history"]),
            valid_from_ms=int(obj["valid_from_ms"]),
            valid_until_ms=obj.get("valid_until_ms"),
            revoked_ms=obj.get("revoked_ms"),
            created_by=obj["created_by"],
            note=obj.get("note", ""),
            revoked_by=obj.get("revoked_by"),
        )


@dataclass(frozen=True, slots=True)
class Grant:
    """What the agreements in force give one (owner, recipient, category, kind)."""

    fields: frozenset[FieldClass]
    position: Precision | None
    history: bool


NO_GRANT = Grant(fields=frozenset(), position=None, history=False)


def combine(agreements: Sequence[Agreement]) -> Grant:
    """The union of several agreements' grants (the widest precision wins)."""
    if not agreements:
        return NO_GRANT
    fields: set[FieldClass] = set()
    position: Precision | None = None
    for a in agreements:
        fields.update(a.fields)
        if FieldClass.POSITION in a.fields and position is not Precision.EXACT:
            position = a.position
    return Grant(
        fields=frozenset(fields),
        position=position,
        history=any(a.history for a in agreements),
    )


class AgreementsView(Protocol):
    """The agreements a node knows, as the read paths consult them.

    Guarantees: ``grant`` answers from memory (it is called on the fan-out
    path); a change made on any node (create, revoke) is seen within the
    change feed's latency (target: under 1 s, measured in the note), and
    expiry needs no change at all (``now_ms`` is compared on every call).
    ``version`` moves whenever the set changes, so callers may cache grants
    per version and per millisecond-free key (never past an expiry: the
    cache key must include whether each agreement is still in force).
    """

    def version(self) -> int: ...

    def grant(self, owner: str, recipient: str, category: str, kind: str, now_ms: int) -> Grant: ...

    def all(self) -> Sequence[Agreement]: ...


class NoAgreements:
    """An ``AgreementsView`` with no agreement at all: the strictest reading.

    What a node uses before any agreement exists, and what pure tests use.
    """

    def version(self) -> int:
        return 0

    def grant(self, owner: str, recipient: str, category: str, kind: str, now_ms: int) -> Grant:
        return NO_GRANT

    def all(self) -> Sequence[Agreement]:
        return ()


class StaticAgreements:
    """An ``AgreementsView`` over a fixed list (pure tests, the demo's checks)."""

    def __init__(self, agreements: Sequence[Agreement]) -> None:
        self._agreements = tuple(agreements)

    def version(self) -> int:
        return 1

    def grant(self, owner: str, recipient: str, category: str, kind: str, now_ms: int) -> Grant:
        return combine(
            [
                a
                for a in self._agreements
                if a.in_force(now_ms) and a.covers(owner, recipient, category, kind)
            ]
        )

    def all(self) -> Sequence[Agreement]:
        return self._agreements
