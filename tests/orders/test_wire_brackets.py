"""A limit bracket through the live kernel, over the wire to the loopback Binance USD-M and Bybit venues.

Binance takes no exits on an entry, so the kernel manages the bracket: the
limit rests; when the price crosses it the venue fills it and pushes the fill
on the user-data stream; the kernel books it, places the stop and the
take-profit (a TAKE_PROFIT_MARKET algo order); when the take-profit fills,
pushed the same way, the close is booked at its fill and the stop cancelled.
On Bybit both exits ride on the entry (the position's TP/SL, Full mode) and
the venue removes the other when one fills. The routine checks and the
reconcile timer are out of reach: only the stream tells the kernel.
"""

from __future__ import annotations

import pytest

from tests.adapters.test_bybit_wire import bybit_config
from tests.adapters.test_order_stream import BTC, _config, _until
from tests.pipeline.harness import Tap
from twinstar import Config, Kernel
from twinstar.adapters import make_exchange
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.adapters.order_stream import OrderStream
from twinstar.bus.events import OrderPlaced, OrderUpdated, PositionClosed, PositionOpened, SignalFired, SLUpdated
from twinstar.clock import LiveClock
from twinstar.config import RiskConfig
from twinstar.handlers import build_pipeline
from twinstar.testing import bybit_venue
from twinstar.testing.venue import venue

pytestmark = pytest.mark.anyio


async def test_a_limit_bracket_rests_fills_from_the_stream_and_its_take_profit_cancels_the_stop() -> None:
    async with venue() as v:
        config = _config(v)
        clock = LiveClock()
        exchange = make_exchange(config.exchange, clock)
        assert isinstance(exchange, CcxtExchange)
        tap = Tap()
        parts = [tap, *build_pipeline(config, clock, exchange), OrderStream(exchange, config.symbols, clock)]
        async with Kernel(config, clock=clock, components=parts) as kernel:
            assert await _until(lambda: any(s.private for s in v.streams.values()))
            v.price = 30_000.0
            await kernel.publish(
                SignalFired(
                    ts_ns=clock.now_ns(),
                    strategy="test",
                    exchange="binanceusdm",
                    symbol=BTC,
                    side="buy",
                    price=30_000.0,
                    stop_price=28_500.0,
                    reason="test",
                    candle_open_time_ms=clock.now_ms() // 1000 * 1000,
                    order_type="limit",
                    limit_price=29_000.0,
                    take_profit_price=31_000.0,
                )
            )
            assert await _until(lambda: bool(tap.of(OrderPlaced)))
            resting = [o for o in v.orders.values() if o["status"] == "NEW"]
            await v.move_price(28_900.0)
            assert await _until(lambda: bool(tap.of(SLUpdated)) and bool(v.algo_orders) and len(v.algo_orders) == 2)
            exits = sorted((a["orderType"], a["triggerPrice"]) for a in v.algo_orders.values())
            await v.move_price(31_100.0)
            assert await _until(lambda: bool(tap.of(PositionClosed)))
            assert await _until(lambda: all(a["algoStatus"] != "NEW" for a in v.algo_orders.values()))
            await kernel.stop("test done")
        await exchange.close()
    assert [(o["type"], o["price"], o["timeInForce"]) for o in resting] == [("LIMIT", "29000.00", "GTC")]
    assert [(p.qty, p.entry_price) for p in tap.of(PositionOpened)] == [(0.01, 29_000.0)]  # type: ignore[attr-defined]
    assert exits == [("STOP_MARKET", "28500.00"), ("TAKE_PROFIT_MARKET", "31000.00")]
    assert [(c.reason, c.exit_price) for c in tap.of(PositionClosed)] == [("take_profit", 31_100.0)]  # type: ignore[attr-defined]
    assert any(u.status == "closed" and u.filled_qty == 0.01 for u in tap.of(OrderUpdated))  # type: ignore[attr-defined]
    assert v.positions["BTCUSDT"] == 0


async def test_on_bybit_the_bracket_rides_on_the_limit_and_the_venue_closes_the_position_at_the_target() -> None:
    async with bybit_venue() as v:
        clock = LiveClock()
        risk = RiskConfig(order_qty=0.01, stop_loss_pct=2.0, reconcile_every=1000, reconcile_interval_s=3600)
        config = Config(symbols=[BTC], interval="1s", exchange=bybit_config(), risk=risk)
        exchange = make_exchange(config.exchange, clock)
        assert isinstance(exchange, CcxtExchange)
        v.point(exchange.ccxt)
        tap = Tap()
        parts = [tap, *build_pipeline(config, clock, exchange), OrderStream(exchange, config.symbols, clock)]
        async with Kernel(config, clock=clock, components=parts) as kernel:
            assert await _until(lambda: any(s.private for s in v.streams.values()) and "order" in v.subscriptions)
            await kernel.publish(
                SignalFired(
                    ts_ns=clock.now_ns(),
                    strategy="test",
                    exchange="bybit",
                    symbol=BTC,
                    side="buy",
                    price=30_000.0,
                    stop_price=28_500.0,
                    reason="test",
                    candle_open_time_ms=clock.now_ms() // 1000 * 1000,
                    order_type="limit",
                    limit_price=29_000.0,
                    take_profit_price=31_000.0,
                )
            )
            assert await _until(lambda: bool(tap.of(OrderPlaced)))
            await v.move_price(28_900.0)
            assert await _until(lambda: bool(tap.of(SLUpdated)))
            exits = sorted((o["stopOrderType"], o["triggerPrice"]) for o in v.orders.values() if o["stopOrderType"])
            await v.move_price(31_100.0)
            assert await _until(lambda: bool(tap.of(PositionClosed)))
            await kernel.stop("test done")
        await exchange.close()
    [entry] = [b for b in v.created if b.get("orderType") == "Limit"]
    assert {k: entry[k] for k in ("price", "stopLoss", "takeProfit", "tpslMode")} == {
        "price": "29000",
        "stopLoss": "28500",
        "takeProfit": "31000",
        "tpslMode": "Full",
    }
    assert len(v.created) == 1  # no stop or take-profit placed after the fill: both rode on the entry
    assert [(p.qty, p.entry_price) for p in tap.of(PositionOpened)] == [(0.01, 29_000.0)]  # type: ignore[attr-defined]
    assert exits == [("StopLoss", "28500"), ("TakeProfit", "31000")]
    # Found flat from the stream; the position's take-profit (listed as position-tp) has the fill.
    assert [(c.reason, c.exit_price, c.qty) for c in tap.of(PositionClosed)] == [  # type: ignore[attr-defined]
        ("take_profit", 31_100.0, 0.01)
    ]
    assert v.positions["BTCUSDT"] == 0
    assert [o for o in v.orders.values() if o["orderStatus"] in ("New", "Untriggered")] == []
