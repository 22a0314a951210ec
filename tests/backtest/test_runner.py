from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from twinstar import Config
from twinstar.backtest import check_data, run_backtest, run_checked
from twinstar.backtest.curve import BacktestReport
from twinstar.bus.events import CandleClosed
from twinstar.bus.record import read_stream
from twinstar.candles import CandleFileError
from twinstar.replay import replay
from twinstar.report.equity import EquityCurve
from twinstar.session import sim_components

from .helpers import walk, write

pytestmark = pytest.mark.anyio


def _config() -> Config:
    base = Config(symbols=["SIM/USD"])
    return msgspec.structs.replace(
        base, strategy=msgspec.structs.replace(base.strategy, params={"fast": 5, "slow": 20, "stop_pct": 1.0})
    )


async def test_the_frame_curve_gives_the_equity_curve_of_every_candle(tmp_path: Path) -> None:
    data = write(walk(5_000), tmp_path / "walk.parquet")
    config = _config()
    reference = EquityCurve(config.sim.initial_balance)
    result = await run_backtest(config, data, tmp_path / "run", extra_components=[reference])
    assert result.summary.trades > 50
    assert result.summary.bars == 5_000
    checked = check_data(config, data)
    report = BacktestReport(config.sim.initial_balance, checked.frame, 60_000)
    result_again = await run_backtest(config, data, None, extra_components=[report.curve])
    report.curve.finish(5_000)
    assert report.curve.frame().equals(reference.frame())
    assert result_again.summary == result.summary


async def test_a_backtest_stream_names_its_file_and_replays_byte_for_byte(tmp_path: Path) -> None:
    data = write(walk(3_000), tmp_path / "walk.csv")
    result = await run_backtest(_config(), data, tmp_path / "run")
    stream = read_stream(result.stream)
    events = list(stream)
    assert not any(isinstance(e, CandleClosed) for e in events)
    assert stream.header.meta["kind"] == "backtest"
    assert str(data.resolve()) in stream.header.meta["data"]
    summary = await replay(result.stream, output=tmp_path / "replayed.tws", components=sim_components)
    assert summary.counts["CandleClosed"] == 3_000
    assert (tmp_path / "replayed.tws").read_bytes() == Path(result.stream).read_bytes()


async def test_replay_refuses_a_data_file_that_changed(tmp_path: Path) -> None:
    data = write(walk(500), tmp_path / "walk.csv")
    result = await run_backtest(_config(), data, tmp_path / "run")
    write(walk(500, seed=8), data)
    with pytest.raises(CandleFileError, match="changed since the recording"):
        await replay(result.stream, components=sim_components)


async def test_checked_data_runs_other_configs_as_a_fresh_check_would(tmp_path: Path) -> None:
    data = write(walk(2_000), tmp_path / "walk.parquet")
    checked = check_data(_config(), data)
    other = msgspec.structs.replace(
        _config(), strategy=msgspec.structs.replace(_config().strategy, params={"fast": 8, "slow": 30})
    )
    reused = await run_checked(checked.with_config(other))
    fresh = await run_backtest(other, data)
    assert reused.summary == fresh.summary
    assert reused.summary != (await run_checked(checked)).summary
