"""Retention rules, pure: which policy holds an incident, and when it is due.

A policy matches an incident by category and participating organisation
(an empty list matches any). When several match, the most protective wins,
each period on its own: the longest ``archive_after_days`` and the longest
``purge_after_days`` (``None``, never purge, is longest). The policy with id
``default`` applies only when no other matches; with no policy matching at
all an incident stays in hot storage (nothing is removed unless an admin
said so).

Periods count from the incident's last event once it is closed, so a review
written after closing (and its follow-ups) keeps it in hot storage.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from protocol.errors import ErrorCode, ProtocolError

DAY_MS = 86_400_000
DEFAULT_POLICY = "default"
#: Policy ids: short, printable, safe in a URL path.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: Longest period accepted: a century.
MAX_DAYS = 36_525


@dataclass(frozen=True, slots=True)
class Policy:
    id: str
    archive_after_days: int
    #: Days after archiving that the archive file is purged; None: kept for ever.
    purge_after_days: int | None = None
    categories: tuple[str, ...] = ()
    orgs: tuple[str, ...] = ()
    note: str = ""

    def matches(self, category: str, orgs: Iterable[str]) -> bool:
        return (not self.categories or category in self.categories) and (
            not self.orgs or bool(set(self.orgs) & set(orgs))
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "archive_after_days": self.archive_after_days,
            "purge_after_days": self.purge_after_days,
            "categories": list(self.categories),
            "orgs": list(self.orgs),
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class Decision:
    """The periods that hold for one incident, and the policies they come from."""

    archive_after_days: int
    archive_policy: str
    purge_after_days: int | None
    purge_policy: str

    def archive_due(self, closed: bool, last_ms: int, now_ms: int) -> bool:
        return closed and now_ms >= last_ms + self.archive_after_days * DAY_MS

    def purge_due(self, archived_ms: int, now_ms: int) -> bool:
        days = self.purge_after_days
        return days is not None and now_ms >= archived_ms + days * DAY_MS


def _invalid(message: str, name: str) -> ProtocolError:
    return ProtocolError(ErrorCode.INVALID, message, {"field": name})


def _days(raw: Mapping[str, Any], name: str, optional: bool) -> int | None:
    value = raw.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_DAYS:
        raise _invalid(f"{name} must be an integer 0..{MAX_DAYS}", name)
    return value


def _names(raw: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = raw.get(name, [])
    if not isinstance(value, list) or len(value) > 100:
        raise _invalid(f"{name} must be a list of at most 100 names", name)
    if not all(isinstance(v, str) and 0 < len(v) <= 100 for v in value):
        raise _invalid(f"{name} must hold non-empty names", name)
    return tuple(sorted(set(value)))


def parse_policy(policy_id: str, raw: Any) -> Policy:
    """A policy from its wire form (the REST body); INVALID names the bad field."""
    if not _ID.match(policy_id):
        raise _invalid("a policy id is 1-64 letters, digits, '_', '.' or '-'", "id")
    if not isinstance(raw, dict):
        raise _invalid("a policy is a JSON object", "body")
    known = {"archive_after_days", "purge_after_days", "categories", "orgs", "note", "id"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise _invalid(f"unknown field {unknown[0]!r}", unknown[0])
    note = raw.get("note", "")
    if not isinstance(note, str) or len(note) > 500:
        raise _invalid("note must be text of at most 500 characters", "note")
    archive = _days(raw, "archive_after_days", optional=False)
    assert archive is not None
    policy = Policy(
        id=policy_id,
        archive_after_days=archive,
        purge_after_days=_days(raw, "purge_after_days", optional=True),
        categories=_names(raw, "categories"),
        orgs=_names(raw, "orgs"),
        note=note,
    )
    if policy.id == DEFAULT_POLICY and (policy.categories or policy.orgs):
        raise _invalid("the default policy matches every incident: no categories or orgs", "id")
    return policy


def policy_of(raw: Mapping[str, Any]) -> Policy:
    """A stored policy (written by ``Policy.to_wire``)."""
    return parse_policy(str(raw["id"]), dict(raw))


def decide(policies: Iterable[Policy], category: str, orgs: Iterable[str]) -> Decision | None:
    """The periods for an incident of ``category`` with ``orgs``; None: keep it hot."""
    orgs = list(orgs)
    every = list(policies)
    matching = [p for p in every if p.id != DEFAULT_POLICY and p.matches(category, orgs)]
    if not matching:
        matching = [p for p in every if p.id == DEFAULT_POLICY]
    if not matching:
        return None
    archive = max(matching, key=lambda p: (p.archive_after_days, p.id))
    purge = max(
        matching,
        key=lambda p: (p.purge_after_days is None, p.purge_after_days or 0, p.id),
    )
    return Decision(archive.archive_after_days, archive.id, purge.purge_after_days, purge.id)
