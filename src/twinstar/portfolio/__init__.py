"""Several symbols in one backtest: one account, every symbol's candles in time order, statistics for the whole.

`run_portfolio` (`twinstar.portfolio.runner`) trades each symbol's candles (one
file per symbol, or one file with a `symbol` column, `twinstar.portfolio.sources`)
through one kernel with one simulated account, marks every open position at its
symbol's latest close for the portfolio's equity, and breaks the figures down by
symbol. The package itself imports nothing, so `python -m twinstar --help`
registers the `portfolio` command without loading polars.
"""
