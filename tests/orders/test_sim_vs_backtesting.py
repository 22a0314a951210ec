"""The simulator fills limit entries and bracket exits where backtesting.py fills them, on the same bars and orders.

Both sides run the same plan on the bundled Coinbase BTC-USD hours: every
`EVERY` bars, when flat, a limit entry goes in 1% away from the close (buys
and sells in turn, replacing one still resting), with a stop-loss 5% and a
take-profit 3% either side of the limit (wide enough that no stop would
trigger at once, which a venue refuses). backtesting.py takes the bracket on
the order (`sl`, `tp`); TwinStar's side places both exits on the fill, as the
kernel does on a venue that cannot attach them, and cancels nothing by hand:
the simulator's one-cancels-the-other does it. Every trade's entry and exit
bar and price must agree. The hourly data is continuous, so a second case
runs bars made to meet the other rules: a candle reaching both exits, gaps
through a take-profit, a limit and a stop.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
from bench.peers import candle_events

from twinstar.adapters.base import OrderResult
from twinstar.adapters.sim import SimExchange
from twinstar.bus.events import CandleClosed, Side
from twinstar.candles import load_candles
from twinstar.clock import SimClock
from twinstar.config import SimConfig
from twinstar.data import bundled_candles_path

pytestmark = pytest.mark.anyio
BARS = 1_800
EVERY = 25
AWAY, STOP, TARGET = 0.01, 0.05, 0.03
Trade = tuple[int, float, int, float]  # entry bar, entry price, exit bar, exit price
Order = tuple[Side, float, float, float]  # side, limit, stop-loss, take-profit
Plan = Callable[[int, float], Order | None]


def _plan(bar: int, close: float) -> Order | None:
    """The order both sides place at `bar`'s close: side, limit, stop, take-profit."""
    if bar == 0 or bar % EVERY:  # backtesting.py calls `next` from the second bar on
        return None
    side: Side = "buy" if bar // EVERY % 2 == 0 else "sell"
    sign = 1 if side == "buy" else -1
    limit = round(close * (1 - sign * AWAY), 2)
    return side, limit, round(limit * (1 - sign * STOP), 2), round(limit * (1 + sign * TARGET), 2)


async def _twinstar(candles: list[CandleClosed], plan_at: Plan = _plan) -> list[Trade]:
    clock = SimClock(candles[0].ts_ns)
    sim = SimExchange(clock, SimConfig(initial_balance=1e9, taker_fee=0.0, limit_fill="touch"))
    trades: list[Trade] = []
    entry: tuple[str, float, float] | None = None  # resting entry: client id, stop, take-profit
    held: tuple[int, float] | None = None  # open position: entry bar, entry price
    symbol = candles[0].symbol
    for bar, candle in enumerate(candles):
        await clock.advance_to(candle.ts_ns)
        sim.on_candle(candle)
        if held is not None and await sim.fetch_position(symbol) is None:
            exit_price = next(r.avg_price for r in await _exit_fills(sim) if r.filled_qty > 0)
            trades.append((held[0], held[1], bar, exit_price))
            held = None
        if entry is not None:
            found = await sim.fetch_order(symbol, entry[0])
            if found.status == "filled":
                position = await sim.fetch_position(symbol)
                assert position is not None
                stop = await sim.update_stop_loss(symbol, position.side, 1.0, entry[1], client_order_id=f"s{bar}")
                profit = await sim.place_take_profit(symbol, position.side, 1.0, entry[2], client_order_id=f"t{bar}")
                assert stop.ok and profit.ok, (stop, profit)
                held, entry = (bar, found.avg_price), None
        plan = plan_at(bar, candle.close)
        if plan is not None and held is None:
            if entry is not None:  # unfilled since the last plan: replaced
                [resting] = await sim.fetch_open_orders(symbol)
                assert (await sim.cancel_order(symbol, resting)).status == "canceled"
            side, limit, stop_price, target = plan
            placed = await sim.place_limit_order(symbol, side, 1.0, limit, client_order_id=f"e{bar}")
            assert placed.ok and placed.status == "open"
            entry = (f"e{bar}", stop_price, target)
    return trades


async def _exit_fills(sim: SimExchange) -> list[OrderResult]:
    """The exits that filled last (their client ids start with s or t), newest first."""
    orders: dict[str, OrderResult] = sim._orders
    return [r for cid, r in reversed(orders.items()) if cid[0] in "st" and r.status == "filled"][:1]


def _backtesting_py(candles: list[CandleClosed], plan_at: Plan = _plan) -> list[Trade]:
    import pandas as pd
    from backtesting import Backtest, Strategy

    class Brackets(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            pass

        def next(self) -> None:
            bar = len(self.data) - 1
            plan = plan_at(bar, float(self.data.Close[-1]))
            if plan is None or self.position:
                return
            for resting in self.orders:  # unfilled since the last plan: replaced
                resting.cancel()
            side, limit, stop_price, target = plan
            order = self.buy if side == "buy" else self.sell
            order(size=1, limit=limit, sl=stop_price, tp=target)

    data = pd.DataFrame(
        {
            "Open": [c.open for c in candles],
            "High": [c.high for c in candles],
            "Low": [c.low for c in candles],
            "Close": [c.close for c in candles],
            "Volume": [c.volume for c in candles],
        },
        index=pd.to_datetime([c.open_time_ms for c in candles], unit="ms"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its UserWarnings about progress output and same-bar exits
        stats: Any = Backtest(data, Brackets, cash=1e9, commission=0.0).run()
    return [
        (int(t.EntryBar), float(t.EntryPrice), int(t.ExitBar), float(t.ExitPrice)) for t in stats._trades.itertuples()
    ]


async def test_limit_entries_and_bracket_exits_fill_on_the_same_bars_at_the_same_prices() -> None:
    frame = load_candles(bundled_candles_path()).frame.head(BARS)
    candles = candle_events(frame, interval_ms=3_600_000)
    ours = await _twinstar(candles)
    peer = _backtesting_py(candles)
    assert len(ours) > 25
    # backtesting.py closes what is still open at the end; compare the trades both closed.
    assert ours == peer[: len(ours)]
    assert len(peer) - len(ours) <= 1


# Bars made to meet every rule: a limit filling inside a bar, one candle reaching both exits, a take-profit
# the market gaps through, a limit entry on a gap and a stop gapped through (open, high, low, close).
RULE_BARS = [
    (100.0, 100.5, 99.5, 100.0),
    (100.0, 100.5, 99.5, 100.0),  # 1: buy limit 99, stop 95, take-profit 103
    (100.0, 100.2, 98.5, 99.2),  # 2: the limit fills at 99
    (99.2, 100.0, 98.8, 99.5),
    (99.5, 104.0, 94.0, 99.0),  # 4: both exits in one candle: the stop, at 95
    (99.0, 100.0, 98.5, 99.5),  # 5: sell limit 101, stop 106, take-profit 97
    (100.0, 101.5, 99.8, 100.5),  # 6: the limit fills at 101
    (96.0, 96.5, 95.0, 95.5),  # 7: gaps below the take-profit: filled at the open, 96
    (95.5, 96.0, 95.0, 95.5),
    (95.5, 100.0, 95.5, 99.5),  # 9: buy limit 99, stop 95, take-profit 103
    (98.0, 99.0, 97.5, 98.5),  # 10: opens below the limit: filled at the open, 98
    (94.0, 94.5, 93.0, 93.5),  # 11: gaps through the stop: filled at the open, 94
    (93.5, 94.0, 93.0, 93.5),
]
RULE_ORDERS: dict[int, Order] = {
    1: ("buy", 99.0, 95.0, 103.0),
    5: ("sell", 101.0, 106.0, 97.0),
    9: ("buy", 99.0, 95.0, 103.0),
}


async def test_same_candle_exits_and_gaps_fill_as_backtesting_py_fills_them() -> None:
    candles = [
        CandleClosed(
            ts_ns=(i + 1) * 3_600_000_000_000,
            exchange="sim",
            symbol="SIM/USD",
            interval="1h",
            open_time_ms=i * 3_600_000,
            open=o,
            high=h,
            low=lo,
            close=c,
            volume=1.0,
        )
        for i, (o, h, lo, c) in enumerate(RULE_BARS)
    ]

    def plan_at(bar: int, close: float) -> Order | None:
        return RULE_ORDERS.get(bar)

    ours = await _twinstar(candles, plan_at)
    assert ours == [(2, 99.0, 4, 95.0), (6, 101.0, 7, 96.0), (10, 98.0, 11, 94.0)]
    assert _backtesting_py(candles, plan_at) == ours
