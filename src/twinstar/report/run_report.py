"""A run's report: the equity curve and trade list it collects, and the files it leaves beside the recording."""

from __future__ import annotations

from pathlib import Path

import msgspec

from twinstar.atomic import write_bytes_atomically
from twinstar.bus.bus import Bus
from twinstar.report.chart import write_equity_chart
from twinstar.report.equity import EquityCurve
from twinstar.report.html import plotly_available, write_html_report
from twinstar.report.statistics import Statistics, compute_statistics
from twinstar.report.trades import TradeBook, write_trades


class ReportFiles(msgspec.Struct, frozen=True, kw_only=True):
    """Where `RunReport.write` put each file."""

    stats: str
    trades_parquet: str
    trades_csv: str
    chart: str


class RunReport:
    """Component that collects a run's equity and trades from its events and writes its report."""

    def __init__(self, initial_equity: float) -> None:
        self.curve = EquityCurve(initial_equity)
        self.trades = TradeBook()

    def attach(self, bus: Bus) -> None:
        """Subscribe the curve and the trade book."""
        self.curve.attach(bus)
        self.trades.attach(bus)

    def statistics(self) -> Statistics:
        """The run's statistics so far, positions still open marked at their last close."""
        return compute_statistics(self.curve.frame(), self.trades.frame(), initial_equity=self.curve.initial_equity)

    def write(self, folder: Path, *, title: str) -> tuple[Statistics, ReportFiles]:
        """Write `stats.json`, `trades.parquet`, `trades.csv` and the chart into `folder`.

        The chart is the HTML report (`report.html`) when plotly is installed,
        else the equity curve alone as `equity.svg`.
        """
        curve, trades = self.curve.frame(), self.trades.frame()
        stats = compute_statistics(curve, trades, initial_equity=self.curve.initial_equity)
        stats_path = folder / "stats.json"
        write_bytes_atomically(stats_path, msgspec.json.format(msgspec.json.encode(stats)) + b"\n")
        parquet, csv = write_trades(trades, folder)
        if plotly_available():
            chart = write_html_report(folder / "report.html", curve, trades, self.trades.stops(), stats, title=title)
        else:
            chart = write_equity_chart(
                folder / "equity.svg",
                self.curve.times_ms,
                self.curve.equity,
                title=title,
                baseline=self.curve.initial_equity,
            )
        files = ReportFiles(stats=str(stats_path), trades_parquet=str(parquet), trades_csv=str(csv), chart=str(chart))
        return stats, files

    def __repr__(self) -> str:
        return f"RunReport({self.curve!r}, {self.trades!r})"
