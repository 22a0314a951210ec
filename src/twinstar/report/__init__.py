"""Reporting: statistics, trade list, equity chart and terminal output of a run."""

from __future__ import annotations

from twinstar.report.equity import EquityCurve as EquityCurve
from twinstar.report.run_report import ReportFiles as ReportFiles
from twinstar.report.run_report import RunReport as RunReport
from twinstar.report.statistics import Statistics as Statistics
from twinstar.report.statistics import compute_statistics as compute_statistics
from twinstar.report.trades import TradeBook as TradeBook

__all__ = ["EquityCurve", "ReportFiles", "RunReport", "Statistics", "TradeBook", "compute_statistics"]
