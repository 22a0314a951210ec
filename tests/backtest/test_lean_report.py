"""A backtest's report follows only position events, yet gives what a report following every candle gives."""

from __future__ import annotations

from pathlib import Path

import msgspec
import polars as pl
import pytest

from twinstar import Config
from twinstar.backtest import run_backtest
from twinstar.bus.bus import Bus
from twinstar.bus.events import CandleClosed
from twinstar.report import RunReport

from .helpers import walk, write

pytestmark = pytest.mark.anyio


def _config() -> Config:
    base = Config(symbols=["SIM/USD"])
    params = {"fast": 5, "slow": 20, "stop_pct": 1.0}
    return msgspec.structs.replace(base, strategy=msgspec.structs.replace(base.strategy, params=params))


class _StopAfter:
    """Asks the run to stop once `candles` candles went by (as Ctrl-C would)."""

    def __init__(self, candles: int) -> None:
        self.candles = candles
        self.seen = 0

    def attach(self, bus: Bus) -> None:
        bus.subscribe(CandleClosed, self.on_candle)

    def on_candle(self, candle: CandleClosed) -> None:
        self.seen += 1

    def __call__(self) -> bool:
        return self.seen >= self.candles


async def test_the_trade_list_and_statistics_equal_a_report_that_follows_every_candle(tmp_path: Path) -> None:
    data = write(walk(6_000), tmp_path / "walk.parquet")
    reference = RunReport(_config().sim.initial_balance)
    result = await run_backtest(_config(), data, tmp_path / "run", extra_components=[reference])
    assert result.report is not None
    written = pl.read_parquet(result.report.trades_parquet)
    assert written.height > 100
    assert written["exit_reason"][-1] == "end_of_data"  # the position open at the end, marked at the last close
    assert written.equals(reference.trades.frame())
    assert result.summary == reference.statistics()


async def test_a_stopped_run_marks_its_open_position_at_the_last_candle_that_ran(tmp_path: Path) -> None:
    data = write(walk(6_000), tmp_path / "walk.parquet")
    reference = RunReport(_config().sim.initial_balance)
    stop = _StopAfter(2_500)
    result = await run_backtest(_config(), data, tmp_path / "run", should_stop=stop, extra_components=[reference, stop])
    assert result.interrupted
    assert result.report is not None
    written = pl.read_parquet(result.report.trades_parquet)
    assert written["exit_reason"][-1] == "end_of_data"
    assert written.equals(reference.trades.frame())
    assert result.summary == reference.statistics()
    assert result.summary.bars == result.candles_run < 6_000
