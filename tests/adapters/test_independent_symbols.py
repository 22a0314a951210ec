"""One symbol's backoff never holds another's orders: per-symbol mailboxes in execution, over the wire.

The loopback Binance USD-M venue answers BTC's order with a 429; execution
waits out the rate-limit backoff before sending it again. ETH's signal comes
right after BTC's: with one mailbox per symbol its order goes out during
BTC's wait; with one mailbox for all (the control) it waits behind BTC.
"""

from __future__ import annotations

import asyncio

import anyio
import pytest

from tests.adapters.test_adapters_wire import _config
from tests.pipeline.harness import Tap
from twinstar.adapters.binance import BinanceUsdm
from twinstar.bus.events import OrderPlaced, SignalFired
from twinstar.clock import LiveClock
from twinstar.config import ExecutionConfig, RiskConfig
from twinstar.handlers.execution import ExecutionHandler
from twinstar.kernel import Kernel
from twinstar.testing import Failure, venue

pytestmark = pytest.mark.anyio
SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT")


def _signal(symbol: str, now_ms: int) -> SignalFired:
    return SignalFired(
        ts_ns=now_ms * 1_000_000,
        strategy="t",
        exchange="binanceusdm",
        symbol=symbol,
        side="buy",
        price=30_000.0,
        stop_price=0.0,
        reason="test",
        candle_open_time_ms=now_ms // 60_000 * 60_000,
    )


@pytest.mark.parametrize("per_symbol", [True, False])
async def test_symbol_b_s_order_goes_out_during_symbol_a_s_backoff(per_symbol: bool) -> None:
    async with venue() as v:
        clock = LiveClock()
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        await adapter.ccxt.load_markets()
        v.failures.append(
            Failure(status=429, body={"code": -1003, "msg": "Too many requests."}, path="/fapi/v1/order", method="POST")
        )
        handler = ExecutionHandler(
            adapter,
            clock,
            ExecutionConfig(rate_limit_backoff_s=[1.5]),
            RiskConfig(order_qty=0.01),
            symbols=SYMBOLS if per_symbol else (),
        )
        tap = Tap()
        try:
            async with Kernel(clock=clock, components=[tap, handler]) as kernel:
                for symbol in SYMBOLS:  # BTC first: its order meets the 429
                    await kernel.publish(_signal(symbol, clock.now_ms()))
                with anyio.move_on_after(20):  # bounds the wait, asserts nothing about time
                    while len(tap.of(OrderPlaced)) < 2:  # noqa: ASYNC110 (the tap is polled, it has no event)
                        await asyncio.sleep(0.02)
                await kernel.stop("test done")
        finally:
            await adapter.close()
    filled_in_order = [o["symbol"] for o in v.orders_by_id.values()]
    assert filled_in_order == (["ETHUSDT", "BTCUSDT"] if per_symbol else ["BTCUSDT", "ETHUSDT"])
    assert sorted(p.symbol for p in tap.of(OrderPlaced)) == sorted(SYMBOLS)  # type: ignore[attr-defined]
