"""Several symbols in one backtest: one account, every symbol's candles in time order, statistics for the whole.

`run_portfolio` trades each symbol's candles (one file per symbol, or one file
with a `symbol` column) through one kernel with one simulated account, marks
every open position at its symbol's latest close for the portfolio's equity,
and breaks the figures down by symbol.
"""

from __future__ import annotations

from twinstar.portfolio.runner import PortfolioResult as PortfolioResult
from twinstar.portfolio.runner import run_portfolio as run_portfolio
from twinstar.portfolio.sources import SymbolData as SymbolData
from twinstar.portfolio.sources import load_symbols as load_symbols

__all__ = ["PortfolioResult", "SymbolData", "load_symbols", "run_portfolio"]
