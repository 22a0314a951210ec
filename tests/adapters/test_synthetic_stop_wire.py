"""A synthetic stop fires over the wire on the candle's wick, not on its close (Upbit, recorded replies).

Upbit has no stop order: the kernel keeps the stop and sells at market when a
closed candle's low reaches it. Real ccxt talks to the recorded venue: the
held 0.01 BTC is adopted at start, protected by a synthetic stop 2% under its
average buy price (45,000,000 KRW: the stop at 44,100,000), and a candle that
wicks to 44,000,000 and closes at 45,600,000 must still sell.
"""

from __future__ import annotations

import json

import pytest

from tests.adapters.recorded_venue import recorded_venue
from tests.adapters.test_adapters_wire import _config
from tests.adapters.test_parity_spot import UPBIT_ACCOUNTS, UPBIT_DONE_SELL, UPBIT_TAKEN_SELL, _upbit
from tests.adapters.test_trade_feed import MIN, _push, _trade, _until
from tests.pipeline.harness import Tap
from twinstar import Kernel
from twinstar.adapters.binance import BinanceUsdm
from twinstar.adapters.feeds import TradeCandleFeed
from twinstar.bus.events import CandleClosed, PositionClosed, PositionReconciled, PriceMoved
from twinstar.clock import LiveClock
from twinstar.config import RiskConfig
from twinstar.handlers.position import PositionHandler
from twinstar.testing.venue import venue

pytestmark = pytest.mark.anyio
BTC_KRW = "BTC/KRW"
BTC = "BTC/USDT:USDT"


def _candle(open_ms: int, low: float, close: float) -> CandleClosed:
    return CandleClosed(
        ts_ns=open_ms * 1_000_000,
        exchange="upbit",
        symbol=BTC_KRW,
        interval="1m",
        open_time_ms=open_ms,
        open=45_500_000.0,
        high=45_900_000.0,
        low=low,
        close=close,
        volume=1.0,
    )


async def test_a_wick_through_the_synthetic_stop_sells_although_the_candle_closes_above() -> None:
    replies = {
        ("GET", "/v1/accounts"): [UPBIT_ACCOUNTS],
        ("GET", "/v1/orders/open"): [[]],
        ("POST", "/v1/orders"): [UPBIT_TAKEN_SELL],
        ("GET", "/v1/order"): [UPBIT_DONE_SELL],
    }
    async with recorded_venue(replies) as venue:
        adapter = _upbit(venue)
        tap = Tap()
        handler = PositionHandler(adapter, adapter.clock, RiskConfig(stop_loss_pct=2.0), symbols=[BTC_KRW])
        try:
            async with Kernel(clock=adapter.clock, components=[tap, handler]) as kernel:
                await kernel.bus.idle()
                found = [(e.action, e.after, e.stop_price) for e in tap.of(PositionReconciled)]  # type: ignore[attr-defined]
                assert found == [("adopted", 0.01, 0.0), ("protected", 0.01, 44_100_000.0)]
                start = adapter.clock.now_ms() // 60_000 * 60_000 - 120_000
                await kernel.publish(_candle(start, low=44_200_000.0, close=45_600_000.0))  # above the stop
                await kernel.bus.idle()
                assert venue.sent("POST", "/v1/orders") == []
                await kernel.publish(_candle(start + 60_000, low=44_000_000.0, close=45_600_000.0))  # a wick through
                await kernel.bus.idle()
                await kernel.stop("test done")
        finally:
            await adapter.close()
    [closed] = tap.of(PositionClosed)
    assert (closed.reason, closed.qty, closed.exit_price, closed.fees) == ("stop_loss", 0.01, 45_831_000.0, 229.155)  # type: ignore[attr-defined]
    [sell] = venue.sent("POST", "/v1/orders")
    assert json.loads(sell.body) == {
        "market": "KRW-BTC",
        "side": "ask",
        "ord_type": "market",
        "volume": "0.01",
        "identifier": json.loads(sell.body)["identifier"],
    }
    assert json.loads(sell.body)["identifier"].startswith("twx-")


async def test_a_balance_of_unknown_cost_is_never_sold_blind_its_stop_is_set_from_the_next_close() -> None:
    unknown_cost = [dict(row, avg_buy_price="0") for row in UPBIT_ACCOUNTS]  # bought elsewhere, cost not kept
    replies = {
        ("GET", "/v1/accounts"): [unknown_cost],
        ("GET", "/v1/orders/open"): [[]],
        ("POST", "/v1/orders"): [UPBIT_TAKEN_SELL],
        ("GET", "/v1/order"): [UPBIT_DONE_SELL],
    }
    async with recorded_venue(replies) as venue:
        adapter = _upbit(venue)
        tap = Tap()
        handler = PositionHandler(adapter, adapter.clock, RiskConfig(stop_loss_pct=2.0), symbols=[BTC_KRW])
        try:
            async with Kernel(clock=adapter.clock, components=[tap, handler]) as kernel:
                start = adapter.clock.now_ms() // 60_000 * 60_000 - 120_000
                await kernel.publish(_candle(start, low=44_000_000.0, close=45_000_000.0))  # arms it at 44,100,000
                await kernel.bus.idle()
                assert venue.sent("POST", "/v1/orders") == []
                assert handler.positions[BTC_KRW].stop_price == 44_100_000.0
                await kernel.publish(_candle(start + 60_000, low=44_050_000.0, close=45_600_000.0))
                await kernel.bus.idle()
                await kernel.stop("test done")
        finally:
            await adapter.close()
    actions = [(e.action, e.detail) for e in tap.of(PositionReconciled)]  # type: ignore[attr-defined]
    assert actions == [("adopted", "long 0.01 @ 0"), ("protected", "synthetic stop set at next close")]
    assert [c.reason for c in tap.of(PositionClosed)] == ["stop_loss"]  # type: ignore[attr-defined]
    assert len(venue.sent("POST", "/v1/orders")) == 1


class _KeptStops(BinanceUsdm):
    """Binance USD-M traded as a venue without stop orders: its trade stream is the one we have recorded."""

    native_stop = False


async def test_a_synthetic_stop_fires_on_the_streamed_trade_before_the_candle_closes() -> None:
    clock = LiveClock()
    async with venue() as v:
        v.positions["BTCUSDT"], v.entry_prices["BTCUSDT"] = 0.01, 30_000.0  # held before the kernel started
        adapter = _KeptStops(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        feed = TradeCandleFeed(adapter, BTC, "1m", clock)
        handler = PositionHandler(adapter, clock, RiskConfig(stop_loss_pct=2.0), symbols=[BTC])
        tap = Tap()
        try:
            async with Kernel(clock=clock, components=[tap, handler, feed]) as kernel:
                await _until(lambda: bool(v.subscriptions))
                assert handler.positions[BTC].stop_price == 29_400.0  # adopted, its stop kept by the kernel
                now = clock.now_ms()
                v.price = 29_300.0  # the close at market fills where the market is
                await _push(v, [_trade(now, 29_900.0, 0.1, 1), _trade(now + 1, 29_300.0, 0.1, 2)])
                await _until(lambda: bool(tap.of(PositionClosed)))
                assert [c.open_time_ms for c in tap.of(CandleClosed) if c.open_time_ms >= now // MIN * MIN] == []  # type: ignore[attr-defined]
                await kernel.stop("test done")
        finally:
            await adapter.close()
    moved = tap.of(PriceMoved)
    assert [(m.low, m.high) for m in moved][-1] == (29_300.0, 29_900.0)  # type: ignore[attr-defined]
    [closed] = tap.of(PositionClosed)
    assert (closed.reason, closed.qty, closed.exit_price) == ("stop_loss", 0.01, 29_300.0)  # type: ignore[attr-defined]
    assert v.positions["BTCUSDT"] == 0
