"""Handlers: strategy, execution, position and storage, wired by `build_pipeline`."""

from __future__ import annotations

from twinstar.adapters.base import Exchange
from twinstar.clock import Clock
from twinstar.config import Config
from twinstar.handlers.execution import ExecutionHandler
from twinstar.handlers.journal import Journal
from twinstar.handlers.position import PositionHandler
from twinstar.handlers.strategy import StrategyHandler
from twinstar.kernel import Component


def build_pipeline(
    config: Config, clock: Clock, exchange: Exchange, *, journal: Journal | None = None
) -> list[Component]:
    """Return the trading components in subscription order.

    Execution and positions share one order-intent `journal` (in memory when
    none is given: paper sessions and backtests have nothing to recover).

    The exchange first when it is a component (the simulator moves its market
    on each candle before anyone looks), then positions (stop fills are
    booked before a new signal is acted on), strategy, execution.
    """
    parts: list[Component] = []
    if isinstance(exchange, Component):
        parts.append(exchange)
    journal = journal if journal is not None else Journal()
    parts += [
        PositionHandler(exchange, clock, config.risk, journal=journal, symbols=config.symbols),
        StrategyHandler(config.strategy.name, dict(config.strategy.params), clock),
        ExecutionHandler(exchange, clock, config.execution, config.risk, journal=journal),
    ]
    return parts
