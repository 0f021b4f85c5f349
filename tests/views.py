"""The incident view as one reader sees it, for tests that read projections directly."""

from __future__ import annotations

from typing import Any

from server.domain.audience import Reader
from server.domain.incident import IncidentState
from server.domain.sharing import (
    Agreement,
    AgreementsView,
    FieldClass,
    NoAgreements,
    Precision,
    StaticAgreements,
)
from server.services.admin import DEMO_AGREEMENTS, demo_agreement_body


def view_of(
    state: IncidentState,
    org: str | None,
    now_ms: int,
    rules: AgreementsView | None = None,
    user: str = "",
) -> dict[str, Any]:
    """``state.view`` for ``org`` (None: unrestricted), with no agreement unless given."""
    reader = None if org is None else Reader(org, user)
    return state.view(state.sight(reader, rules or NoAgreements(), now_ms))


def demo_rules() -> StaticAgreements:
    """The agreements ``liaison serve --demo`` seeds, as a pure ``AgreementsView``."""
    agreements = []
    for agreement_id, (owner, recipient) in DEMO_AGREEMENTS.items():
        body = demo_agreement_body(owner, recipient)
        agreements.append(
            Agreement(
                id=agreement_id,
                owner=owner,
                recipients=tuple(body["recipients"]),
                kinds=(),
                fields=tuple(FieldClass(f) for f in body["fields"]),
                position=Precision(body["position"]),
                categories=tuple(body["categories"]),
                history=body["history"],
                valid_from_ms=0,
                valid_until_ms=None,
                revoked_ms=None,
                created_by="system:demo",
            )
        )
    return StaticAgreements(agreements)
