"""Exchange time on every signed request: a host clock 3 s off still trades, and a rejection resyncs once.

The loopback Bybit venue enforces Bybit's receive-window rule
(server - recv_window <= timestamp < server + 1000, else retCode 10002), so a
host 3 s ahead of the venue is refused on every signed call unless the
measured offset reaches ccxt.
"""

from __future__ import annotations

import pytest

from tests.adapters.test_bybit_wire import bybit_config
from tests.pipeline.harness import Tap
from twinstar.adapters.bybit import Bybit
from twinstar.bus.bus import Bus
from twinstar.bus.events import OrderFailed, OrderPlaced, SignalFired, SLUpdated
from twinstar.clock import LiveClock
from twinstar.config import ExecutionConfig, RiskConfig
from twinstar.handlers.execution import ExecutionHandler
from twinstar.handlers.position import PositionHandler
from twinstar.testing import BybitVenue, bybit_venue
from twinstar.timesync import TimeSync

pytestmark = pytest.mark.anyio
BTC = "BTC/USDT:USDT"


def _signal(side: str, stop: float, candle_ms: int) -> SignalFired:
    return SignalFired(
        ts_ns=1,
        strategy="t",
        exchange="bybit",
        symbol=BTC,
        side=side,  # type: ignore[arg-type]
        price=30_000.0,
        stop_price=stop,
        reason="test",
        candle_open_time_ms=candle_ms,
    )


async def _whole_trade(v: BybitVenue, *, sync: bool) -> Tap:
    """Long with its stop, then reversed to a short with its stop, on a LiveClock."""
    clock = LiveClock()
    adapter = Bybit(config=bybit_config(), clock=clock)
    v.point(adapter.ccxt)
    timesync = TimeSync(adapter, clock, samples=3)
    adapter.resync_clock = timesync.sync_once
    bus = Bus(clock, mode="replay")
    tap = Tap()
    tap.attach(bus)
    timesync.attach(bus)
    risk = RiskConfig(order_qty=0.01, sl_retry_backoff_s=[], emergency_retry_s=[0.01])
    PositionHandler(adapter, clock, risk).attach(bus)
    ExecutionHandler(adapter, clock, ExecutionConfig(network_backoff_s=[]), risk).attach(bus)
    try:
        if sync:
            await timesync.sync_once()  # before anything signed: loading Bybit's markets signs too
        await adapter.ccxt.load_markets()
        await bus.publish(_signal("buy", 29_000.0, 1_700_000_000_000))
        await bus.publish(_signal("sell", 31_000.0, 1_700_000_060_000))
    finally:
        await adapter.close()
    return tap


@pytest.mark.parametrize("venue_offset_ms", [3_000, -3_000])
async def test_a_whole_trade_with_the_host_clock_3s_off_is_accepted(venue_offset_ms: int) -> None:
    async with bybit_venue() as v:
        v.offset_ms = venue_offset_ms  # the venue 3 s ahead of the host (the host 3 s behind), and the mirror
        tap = await _whole_trade(v, sync=True)
    assert tap.of(OrderFailed) == []
    intents = [(e.intent, e.side) for e in tap.of(OrderPlaced)]  # type: ignore[attr-defined]
    assert intents == [("open", "buy"), ("close", "sell"), ("open", "sell")]
    assert [e.stop_price for e in tap.of(SLUpdated)] == [29_000.0, 31_000.0]  # type: ignore[attr-defined]
    assert v.positions == {"BTCUSDT": -0.01}


async def test_without_the_offset_a_host_3s_ahead_is_refused() -> None:
    """The control: the same trade with no offset measured and nothing to resync with."""
    async with bybit_venue() as v:
        clock = LiveClock()
        adapter = Bybit(config=bybit_config(), clock=clock)
        v.point(adapter.ccxt)
        try:
            await adapter.ccxt.load_markets()
            v.offset_ms = -3_000
            result = await adapter.place_market_order(BTC, "buy", 0.01, client_order_id="tw-skew")
        finally:
            await adapter.close()
    assert (result.ok, str(result.error_kind)) == (False, "clock_skew")
    assert v.orders == {}


async def test_a_timestamp_rejection_resyncs_and_retries_once() -> None:
    async with bybit_venue() as v:
        clock = LiveClock()
        adapter = Bybit(config=bybit_config(), clock=clock)
        v.point(adapter.ccxt)
        timesync = TimeSync(adapter, clock, samples=3)
        adapter.resync_clock = timesync.sync_once
        try:
            await adapter.ccxt.load_markets()
            await timesync.sync_once()
            v.offset_ms = -3_000  # the venue's clock (or ours) jumped after the last sync
            result = await adapter.place_market_order(BTC, "buy", 0.01, client_order_id="tw-jump")
        finally:
            await adapter.close()
    assert (result.ok, result.filled_qty) == (True, 0.01)
    assert list(v.orders) == ["tw-jump"]
    assert timesync.last is not None and -3_100 < timesync.last.offset_ms < -2_900
