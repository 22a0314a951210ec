"""Run a portfolio backtest: every symbol's candles merged in time order through one kernel and one account."""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import msgspec
import polars as pl

from twinstar.backtest.source import input_events
from twinstar.clock import SimClock
from twinstar.config import Config
from twinstar.intervals import interval_ms
from twinstar.kernel import Component, Kernel
from twinstar.portfolio.curve import PortfolioCurve
from twinstar.portfolio.sources import SymbolData
from twinstar.report.statistics import Statistics, compute_statistics
from twinstar.report.trades import TradeBook


class PortfolioResult(msgspec.Struct, frozen=True, kw_only=True):
    """The whole account's statistics, each symbol's own (its PnL over the same initial equity), the trades."""

    summary: Statistics
    by_symbol: dict[str, Statistics]
    trades: pl.DataFrame
    config: Config  # as run: every symbol, the data's interval
    curve: pl.DataFrame  # the account's equity (`time_ms`, `equity`) and the buy-and-hold index (`close`)


async def run_portfolio(config: Config, symbols: Sequence[SymbolData]) -> PortfolioResult:
    """Backtest `config`'s strategy on every symbol of `symbols` at once, from one simulated account.

    Candles of the same close time go in the order of `symbols`. The sizing
    rules apply per entry (`[risk]`: by default the equity is shared equally
    between one position slot per symbol), as in a live many-symbol kernel.
    """
    from twinstar.session import sim_components

    if config.exchanges:
        raise ValueError("a portfolio backtest runs on the one simulated [exchange], not on [[exchanges]] blocks")
    if not symbols:
        raise ValueError("a portfolio backtest needs at least one symbol")
    interval = symbols[0].report.interval
    config = msgspec.structs.replace(config, symbols=[data.symbol for data in symbols], interval=interval)
    exchange = config.venues()[0].name
    gaps = config.data.gaps
    streams = [
        input_events(data.frame, exchange, data.symbol, interval, reset_at_gaps=gaps == "reset") for data in symbols
    ]
    first_open = min(int(data.frame["open_time_ms"][0]) for data in symbols)
    clock = SimClock((first_open + interval_ms(interval)) * 1_000_000, autojump=True)
    curve, book = PortfolioCurve(config.sim.initial_balance), TradeBook()
    parts: list[Component] = [*sim_components(config, clock), curve, book]
    async with Kernel(config, clock=clock, components=parts, mode="replay") as kernel:
        emit, set_ns = kernel.bus.emit, clock.set_ns
        for event in heapq.merge(*streams, key=lambda event: event.ts_ns):  # stable: ties keep `symbols` order
            set_ns(event.ts_ns)
            pending = emit(event)
            if pending is not None:
                await pending
    trades = book.frame()
    initial = config.sim.initial_balance
    by_symbol = {
        data.symbol: compute_statistics(
            curve.symbol_frame(data.symbol), trades.filter(pl.col("symbol") == data.symbol), initial_equity=initial
        )
        for data in symbols
    }
    account = curve.frame()
    summary = compute_statistics(account, trades, initial_equity=initial)
    return PortfolioResult(summary=summary, by_symbol=by_symbol, trades=trades, config=config, curve=account)
