"""Fixtures shared by the integration tests (the rest are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.integration.inproc import InProcess, serve_inproc


@pytest.fixture
async def inproc(tmp_path: Path) -> AsyncIterator[InProcess]:
    """A server in the test's own event loop, so the test can look at its parts."""
    async with serve_inproc(tmp_path) as server:
        yield server
