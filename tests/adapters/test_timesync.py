"""Time sync against a loopback venue whose clock is skewed and whose replies are slow one way."""

from __future__ import annotations

import asyncio

import pytest

from tests.adapters.test_adapters_wire import _config
from twinstar.adapters.binance import BinanceUsdm
from twinstar.bus.bus import Bus
from twinstar.bus.events import ClockSynced, Event, OrderFailed
from twinstar.clock import LiveClock
from twinstar.kernel import Kernel
from twinstar.testing.venue import venue
from twinstar.timesync import TimeSync

pytestmark = pytest.mark.anyio
SKEW_MS = 2_500
REPLY_DELAY_S = 0.08  # the server stamps its time, then the reply waits: an asymmetric path


async def test_offset_is_measured_within_the_bound_the_round_trip_allows() -> None:
    async with venue() as v:
        v.offset_ms = SKEW_MS
        v.time_reply_delay_s = REPLY_DELAY_S
        clock = LiveClock()
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        seen: list[Event] = []

        class Tap:
            def attach(self, bus: Bus) -> None:
                bus.subscribe(ClockSynced, self.handle)

            async def handle(self, event: ClockSynced) -> None:
                seen.append(event)

        sync = TimeSync(adapter, clock, samples=3)
        try:
            async with Kernel(clock=clock, components=[sync, Tap()]) as kernel:
                await kernel.bus.idle()
                first = sync.last
                assert first is not None
                # The true offset is SKEW_MS; one sample can be wrong by at most half its RTT.
                assert abs(first.offset_ms - SKEW_MS) <= first.rtt_ms / 2 + 5
                assert first.rtt_ms >= REPLY_DELAY_S * 1000
                assert abs(clock.offset_ms - first.offset_ms) < 1e-6
                # A clock-skew rejection makes the next sync happen at once.
                v.offset_ms = -1_000
                await kernel.publish(
                    OrderFailed(
                        ts_ns=clock.now_ns(),
                        client_order_id="x",
                        exchange="binanceusdm",
                        symbol="BTC/USDT:USDT",
                        side="buy",
                        intent="open",
                        error_kind="clock_skew",
                        message="-1021",
                        attempts=1,
                    )
                )
                for _ in range(40):
                    await asyncio.sleep(0.1)
                    if len(seen) >= 2:
                        break
        finally:
            await adapter.close()
        assert len(seen) >= 2
        second = sync.last
        assert second is not None
        assert abs(second.offset_ms - -1_000) <= second.rtt_ms / 2 + 5


@pytest.mark.parametrize("venue_offset_ms", [2 * 86_400_000, -3_600_000, 11 * 60_000])
async def test_an_implausible_server_time_is_refused_and_the_clock_left_alone(
    venue_offset_ms: int, caplog: pytest.LogCaptureFixture
) -> None:
    async with venue() as v:
        clock = LiveClock()
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        sync = TimeSync(adapter, clock, samples=1)
        try:
            v.offset_ms = 700
            assert await sync.sync_once() is not None  # a plausible offset is applied
            applied = clock.offset_ms
            v.offset_ms = venue_offset_ms  # a reply from a clock a day, an hour, 11 minutes away
            assert await sync.sync_once() is None
        finally:
            await adapter.close()
    assert clock.offset_ms == applied
    assert "time sync with binanceusdm refused: server time" in caplog.text
