"""Shared pytest setup: async tests run on asyncio through the anyio plugin."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Run `@pytest.mark.anyio` tests on asyncio (ccxt and the bus need it)."""
    return "asyncio"
