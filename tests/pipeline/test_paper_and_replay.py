from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import msgspec
import polars as pl
import pytest

from twinstar import Config
from twinstar.bus.events import (
    CandleClosed,
    EmergencyExit,
    OrderFailed,
    OrderPlaced,
    PositionClosed,
    PositionOpened,
    SignalFired,
    SLUpdated,
    SLUpdateFailed,
)
from twinstar.bus.record import read_stream
from twinstar.candles import load_candles
from twinstar.data import bundled_candles_path
from twinstar.replay import replay
from twinstar.session import run_paper, sim_components

pytestmark = pytest.mark.anyio
DECISIONS = (
    SignalFired,
    OrderPlaced,
    OrderFailed,
    PositionOpened,
    PositionClosed,
    SLUpdated,
    SLUpdateFailed,
    EmergencyExit,
)


async def test_replaying_a_paper_run_reproduces_every_decision(tmp_path: Path) -> None:
    config = Config()
    candles = load_candles(bundled_candles_path()).frame.head(3_000)
    result = await run_paper(config, candles, tmp_path / "run")
    summary = await replay(result.stream, output=tmp_path / "replayed.tws", components=sim_components)
    original = [e for e in read_stream(result.stream) if isinstance(e, DECISIONS)]
    replayed = [e for e in read_stream(tmp_path / "replayed.tws") if isinstance(e, DECISIONS)]
    assert len(original) > 100 and result.summary.trades > 20
    assert replayed == original
    assert summary.counts["CandleClosed"] == 3_000


async def test_a_paper_run_writes_stream_candles_and_chart(tmp_path: Path) -> None:
    config = msgspec.structs.replace(Config(), strategy=msgspec.structs.replace(Config().strategy, name="atr_breakout"))
    candles = load_candles(bundled_candles_path()).frame.head(2_000)
    result = await run_paper(config, candles, tmp_path / "run")
    assert Path(result.chart).read_text().startswith("<!DOCTYPE html>")
    stored = sorted(Path(result.candles).rglob("*.parquet"))
    assert [p.name for p in stored][:2] == ["2017-07.parquet", "2017-08.parquet"]
    assert sum(1 for e in read_stream(result.stream) if isinstance(e, CandleClosed)) == 2_000
    assert result.summary.bars == 2_000
    assert pl.read_parquet(result.report.trades_parquet).height == result.summary.trades > 0


def _twinstar(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twinstar", *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )


def test_the_default_run_needs_no_arguments_and_prints_a_summary(tmp_path: Path) -> None:
    result = _twinstar("run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for label in ("trades", "win rate", "net PnL", "fees", "max drawdown", "Sharpe"):
        assert label in result.stdout
    assert "candles: 20,111/20,111 (100.0%)" in result.stderr
    [run_dir] = (tmp_path / "runs").iterdir()
    # No "candles" folder: a backtest's stream names its data file instead of copying it.
    assert {p.name for p in run_dir.iterdir()} == {
        "events.tws",
        "report.html",
        "stats.json",
        "trades.parquet",
        "trades.csv",
    }
    replayed = _twinstar("replay", str(run_dir / "events.tws"), cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 20111 input events" in replayed.stdout


def test_run_on_a_users_csv_and_a_malformed_one(tmp_path: Path) -> None:
    good = tmp_path / "eth.csv"
    rows = "\n".join(
        f"{1_700_000_000 + 900 * i},{100 + i % 7},{101 + i % 7},{99 + i % 7},{100 + i % 5},1" for i in range(300)
    )
    good.write_text("timestamp,open,high,low,close,volume\n" + rows + "\n")
    ok = _twinstar(
        "run",
        "--data",
        str(good),
        "--symbol",
        "ETH/USDT",
        "--strategy",
        "sma_cross",
        "--out",
        str(tmp_path / "out"),
        "--quiet",
        cwd=tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert "sma_cross ETH/USDT 15m" in ok.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close\n1700000000,1,2,1,2\n1700000900,1,2,3,2\n")
    failed = _twinstar("run", "--data", str(bad), cwd=tmp_path)
    assert failed.returncode == 2
    assert failed.stderr == f"twinstar: error: {bad}: high below low in column 'high' at row 2\n"
    unknown = _twinstar("run", "--strategy", "nope", cwd=tmp_path)
    assert unknown.returncode == 2
    assert unknown.stderr == "twinstar: error: unknown strategy 'nope' (known: atr_breakout, sma_cross)\n"
