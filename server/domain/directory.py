"""What the rules need to know about organisations and users (an interface)."""

from __future__ import annotations

from typing import Protocol

from server.domain.model import Org, Principal


class DirectoryView(Protocol):
    """Read-only lookups; implemented by the storage layer's user directory."""

    def org(self, org_id: str) -> Org | None: ...

    def user(self, user_id: str) -> Principal | None: ...
