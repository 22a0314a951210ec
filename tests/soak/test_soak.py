"""The soak, reduced: 10 symbols over both loopback venues, 10 faults, a 20-second window.

The same code as `nox -s soak` (twinstar.testing.soak): drops, silences
(half-open sockets) and venue restarts at random while every symbol streams
one-second candles into a live kernel with storage on. Every candle the
venues have in the window is stored exactly once, none lost, none doubled,
none published twice on the bus, each with the venue's own close; no feed
stops and no handler fails. Timing figures (lag, latency, memory) are the
bench's to print, not asserted here. Only loopback addresses.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from twinstar.testing.soak import SoakPlan, run_soak

pytestmark = pytest.mark.anyio

PLAN = SoakPlan(binance=5, bybit=5, duration_s=20.0, injections=10, flip_per_venue=1, silence_s=1.5, settle_s=10.0)


@pytest.mark.timeout(150)
async def test_every_candle_is_stored_once_through_drops_silences_and_restarts(tmp_path: Path) -> None:
    report = await run_soak(PLAN, tmp_path)
    table = report.table()
    assert report.injected_total == PLAN.injections, table
    assert report.expected == 10 * report.window_s, table
    assert (report.stored_once, report.lost, report.duplicated_bus, report.duplicated_files) == (
        report.expected,
        0,
        0,
        0,
    ), table
    assert (report.wrong_close, report.phantom, report.not_on_bus) == (0, 0, 0), table
    assert (report.handler_failures, report.stopped) == ([], []), table
    assert report.failures(timing=False) == [], table
