"""SharingRules.grant (server/services/sharing_rules.py): from memory, and never past an expiry.

The clock is injected: ``grant`` is asked at chosen instants, in any order,
and the cached answers must be the ones a fresh computation gives.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from server.domain.sharing import (
    NO_GRANT,
    Agreement,
    AgreementsView,
    FieldClass,
    Precision,
    combine,
)
from server.services.sharing_rules import SharingRules
from server.storage.agreements import SqliteAgreementStore

T0 = 1_800_000_000_000
POLICE, SHELTER, RANGERS = "metro-police", "harbour-shelter", "rangers"


def agreement(agreement_id: str, **changes: object) -> Agreement:
    base = Agreement(
        id=agreement_id,
        owner=POLICE,
        recipients=(SHELTER,),
        kinds=("message", "responder.position"),
        fields=(FieldClass.NAME, FieldClass.POSITION),
        position=Precision.COARSE,
        categories=("welfare",),
        history=False,
        valid_from_ms=T0,
        valid_until_ms=T0 + 1_000,
        revoked_ms=None,
        created_by="u_admin",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.fixture
async def rules(tmp_path: Path) -> AsyncIterator[SharingRules]:
    view = SharingRules(SqliteAgreementStore(tmp_path / "agreements.db"))
    await view.start()
    yield view
    await view.close()


def test_sharing_rules_is_an_agreements_view(tmp_path: Path) -> None:
    view: AgreementsView = SharingRules(SqliteAgreementStore(tmp_path / "a.db"))
    assert view.all() == ()


async def test_expiry_is_honoured_at_the_millisecond_though_the_grant_was_cached(
    rules: SharingRules,
) -> None:
    await rules.create(agreement("a1"))
    granted = rules.grant(POLICE, SHELTER, "welfare", "message.posted", T0 + 10)
    assert granted.fields == {FieldClass.NAME, FieldClass.POSITION}
    assert granted.position is Precision.COARSE
    version = rules.version()
    # The same key at later instants: cached until the expiry, never past it.
    assert rules.grant(POLICE, SHELTER, "welfare", "message.posted", T0 + 999) == granted
    assert rules.grant(POLICE, SHELTER, "welfare", "message.posted", T0 + 1_000) == NO_GRANT
    # ... and the clock may go back (another caller's older instant).
    assert rules.grant(POLICE, SHELTER, "welfare", "message.posted", T0 + 500) == granted
    assert rules.grant(POLICE, SHELTER, "welfare", "message.posted", T0 - 1) == NO_GRANT
    assert rules.version() == version, "expiry needs no change to the set"


async def test_a_grant_starts_at_valid_from_and_ends_at_a_revoke(rules: SharingRules) -> None:
    later = agreement("a2", valid_from_ms=T0 + 100, valid_until_ms=None)
    await rules.create(later)
    assert rules.grant(POLICE, SHELTER, "welfare", "message", T0) == NO_GRANT
    assert rules.grant(POLICE, SHELTER, "welfare", "message", T0 + 100) == combine([later])
    await rules.revoke("a2", "u_admin", T0 + 200)
    assert rules.grant(POLICE, SHELTER, "welfare", "message", T0 + 150) == combine([later])
    assert rules.grant(POLICE, SHELTER, "welfare", "message", T0 + 200) == NO_GRANT


async def test_only_the_owner_recipient_kind_and_category_covered(rules: SharingRules) -> None:
    await rules.create(agreement("a3", valid_until_ms=None))
    at = T0 + 1
    assert rules.grant(POLICE, SHELTER, "welfare", "task.created", at) == NO_GRANT
    assert rules.grant(POLICE, SHELTER, "burglary", "message.posted", at) == NO_GRANT
    assert rules.grant(SHELTER, POLICE, "welfare", "message.posted", at) == NO_GRANT
    assert rules.grant(POLICE, RANGERS, "welfare", "message.posted", at) == NO_GRANT
    assert rules.grant(POLICE, SHELTER, "welfare", "responder.position", at).fields


async def test_several_agreements_combine_and_the_widest_precision_wins(
    rules: SharingRules,
) -> None:
    await rules.create(agreement("b1", valid_until_ms=None))
    await rules.create(
        agreement(
            "b2",
            fields=(FieldClass.PHONE, FieldClass.POSITION),
            position=Precision.EXACT,
            history=True,
            valid_until_ms=T0 + 50,
        )
    )
    both = rules.grant(POLICE, SHELTER, "welfare", "message", T0 + 10)
    assert both.fields == {FieldClass.NAME, FieldClass.PHONE, FieldClass.POSITION}
    assert (both.position, both.history) == (Precision.EXACT, True)
    one = rules.grant(POLICE, SHELTER, "welfare", "message", T0 + 50)
    assert one.fields == frozenset({FieldClass.NAME, FieldClass.POSITION})
    assert one.position is Precision.COARSE
    assert not one.history


async def test_a_revoke_is_once_and_the_record_stays(rules: SharingRules) -> None:
    await rules.create(agreement("c1"))
    first = await rules.revoke("c1", "u_police-admin", T0 + 5)
    again = await rules.revoke("c1", "cli:root", T0 + 9)
    assert first is not None
    assert again == first
    assert (first.revoked_ms, first.revoked_by) == (T0 + 5, "u_police-admin")
    assert [a.id for a in rules.all()] == ["c1"]
    assert await rules.revoke("nope", "u_x", T0) is None
