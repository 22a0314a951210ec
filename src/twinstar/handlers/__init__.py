"""Handlers: strategy, execution, position and storage, wired by `build_pipeline`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from twinstar.adapters.base import Exchange
from twinstar.clock import Clock
from twinstar.config import Config
from twinstar.handlers.brackets import BracketHandler
from twinstar.handlers.execution import ExecutionHandler
from twinstar.handlers.journal import Journal
from twinstar.handlers.position import PositionHandler
from twinstar.handlers.strategy import StrategyHandler
from twinstar.kernel import Component


class VenueTrading(NamedTuple):
    """What one venue's execution and position handlers run on."""

    exchange: Exchange
    symbols: Sequence[str]
    clock: Clock  # the venue's own (its exchange-time offset): stamps, sleeps and order expiry
    journal: Journal | None = None  # in memory when None: paper sessions and backtests have nothing to recover


def build_pipeline(
    config: Config, clock: Clock, exchange: Exchange, *, journal: Journal | None = None
) -> list[Component]:
    """The trading components of a kernel with one venue, `exchange`, trading `config.symbols`."""
    return build_trading(config, clock, [VenueTrading(exchange, config.symbols, clock, journal)])


def build_trading(config: Config, clock: Clock, venues: Sequence[VenueTrading]) -> list[Component]:
    """Return the trading components of every venue in subscription order.

    One strategy handler for all (it keeps one strategy per venue, symbol and
    interval); one position and one execution handler per venue, sharing that
    venue's order-intent journal and each acting only on its own venue's events.

    Each exchange first when it is a component (the simulator moves its market
    on each candle before anyone looks), its bracket handler (a resting entry's
    or take-profit's fill is published before positions look), then positions (stop fills are
    booked before a new signal is acted on), strategy, execution.
    """
    markets: list[Component] = []
    positions: list[Component] = []
    executions: list[Component] = []
    for venue in venues:
        if isinstance(venue.exchange, Component):
            markets.append(venue.exchange)
        exchange, own_clock = venue.exchange, venue.clock
        journal = venue.journal if venue.journal is not None else Journal()
        # A resting entry's fill is known before positions act on the candle.
        markets.append(BracketHandler(exchange, own_clock, resting_on_restart=config.orders.resting_on_restart))
        positions.append(
            PositionHandler(
                exchange,
                own_clock,
                config.risk,
                journal=journal,
                symbols=venue.symbols,
                on_feed_stopped=config.feed.on_stopped,
            )
        )
        executions.append(
            ExecutionHandler(exchange, own_clock, config.execution, config.risk, journal=journal, symbols=venue.symbols)
        )
    strategy = StrategyHandler(
        config.strategy.name, dict(config.strategy.params), clock, trade_late_candles=config.feed.trade_late_candles
    )
    return [*markets, *positions, strategy, *executions]
