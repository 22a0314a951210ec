"""Live: position upkeep (routine checks, trailing) never stands between a closed candle and its orders.

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
from twinstar.handlers.strategy import STRATEGIES
from twinstar.testing import Flip
from twinstar.testing.venue import Venue, venue

pytestmark = pytest.mark.anyio
SECOND_MS = 1_000


async def _session(v: Venue, strategy: str, risk: str, closes: list[float]) -> tuple[Tap, list[int]]:
    """Publish one fresh candle per close; return the events and where each candle's requests begin."""
    os.environ["TW_CHECK_KEY"], os.environ["TW_CHECK_SECRET"] = "check-key", "check-secret"
    config = Config.from_toml(
        'symbols = ["BTC/USDT:USDT"]\ninterval = "1s"\n'
        '[exchange]\nid = "binanceusdm"\napi_key_env = "TW_CHECK_KEY"\napi_secret_env = "TW_CHECK_SECRET"\n'
        f'api_base_url = "{v.base}"\noptions = {{ fetchCurrencies = false }}\n'
        f"[strategy]\n{strategy}\n[risk]\norder_qty = 0.01\nstop_loss_pct = 2.0\n{risk}\n"
    )
    clock = LiveClock()
    exchange = make_exchange(config.exchange, clock)
    tap = Tap()
    marks: list[int] = []
    start_ms = clock.now_ms() // SECOND_MS * SECOND_MS
    async with Kernel(config, clock=clock, components=[tap, *build_pipeline(config, clock, exchange)]) as kernel:
        for i, close in enumerate(closes):
            open_ms = start_ms + i * SECOND_MS
            # Put the kernel's clock just after this candle's close: the candle is fresh, never warm-up.
            clock.set_offset_ms(clock.offset_ms + (open_ms + SECOND_MS + 50 - clock.now_ms()))
            v.offset_ms = round(clock.offset_ms)  # the venue keeps the same time, or it refuses our stamps (-1021)
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
            await asyncio.sleep(0.2)  # upkeep runs in the position handler's own task once the bus is idle
            await kernel.bus.idle()
        await kernel.stop("test done")
    await exchange.close()
    return tap, marks


async def test_the_routine_check_waits_until_the_candles_orders_went_out() -> None:
    async with venue() as v:
        # sma_cross 2/3: a buy on the 4th close, a sell on the 6th; no candle reaches the 2% stop.
        closes = [100_000.0, 100_000.0, 99_000.0, 102_000.0, 101_500.0, 100_500.0]  # above BTCUSDT minPrice
        tap, marks = await _session(
            v,
            'name = "sma_cross"\nparams = { fast = 2, slow = 3 }',
            "reconcile_every = 1\ntrailing_stop = false",
            closes,
        )
    assert [e.side for e in tap.of(PositionOpened)] == ["long", "short"]  # type: ignore[attr-defined]
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


async def test_a_trailing_move_waits_for_the_reversal_and_is_dropped_when_the_position_is_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(STRATEGIES, "flip", Flip)
    async with venue() as v:
        # Rising closes: each long would trail its stop up, but every candle also reverses the position.
        tap, marks = await _session(v, 'name = "flip"', "reconcile_every = 1000", [100_000.0, 105_000.0, 110_000.0])
    assert [e.side for e in tap.of(PositionOpened)] == ["long", "short", "long"]  # type: ignore[attr-defined]
    reversal = [r for r in v.requests[marks[1] : marks[2]] if r[0] == "POST"]
    # The long opened at 100k would trail to 105k x 0.98 on this candle; it is closed by the same candle's sell
    # instead, so the only stop placed is the new short's.
    assert reversal == [("POST", "/fapi/v1/order"), ("POST", "/fapi/v1/order"), ("POST", "/fapi/v1/algoOrder")]
