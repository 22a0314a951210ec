"""Live: a routine position check never stands between a closed candle and its orders.

Real handlers, real ccxt and the loopback Binance USD-M venue; the candles are
published straight into a live kernel, each just closed by the kernel's clock.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.pipeline.harness import Tap
from twinstar import Config, Kernel
from twinstar.adapters import make_exchange
from twinstar.bus.events import CandleClosed, OrderPlaced, PositionOpened
from twinstar.clock import LiveClock
from twinstar.handlers import build_pipeline
from twinstar.testing.venue import venue

pytestmark = pytest.mark.anyio
SECOND_MS = 1_000
# sma_cross 2/3: a buy on the 4th close, a sell on the 6th; no candle reaches the 2% stop.
CLOSES = [100.0, 100.0, 99.0, 102.0, 101.5, 100.5]


async def test_the_routine_check_waits_until_the_candles_orders_went_out() -> None:
    os.environ["TW_CHECK_KEY"], os.environ["TW_CHECK_SECRET"] = "check-key", "check-secret"
    async with venue() as v:
        config = Config.from_toml(
            'symbols = ["BTC/USDT:USDT"]\ninterval = "1s"\n'
            '[exchange]\nid = "binanceusdm"\napi_key_env = "TW_CHECK_KEY"\napi_secret_env = "TW_CHECK_SECRET"\n'
            f'api_base_url = "{v.base}"\noptions = {{ fetchCurrencies = false }}\n'
            '[strategy]\nname = "sma_cross"\nparams = { fast = 2, slow = 3 }\n'
            "[risk]\norder_qty = 0.01\nstop_loss_pct = 2.0\nreconcile_every = 1\ntrailing_stop = false\n"
        )
        clock = LiveClock()
        exchange = make_exchange(config.exchange, clock)
        tap = Tap()
        parts = [tap, *build_pipeline(config, clock, exchange)]
        marks: list[int] = []
        start_ms = clock.now_ms() // SECOND_MS * SECOND_MS
        async with Kernel(config, clock=clock, components=parts) as kernel:
            for i, close in enumerate(CLOSES):
                open_ms = start_ms + i * SECOND_MS
                # Put the kernel's clock just after this candle's close: the candle is fresh, never warm-up.
                clock.set_offset_ms(clock.offset_ms + (open_ms + SECOND_MS + 50 - clock.now_ms()))
                v.price = close
                marks.append(len(v.requests))
                await kernel.publish(
                    CandleClosed(
                        ts_ns=clock.now_ns(),
                        exchange="binanceusdm",
                        symbol="BTC/USDT:USDT",
                        interval="1s",
                        open_time_ms=open_ms,
                        open=close,
                        high=close,
                        low=close,
                        close=close,
                        volume=1.0,
                    )
                )
                await kernel.bus.idle()
                for _ in range(100):  # the routine check runs in its own task once the bus is idle
                    await asyncio.sleep(0.01)
                    if i < 4 or ("GET", "/fapi/v3/positionRisk") in v.requests[marks[-1] :]:
                        break
            await kernel.stop("test done")
        await exchange.close()
    opened = [e.side for e in tap.of(PositionOpened)]  # type: ignore[attr-defined]
    assert opened == ["long", "short"]
    assert [(e.side, e.intent) for e in tap.of(OrderPlaced)] == [  # type: ignore[attr-defined]
        ("buy", "open"),
        ("sell", "close"),
        ("sell", "open"),
    ]
    after_sell_candle = [r for r in v.requests[marks[5] :] if r[0] != "DELETE"]
    # The sell candle was due a routine check (reconcile_every = 1); it came only after both orders and the stop.
    assert after_sell_candle[:3] == [
        ("POST", "/fapi/v1/order"),
        ("POST", "/fapi/v1/order"),
        ("POST", "/fapi/v1/algoOrder"),
    ]
    assert ("GET", "/fapi/v3/positionRisk") in after_sell_candle[3:]
    # The candle before, with no signal, got its routine check too.
    assert ("GET", "/fapi/v3/positionRisk") in v.requests[marks[4] : marks[5]]
