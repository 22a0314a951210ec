"""Backtests from data files: loading, the checks before the first trade, and the runner."""

from __future__ import annotations

from twinstar.backtest.checks import DataReport as DataReport
from twinstar.backtest.runner import BacktestResult as BacktestResult
from twinstar.backtest.runner import CheckedData as CheckedData
from twinstar.backtest.runner import check_data as check_data
from twinstar.backtest.runner import run_backtest as run_backtest
from twinstar.backtest.runner import run_checked as run_checked
from twinstar.backtest.source import DataSource as DataSource

__all__ = ["BacktestResult", "CheckedData", "DataReport", "DataSource", "check_data", "run_backtest", "run_checked"]
