"""Our statistics equal backtesting.py's own on the same bars and trades (see bench/peers.py for the rules).

Both directions: backtesting.py runs a strategy and we compute from its
equity curve and trades; TwinStar runs one and backtesting.py's
`compute_stats` computes from ours. Tolerance: relative 1e-9 (float sums in
another order), i.e. within rounding.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pandas as pd
import polars as pl
import pytest
from backtesting import Backtest, Strategy
from backtesting._stats import compute_stats
from backtesting.lib import crossover

from twinstar import Config
from twinstar.candles import load_candles
from twinstar.data import bundled_candles_path
from twinstar.report import EquityCurve, RunReport, Statistics, TradeBook, compute_statistics
from twinstar.report.statistics import trade_bars
from twinstar.session import run_paper

pytestmark = pytest.mark.anyio

# Our field -> backtesting.py's key, and the factor from theirs to ours.
FIELDS: dict[str, tuple[str, float]] = {
    "final_equity": ("Equity Final [$]", 1),
    "equity_peak": ("Equity Peak [$]", 1),
    "return_pct": ("Return [%]", 1),
    "buy_hold_return_pct": ("Buy & Hold Return [%]", 1),
    "annual_return_pct": ("Return (Ann.) [%]", 1),
    "annual_volatility_pct": ("Volatility (Ann.) [%]", 1),
    "sharpe": ("Sharpe Ratio", 1),
    "sortino": ("Sortino Ratio", 1),
    "calmar": ("Calmar Ratio", 1),
    "max_drawdown_pct": ("Max. Drawdown [%]", -1),
    "trades": ("# Trades", 1),
    "win_rate_pct": ("Win Rate [%]", 1),
    "best_trade_pct": ("Best Trade [%]", 1),
    "worst_trade_pct": ("Worst Trade [%]", 1),
    "avg_trade_pct": ("Avg. Trade [%]", 1),
    "profit_factor": ("Profit Factor", 1),
    "expectancy_pct": ("Expectancy [%]", 1),
    "exposure_pct": ("Exposure Time [%]", 1),
}


def _bars() -> pd.DataFrame:
    frame = load_candles(bundled_candles_path()).frame.head(6_000)  # ~8 months of hourly bars, weekends included
    data = frame.to_pandas()
    data.index = pd.to_datetime(data["open_time_ms"], unit="ms")
    return data.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]


def _assert_same(ours: Statistics, theirs: pd.Series) -> None:
    for field, (key, sign) in FIELDS.items():
        expected = float(theirs[key]) * sign
        actual = getattr(ours, field)
        if math.isfinite(expected):
            assert actual == pytest.approx(expected, rel=1e-9, abs=1e-9), field
        else:
            assert actual is None, field
    duration = theirs["Max. Drawdown Duration"]
    assert ours.max_drawdown_duration_ms == duration // pd.Timedelta(milliseconds=1)


def _curve(data: pd.DataFrame, equity: Any) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "time_ms": data.index.as_unit("ms").asi8,
            "equity": np.asarray(equity, dtype=float),
            "close": data["Close"].to_numpy(),
        }
    )


class SmaCross(Strategy):  # type: ignore[misc]
    """bench/peers.py's rules: reverse on every crossover, stop 2% away."""

    def init(self) -> None:
        close = pd.Series(self.data.Close)
        self.fast = self.I(lambda: close.rolling(10).mean())
        self.slow = self.I(lambda: close.rolling(30).mean())

    def next(self) -> None:
        close = self.data.Close[-1]
        if crossover(self.fast, self.slow):
            self.position.close()
            self.buy(size=1, sl=close * 0.98)
        elif crossover(self.slow, self.fast):
            self.position.close()
            self.sell(size=1, sl=close * 1.02)


def test_ours_from_backtesting_pys_run_equal_its_statistics() -> None:
    data = _bars()
    backtest = Backtest(data, SmaCross, cash=100_000, commission=0.001, finalize_trades=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # backtesting.py's own warnings: its progress output, pandas deprecations
        theirs = backtest.run()
        # Buy & hold over every bar: backtesting.py's run starts it after the indicators' warm-up.
        over_all_bars = compute_stats(theirs["_trades"], theirs["_equity_curve"]["Equity"].to_numpy(), data, None)
    theirs["Buy & Hold Return [%]"] = over_all_bars["Buy & Hold Return [%]"]
    trades = theirs["_trades"]
    ours = compute_statistics(
        _curve(data, theirs["_equity_curve"]["Equity"]),
        pl.DataFrame(
            {
                "entry_time": pl.Series(trades["EntryTime"].to_numpy())
                .cast(pl.Datetime("ms"))
                .dt.replace_time_zone("UTC"),
                "exit_time": pl.Series(trades["ExitTime"].to_numpy())
                .cast(pl.Datetime("ms"))
                .dt.replace_time_zone("UTC"),
                "pnl": trades["PnL"].to_numpy(),
                "fees": trades["Commission"].to_numpy(),
                "return_pct": 100 * trades["ReturnPct"].to_numpy(),
            }
        ),
        initial_equity=100_000,
    )
    assert ours.trades > 200
    _assert_same(ours, theirs)
    assert ours.fees == pytest.approx(theirs["Commissions [$]"], rel=1e-9)


async def test_backtesting_pys_statistics_from_our_run_equal_ours(tmp_path: Path) -> None:
    data = _bars()
    frame = pl.from_pandas(data.reset_index(drop=True)).rename(str.lower)
    frame = frame.with_columns(open_time_ms=pl.Series(data.index.as_unit("ms").asi8))
    witness = RunReport(Config().sim.initial_balance)  # a second report, for the equity curve (not written out)
    result = await run_paper(Config(), frame, tmp_path, extra_components=[witness])
    ours = msgspec.json.decode(Path(result.report.stats).read_bytes(), type=Statistics)
    trades = pl.read_parquet(result.report.trades_parquet)
    curve = witness.curve.frame()
    bars = trade_bars(curve, trades)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecations inside backtesting.py
        theirs = compute_stats(
            pd.DataFrame(
                {
                    "EntryBar": bars["entry_bar"].to_numpy(),
                    "ExitBar": bars["exit_bar"].to_numpy(),
                    "PnL": trades["pnl"].to_numpy(),
                    "ReturnPct": trades["return_pct"].to_numpy() / 100,
                    "Duration": (trades["exit_time"] - trades["entry_time"]).to_pandas(),
                }
            ),
            curve["equity"].to_numpy(),
            data,
            None,
        )
    assert ours.trades > 200
    assert ours.fees > 0
    _assert_same(ours, theirs)
    assert ours == result.summary


def test_a_run_without_trades_has_undefined_trade_figures_as_backtesting_py() -> None:
    data = _bars().head(24 * 5)
    equity = np.full(data.shape[0], 10_000.0)
    equity[50:60] = 9_900.0  # one dip, recovered
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecations inside backtesting.py
        theirs = compute_stats(
            pd.DataFrame(columns=["EntryBar", "ExitBar", "PnL", "ReturnPct", "Duration"]), equity, data, None
        )
    ours = compute_statistics(_curve(data, equity), TradeBook().frame(), initial_equity=10_000)
    _assert_same(ours, theirs)
    assert (ours.trades, ours.win_rate_pct, ours.profit_factor, ours.max_drawdown_duration_ms) == (
        0,
        None,
        None,
        11 * 3_600_000,
    )


def test_a_run_without_bars_is_neutral_and_encodes_to_json() -> None:
    ours = compute_statistics(EquityCurve(500.0).frame(), TradeBook().frame(), initial_equity=500.0)
    assert (ours.bars, ours.final_equity, ours.return_pct, ours.buy_hold_return_pct, ours.sharpe) == (
        0,
        500.0,
        0,
        0,
        None,
    )
    assert msgspec.json.decode(msgspec.json.encode(ours), type=Statistics) == ours
