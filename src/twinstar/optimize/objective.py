"""What a trial maximises: one figure of the backtest's statistics."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from twinstar.report.statistics import Statistics

# Objective name -> the Statistics field it reads; every one is better when larger.
OBJECTIVES: Final = {
    "sharpe": "sharpe",
    "sortino": "sortino",
    "calmar": "calmar",
    "return": "return_pct",
    "net_pnl": "net_pnl",
    "profit_factor": "profit_factor",
    "expectancy": "expectancy_pct",
}


def figure(statistics: Statistics, objective: str) -> float | None:
    """Return the objective's figure, or None where the run has none (no trades, no volatility)."""
    value = getattr(statistics, OBJECTIVES[objective])
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def score(statistics: Statistics, objective: str) -> float:
    """The value Optuna maximises: a run without the figure scores worst, never NaN (a failed trial)."""
    value = figure(statistics, objective)
    return -math.inf if value is None else value
