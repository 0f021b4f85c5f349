"""The incident view as one reader sees it, for tests that read projections directly."""

from __future__ import annotations

from typing import Any

from server.domain.audience import Reader
from server.domain.incident import IncidentState
from server.domain.sharing import AgreementsView, NoAgreements


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
