from __future__ import annotations

import pytest

from tests.kernel.helpers import candle
from tests.pipeline.harness import rig
from twinstar.bus.events import SignalFired
from twinstar.handlers.strategy import AtrBreakout, Signal, SmaCross, make_strategy

pytestmark = pytest.mark.anyio


def _feed(strategy: SmaCross | AtrBreakout, closes: list[float]) -> list[tuple[int, Signal]]:
    out = []
    for i, close in enumerate(closes):
        signal = strategy.on_candle(candle(i, close))
        if signal is not None:
            out.append((i, signal))
    return out


def test_sma_cross_signals_only_on_strict_crossovers() -> None:
    # fast(2) vs slow(4): below until candle 6, above until 9, then below; a flat start is no cross
    closes = [10.0] * 4 + [10.0, 9.0, 8.0, 7.0, 6.0, 7.0, 9.0, 11.0, 10.0, 8.0, 6.0]
    signals = _feed(SmaCross(fast=2, slow=4), closes)
    assert signals == [
        (10, Signal("buy", 0.0, "fast SMA crossed above slow")),
        (13, Signal("sell", 0.0, "fast SMA crossed below slow")),
    ]


def test_sma_cross_can_attach_a_percentage_stop() -> None:
    [(_, signal)] = _feed(SmaCross(fast=2, slow=4, stop_pct=2.0), [10.0, 9.0, 8.0, 7.0, 6.0, 7.0, 9.0])
    assert signal.stop_price == pytest.approx(9.0 * 0.98)


def test_atr_breakout_signals_with_an_atr_stop() -> None:
    closes = [100.0 + (i % 2) for i in range(30)] + [110.0]
    [(index, signal)] = _feed(AtrBreakout(lookback=10, atr_period=5, atr_mult=2.0), closes)
    assert index == 30 and signal.side == "buy"
    assert 100.0 < signal.stop_price < 110.0


def test_unknown_strategies_and_bad_parameters_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown strategy 'nope' \(known: atr_breakout, sma_cross\)"):
        make_strategy("nope", {})
    with pytest.raises(ValueError, match="unexpected keyword argument 'speed'"):
        make_strategy("sma_cross", {"speed": 3})
    with pytest.raises(ValueError, match="0 < fast < slow"):
        make_strategy("sma_cross", {"fast": 30, "slow": 10})


async def test_the_strategy_handler_publishes_signal_fired_for_each_series() -> None:
    async with rig(with_strategy=True) as r:
        for close in [20.0 - i * 0.1 for i in range(40)] + [40.0]:
            await r.candle(close)
        [signal] = r.tap.of(SignalFired)
        assert signal == SignalFired(
            ts_ns=r.clock.now_ns(),
            strategy="sma_cross",
            exchange="sim",
            symbol="BTC/USD",
            side="buy",
            price=40.0,
            stop_price=0.0,
            reason="fast SMA crossed above slow",
            candle_open_time_ms=41 * 60_000,
        )


async def test_signals_on_stale_warm_up_candles_are_not_published() -> None:
    async with rig(with_strategy=True) as r:
        closes = [20.0 - i * 0.1 for i in range(40)] + [40.0]
        r.clock.set_ns(10**15)  # "now" is long after these candles: they are history being warmed up
        for close in closes:
            r.minute += 1
            await r.kernel.publish(candle(r.minute, close))
        assert r.tap.of(SignalFired) == []
        handler = next(c for c in r.kernel.components if type(c).__name__ == "StrategyHandler")
        assert handler.stale_signals == 1  # type: ignore[attr-defined]
