"""A few SIGKILLs of the publishing kernel, the consuming kernel, the recorder and NATS: nothing lost or doubled.

The full run (hundreds of kills) is `python bench/bench_bridge.py --kills 300`.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from twinstar.bridge.faults import FaultRun
from twinstar.bridge.server import NatsServer
from twinstar.testing import venue

pytestmark = pytest.mark.anyio


async def test_kills_of_every_part_lose_no_event_and_double_no_order(nats_server: NatsServer, tmp_path: Path) -> None:
    async with venue() as v:
        run = FaultRun(v, nats_server, tmp_path, random.Random(7))
        try:
            await run.start_all()
            await run.rounds(["strategy", "account", "nats", "recorder", "strategy", "nats"], pause_s=(0.8, 2.0))
            figures = await run.finish()
        finally:
            await run.abort()
    assert figures.problems == []
    assert sorted(figures.kills.elements()) == ["account", "nats", "nats", "recorder", "strategy", "strategy"]
    assert figures.lost == figures.duplicate_events == figures.duplicate_orders == 0
    assert figures.published == figures.in_stream == figures.recorded
    assert figures.signals > 0 and figures.orders > 0
