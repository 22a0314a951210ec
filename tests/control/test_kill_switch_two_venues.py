"""The kill switch across the loopback Binance and Bybit venues in one live kernel: total notional, flatten all.

Real ccxt to both loopback venues, the production `live_components` with a
`[risk]` limit on total notional; candles are published straight into the
live kernel (the feeds are left out), so both venues open on the same candle:
together they exceed the limit, the breach blocks entries and flattens both.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.pipeline.harness import Tap
from twinstar import Config, Kernel
from twinstar.adapters.feeds import PollingCandleFeed
from twinstar.bus.events import (
    CandleClosed,
    FlattenRequested,
    HandlerFailed,
    OrderPlaced,
    PositionClosed,
    PositionOpened,
    RiskLimitBreached,
    SignalFired,
)
from twinstar.clock import LiveClock
from twinstar.control.risk import RiskMonitor
from twinstar.live import live_components
from twinstar.testing import bybit_venue, venue

pytestmark = pytest.mark.anyio
BTC = "BTC/USDT:USDT"
# sma_cross 2/3 (thousands): Binance buys on the 4th candle and would reverse on the 6th; Bybit sells on the 4th.
BINANCE = [100.0, 100.0, 99.0, 102.0, 102.0, 101.0]
BYBIT = [100.0, 100.0, 101.0, 98.0, 98.0, 98.0]


def _block(name: str, base: str) -> str:
    prefix = f"TW_KILL_{name.upper()}"
    os.environ[f"{prefix}_KEY"], os.environ[f"{prefix}_SECRET"] = f"kill-key-{uuid.uuid4().hex}", "kill-secret"
    return (
        f'[[exchanges]]\nid = "{name}"\nsymbols = ["{BTC}"]\napi_key_env = "{prefix}_KEY"\n'
        f'api_secret_env = "{prefix}_SECRET"\napi_base_url = "{base}"\ncandle_feed = "poll"\n'
        "options = { fetchCurrencies = false }\n"
    )


async def _until(check: Callable[[], bool], what: str) -> None:
    for _ in range(200):  # up to 20 s
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {what}")


async def test_total_notional_over_both_venues_breaches_and_flattens_both(tmp_path: Path) -> None:
    async with venue() as binance, bybit_venue() as bybit:
        config = Config.from_toml(
            'interval = "1s"\n'
            + _block("binanceusdm", binance.base)
            + _block("bybit", bybit.base)
            + '[strategy]\nname = "sma_cross"\nparams = { fast = 2, slow = 3 }\n'
            "[risk]\norder_qty = 0.01\nstop_loss_pct = 2.0\nreconcile_every = 1000\ntrailing_stop = false\n"
            "max_notional_total = 1500.0\nflatten_on_breach = true\n"
            f'[journal]\ndir = "{tmp_path / "state"}"\n[kernel]\ndrain_timeout_s = 5\n'
        )
        clock = LiveClock()
        parts = [p for p in live_components(config, clock, run_dir=tmp_path) if not isinstance(p, PollingCandleFeed)]
        assert len([p for p in parts if isinstance(p, RiskMonitor)]) == 1
        tap = Tap()
        async with Kernel(config, clock=clock, components=[tap, *parts]) as kernel:
            start_ms = clock.now_ms() // 1_000 * 1_000
            for i in range(len(BINANCE)):
                open_ms = start_ms + i * 1_000
                clock.set_offset_ms(clock.offset_ms + (open_ms + 1_050 - clock.now_ms()))  # just after its close
                binance.offset_ms = round(clock.offset_ms)
                for name, v, prices in (("binanceusdm", binance, BINANCE), ("bybit", bybit, BYBIT)):
                    v.price = prices[i] * 1_000
                    close = prices[i] * 1_000
                    await kernel.publish(
                        CandleClosed(
                            ts_ns=clock.now_ns(),
                            exchange=name,
                            symbol=BTC,
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
                if i == 3:  # both entries filled: together over the limit
                    await _until(lambda: len(tap.of(PositionClosed)) == 2, "both positions flattened")
            await kernel.bus.idle()
            await kernel.stop("test done")
    assert tap.of(HandlerFailed) == []
    [breach] = tap.of(RiskLimitBreached)
    assert (breach.limit, breach.threshold) == ("notional_total", 1500.0)  # type: ignore[attr-defined]
    assert breach.value == pytest.approx(1020.0 + 980.0)  # type: ignore[attr-defined]
    assert [(f.exchange, f.symbol, f.source) for f in tap.of(FlattenRequested)] == [("", "", "risk")]  # type: ignore[attr-defined]
    closed = sorted((e.exchange, e.reason) for e in tap.of(PositionClosed))  # type: ignore[attr-defined]
    assert closed == [("binanceusdm", "flatten"), ("bybit", "flatten")]
    assert len(tap.of(PositionOpened)) == 2  # the 6th candle's reversal opened nothing: entries stay blocked
    opens = [o for o in tap.of(OrderPlaced) if o.intent == "open"]  # type: ignore[attr-defined]
    assert sorted(o.exchange for o in opens) == ["binanceusdm", "bybit"]  # type: ignore[attr-defined]
    assert binance.positions.get("BTCUSDT", 0.0) == 0.0 and bybit.positions.get("BTCUSDT", 0.0) == 0.0
    signals = [(e.exchange, e.side) for e in tap.of(SignalFired)]  # type: ignore[attr-defined]
    assert sorted(signals) == [("binanceusdm", "buy"), ("binanceusdm", "sell"), ("bybit", "sell")]
