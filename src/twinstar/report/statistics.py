"""Run statistics from the equity curve and the trade list, defined as backtesting.py defines them.

Each figure follows backtesting.py 0.6's `backtesting/_stats.py::compute_stats`
(named in its field's comment), so a strategy's numbers compare one to one
with a backtesting.py run on the same bars and trades; tests/report checks
that. Undefined figures (no trades, no losing day, no drawdown, under two
days of data) are None where backtesting.py gives NaN or an infinity, which
JSON cannot hold. Vectorised over bars with polars.
"""

from __future__ import annotations

import math
from typing import Final

import msgspec
import polars as pl

_DAY_MS: Final = 86_400_000


class Statistics(msgspec.Struct, frozen=True, kw_only=True):
    """What a run did, as written to `stats.json`; percentages are in percent."""

    start_ms: int  # open time of the first bar
    end_ms: int  # open time of the last bar
    bars: int
    initial_equity: float
    final_equity: float  # "Equity Final [$]"
    equity_peak: float  # "Equity Peak [$]"
    return_pct: float  # "Return [%]", over the initial equity
    buy_hold_return_pct: float  # "Buy & Hold Return [%]", first to last close of the same bars
    annual_return_pct: float | None  # "Return (Ann.) [%]": geometric mean daily return, compounded over a year
    annual_volatility_pct: float | None  # "Volatility (Ann.) [%]"
    sharpe: float | None  # "Sharpe Ratio": annual return over annual volatility, no risk-free rate
    sortino: float | None  # "Sortino Ratio": annual return over annualised downside deviation of daily returns
    calmar: float | None  # "Calmar Ratio": annual return over maximum drawdown
    max_drawdown_pct: float  # "Max. Drawdown [%]", as a positive number (backtesting.py shows it negated)
    max_drawdown_duration_ms: (
        int | None
    )  # "Max. Drawdown Duration": longest time from a peak to its recovery or the end
    trades: int  # "# Trades"
    win_rate_pct: float | None  # "Win Rate [%]": share of trades with positive net PnL
    best_trade_pct: float | None  # "Best Trade [%]", of the trades' net returns on entry value
    worst_trade_pct: float | None  # "Worst Trade [%]"
    avg_trade_pct: float | None  # "Avg. Trade [%]": geometric mean of the trades' returns
    profit_factor: float | None  # "Profit Factor": summed winning returns over summed losing returns
    expectancy_pct: float | None  # "Expectancy [%]": arithmetic mean of the trades' returns
    exposure_pct: float  # "Exposure Time [%]": share of bars from each trade's entry bar to its exit bar
    gross_pnl: float
    fees: float  # "Commissions [$]": every fee of every trade, entry and exit
    funding: float  # funding of perpetuals received (negative: paid), in net PnL; 0 where none is charged
    net_pnl: float
    slippage: float = 0.0  # simulated slippage and spread paid (in the fill prices, so in gross PnL already)

    def rows(self) -> list[tuple[str, str]]:
        """Label/value pairs for a summary table."""
        return [
            ("bars", f"{self.bars:,}"),
            ("trades", f"{self.trades:,}"),
            ("win rate", _pct(self.win_rate_pct, 1)),
            ("gross PnL", f"{self.gross_pnl:,.2f}"),
            ("fees", f"{self.fees:,.2f}"),
            ("funding", f"{self.funding:,.2f}"),
            ("slippage (in the prices)", f"{self.slippage:,.2f}"),
            ("net PnL", f"{self.net_pnl:,.2f}"),
            ("return", _pct(self.return_pct)),
            ("annual return", _pct(self.annual_return_pct)),
            ("buy & hold return", _pct(self.buy_hold_return_pct)),
            ("max drawdown", _pct(self.max_drawdown_pct)),
            ("max drawdown duration", _duration(self.max_drawdown_duration_ms)),
            ("Sharpe (annualised)", _number(self.sharpe)),
            ("Sortino", _number(self.sortino)),
            ("Calmar", _number(self.calmar)),
            ("best / worst trade", f"{_pct(self.best_trade_pct)} / {_pct(self.worst_trade_pct)}"),
            ("avg trade", _pct(self.avg_trade_pct)),
            ("profit factor", _number(self.profit_factor)),
            ("expectancy", _pct(self.expectancy_pct)),
            ("exposure", _pct(self.exposure_pct, 1)),
            ("final equity", f"{self.final_equity:,.2f}"),
        ]


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:,.2f}"


def _pct(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}%"


def _duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    days, rest = divmod(ms // 60_000, 1440)
    return f"{days}d {rest // 60}h {rest % 60:02d}m"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _power(base: float, exponent: int) -> float:
    """`base ** exponent` overflowing to infinity, as numpy does, instead of raising."""
    try:
        return base**exponent
    except OverflowError:
        return math.inf


def _sqrt(value: float) -> float:
    return math.sqrt(value) if value >= 0 else math.nan  # NaN, as numpy, for a rounding error below 0


def _geometric_mean(returns: pl.Series) -> float:
    """backtesting.py's `geometric_mean`: 0 if any return loses everything, NaN for none."""
    growth = returns.fill_null(0) + 1
    if growth.len() == 0:
        return math.nan
    if (growth <= 0).any():
        return 0.0
    return math.exp(float(growth.log().sum()) / growth.len()) - 1.0


def _period_returns(curve: pl.DataFrame) -> tuple[pl.Series, int]:
    """Returns between the last equities of successive days (weeks, for weekly bars), and periods per year.

    As backtesting.py: the bar period is the median spacing of the last 100
    bars; a year has 52 weeks for weekly bars, else 365 days, or 252 for a
    market closed at weekends (under 60% of the 2/7 of bars a market open
    every day has on Saturdays and Sundays).
    """
    times = curve["time_ms"].tail(100)
    spacing = times.diff().median()
    period_days = int(spacing) // _DAY_MS if isinstance(spacing, float | int) else 0
    when = pl.from_epoch("time_ms", time_unit="ms")
    if period_days == 7:
        every, per_year = "1w", 52
    else:
        weekend = curve.select((when.dt.weekday() >= 6).mean()).item()
        every, per_year = "1d", 365 if weekend > 2 / 7 * 0.6 else 252
    last = curve.select(when.alias("at"), "equity").group_by_dynamic("at", every=every).agg(pl.col("equity").last())
    return last["equity"].pct_change().drop_nulls(), per_year


def trade_bars(curve: pl.DataFrame, trades: pl.DataFrame) -> pl.DataFrame:
    """Each trade's entry and exit bar: the last bar open at or before its entry and its exit time.

    A fill at a candle's close is at the next candle's open, so a market entry
    or exit lands on the bar whose open it filled at, as in backtesting.py.
    """
    times = curve["time_ms"]
    last = max(times.len() - 1, 0)

    def bar(column: str) -> pl.Series:
        found = times.search_sorted(trades[column].dt.epoch("ms"), side="right").cast(pl.Int64) - 1
        return found.clip(0, last)

    return pl.DataFrame({"entry_bar": bar("entry_time"), "exit_bar": bar("exit_time")})


def _exposure(bars: int, spans: pl.DataFrame) -> float:
    """Share of bars inside some [entry bar, exit bar]: the length of the spans' union, over the trades, not the bars.

    In entry order, a span adds the bars past the furthest exit before it.
    """
    if bars == 0:
        return 0.0
    spans = spans.sort("entry_bar", "exit_bar")
    reach = pl.col("exit_bar").cum_max().shift(1, fill_value=-1)
    added = (pl.col("exit_bar") - pl.max_horizontal("entry_bar", reach + 1) + 1).clip(lower_bound=0)
    covered = spans.select(added.sum()).item() or 0
    return 100 * (covered / bars)


def _max_drawdown_duration_ms(times: pl.Series, drawdown: pl.Series) -> int | None:
    """backtesting.py's `compute_drawdown_duration_peaks`: time between bars at a peak with a drawdown between."""
    last = pl.Series([drawdown.len() - 1], dtype=pl.UInt32)
    at_peak = pl.concat([(drawdown == 0).arg_true(), last]).unique().sort().cast(pl.Int64)
    previous = at_peak.shift(1)
    spans = pl.DataFrame({"end": at_peak, "start": previous}).filter(pl.col("end") > pl.col("start") + 1)
    if spans.height == 0:
        return None
    return int((times.gather(spans["end"]) - times.gather(spans["start"])).max())  # type: ignore[arg-type]


def compute_statistics(curve: pl.DataFrame, trades: pl.DataFrame, *, initial_equity: float) -> Statistics:
    """Compute a run's statistics from its equity curve and its trade list.

    `curve` is `EquityCurve.frame` (its `time_ms`, `equity` and `close` are
    read), `trades` is `TradeBook.frame`.
    """
    bars = curve.height
    if bars == 0:  # nothing happened: one bar at the initial equity, at a price that never moved
        curve = pl.DataFrame(
            {"time_ms": [0], "equity": [initial_equity], "close": [1.0]},
            schema={"time_ms": pl.Int64, "equity": pl.Float64, "close": pl.Float64},
        )
    equity, closes, times = curve["equity"], curve["close"], curve["time_ms"]
    drawdown = 1 - equity / equity.cum_max()
    max_dd = float(drawdown.max())  # type: ignore[arg-type]
    daily, per_year = _period_returns(curve)
    gmean = _geometric_mean(daily)
    annual = _power(1 + gmean, per_year) - 1
    variance = float(daily.var(ddof=1)) if daily.len() > 1 else math.nan  # type: ignore[arg-type]
    volatility = _sqrt(_power(variance + (1 + gmean) ** 2, per_year) - _power(1 + gmean, 2 * per_year))
    downside_mean = (daily.clip(upper_bound=0) ** 2).mean() if daily.len() else math.nan
    downside = _sqrt(float(downside_mean)) * math.sqrt(per_year)  # type: ignore[arg-type]
    returns = trades["return_pct"] / 100
    pnl = trades["pnl"]
    count = trades.height
    wins, losses = float(returns.filter(returns > 0).sum()), abs(float(returns.filter(returns < 0).sum()))
    fees = float(trades["fees"].sum())
    funding = float(trades["funding"].sum()) if "funding" in trades.columns else 0.0
    slippage = float(trades["slippage"].sum()) if "slippage" in trades.columns else 0.0
    net = float(pnl.sum())
    final = float(equity[-1])
    return Statistics(
        start_ms=int(times[0]),
        end_ms=int(times[-1]),
        bars=bars,
        initial_equity=initial_equity,
        final_equity=final,
        equity_peak=float(equity.max()),  # type: ignore[arg-type]
        return_pct=100 * (final / initial_equity - 1),
        buy_hold_return_pct=100 * (float(closes[-1]) / float(closes[0]) - 1),
        annual_return_pct=_finite(100 * annual),
        annual_volatility_pct=_finite(100 * volatility),
        sharpe=_finite(annual / volatility) if volatility else None,
        sortino=_finite(annual / downside) if downside else None,
        calmar=_finite(annual / max_dd) if max_dd else None,
        max_drawdown_pct=100 * max_dd,
        max_drawdown_duration_ms=_max_drawdown_duration_ms(times, drawdown),
        trades=count,
        win_rate_pct=100 * float((pnl > 0).mean()) if count else None,  # type: ignore[arg-type]
        best_trade_pct=100 * float(returns.max()) if count else None,  # type: ignore[arg-type]
        worst_trade_pct=100 * float(returns.min()) if count else None,  # type: ignore[arg-type]
        avg_trade_pct=100 * _geometric_mean(returns) if count else None,
        profit_factor=wins / losses if losses else None,
        expectancy_pct=100 * float(returns.mean()) if count else None,  # type: ignore[arg-type]
        exposure_pct=_exposure(bars, trade_bars(curve, trades)),
        gross_pnl=net + fees - funding,
        fees=fees,
        funding=funding,
        slippage=slippage,
        net_pnl=net,
    )
