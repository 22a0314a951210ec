"""Never a position without its stop: real handlers and the real Binance adapter over loopback HTTP."""

from __future__ import annotations

import pytest

from tests.adapters.test_adapters_wire import _config
from tests.pipeline.harness import Tap
from twinstar.adapters.binance import BinanceUsdm
from twinstar.bus.bus import Bus
from twinstar.bus.events import EmergencyExit, OrderPlaced, PositionClosed, SignalFired, SLUpdated, SLUpdateFailed
from twinstar.clock import SimClock
from twinstar.config import ExecutionConfig, RiskConfig
from twinstar.handlers.execution import ExecutionHandler
from twinstar.handlers.position import PositionHandler
from twinstar.testing import Failure, Venue, venue

pytestmark = pytest.mark.anyio
SIGNAL = SignalFired(
    ts_ns=1,
    strategy="t",
    exchange="binanceusdm",
    symbol="BTC/USDT:USDT",
    side="buy",
    price=30_000.0,
    stop_price=29_000.0,
    reason="test",
    candle_open_time_ms=1_700_000_000_000,
)


async def _buy(v: Venue) -> Tap:
    clock = SimClock(0, autojump=True)  # retries and backoffs take no real time
    adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
    v.point(adapter.ccxt)
    bus = Bus(clock, mode="replay")
    tap = Tap()
    tap.attach(bus)
    PositionHandler(adapter, clock, RiskConfig(order_qty=0.1)).attach(bus)
    ExecutionHandler(adapter, clock, ExecutionConfig(), RiskConfig(order_qty=0.1)).attach(bus)
    try:
        await adapter.ccxt.load_markets()
        await bus.publish(SIGNAL)
    finally:
        await adapter.close()
    return tap


async def test_a_partial_fill_gets_a_stop_for_exactly_what_filled() -> None:
    async with venue() as v:
        v.fill_ratio = 0.4
        tap = await _buy(v)
    [placed] = tap.of(OrderPlaced)
    assert (placed.requested_qty, placed.filled_qty, placed.partial) == (0.1, 0.04, True)  # type: ignore[attr-defined]
    [stop] = v.algo_orders.values()
    assert (stop["orderType"], stop["side"], stop["quantity"], stop["triggerPrice"]) == (
        "STOP_MARKET",
        "SELL",
        "0.040",  # as Binance writes it: the symbol's quantity and price precision
        "29000.00",
    )
    assert [e.qty for e in tap.of(SLUpdated)] == [0.04]  # type: ignore[attr-defined]


async def test_a_stop_the_venue_keeps_rejecting_ends_in_an_emergency_exit_on_the_venue() -> None:
    async with venue() as v:
        for _ in range(4):  # the first try and all three retries
            v.failures.append(
                Failure(
                    status=400,
                    body={"code": -2021, "msg": "Order would immediately trigger."},
                    path="/fapi/v1/algoOrder",
                    method="POST",  # each refusal is "unknown" to ccxt, so the stop is looked up (GET) in between
                )
            )
        tap = await _buy(v)
    [failed] = tap.of(SLUpdateFailed)
    assert failed.attempts == 4  # type: ignore[attr-defined]
    assert [e.reason for e in tap.of(EmergencyExit)] == ["no stop-loss could be placed"]  # type: ignore[attr-defined]
    assert [e.reason for e in tap.of(PositionClosed)] == ["emergency_exit"]  # type: ignore[attr-defined]
    assert v.positions == {"BTCUSDT": 0.0}  # flat on the venue, not just in our books
    sides = [(o["side"], o["reduceOnly"]) for o in v.orders.values()]
    assert sides == [("BUY", False), ("SELL", True)]
    assert v.algo_orders == {}
