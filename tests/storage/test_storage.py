from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from tests.kernel.helpers import candle
from twinstar.atomic import TEMP_MARK
from twinstar.bus.events import CandleClosed
from twinstar.handlers.storage import CandleStorage

pytestmark = pytest.mark.anyio
JAN = 1_704_067_200_000  # 2024-01-01 UTC


def at(ms: int, close: float = 1.0) -> CandleClosed:
    return CandleClosed(
        ts_ns=0,
        exchange="binanceusdm",
        symbol="BTC/USDT:USDT",
        interval="1m",
        open_time_ms=ms,
        open=close,
        high=close,
        low=close,
        close=close,
        volume=1.0,
    )


async def test_candles_are_partitioned_by_month_deduplicated_and_load_back_sorted(tmp_path: Path) -> None:
    storage = CandleStorage(tmp_path, flush_every=1000)
    await storage.start()
    feb = JAN + 31 * 86_400_000
    for ms, close in [(feb, 5.0), (JAN + 60_000, 2.0), (JAN, 1.0), (JAN + 60_000, 3.0)]:
        await storage.handle(at(ms, close))
    await storage.stop()
    folder = tmp_path / "binanceusdm" / "BTC-USDT-USDT" / "1m"
    assert sorted(p.name for p in folder.iterdir()) == ["2024-01.parquet", "2024-02.parquet"]
    loaded = storage.load("binanceusdm", "BTC/USDT:USDT", "1m")
    assert loaded.select("open_time_ms", "close").rows() == [(JAN, 1.0), (JAN + 60_000, 3.0), (feb, 5.0)]
    assert set(loaded["symbol"]) == {"BTC/USDT:USDT"}
    assert storage.load("binanceusdm", "BTC/USDT:USDT", "1m", start_ms=JAN + 1, end_ms=feb).height == 1


async def test_a_flush_rewrites_only_the_months_that_changed(tmp_path: Path) -> None:
    storage = CandleStorage(tmp_path, flush_every=1)
    await storage.start()
    await storage.handle(at(JAN))
    await storage.handle(at(JAN + 31 * 86_400_000))
    folder = tmp_path / "binanceusdm" / "BTC-USDT-USDT" / "1m"
    january = (folder / "2024-01.parquet").stat().st_ino
    await storage.handle(at(JAN + 31 * 86_400_000 + 60_000))
    assert (folder / "2024-01.parquet").stat().st_ino == january  # untouched
    assert pl.read_parquet(folder / "2024-02.parquet").height == 2


async def test_bad_candles_are_refused_not_stored(tmp_path: Path) -> None:
    storage = CandleStorage(tmp_path, flush_every=1)
    await storage.start()
    await storage.handle(at(JAN, float("nan")))
    await storage.handle(at(JAN, -1.0))
    assert storage.rejected == 2
    assert storage.load("binanceusdm", "BTC/USDT:USDT", "1m").height == 0


async def test_an_unreadable_month_file_is_set_aside_never_overwritten(tmp_path: Path) -> None:
    storage = CandleStorage(tmp_path, flush_every=1)
    await storage.start()
    path = storage.path_for("binanceusdm", "BTC/USDT:USDT", "1m", "2024-01")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not parquet at all")
    await storage.handle(at(JAN))
    assert (path.parent / "2024-01.parquet.corrupt-1").read_bytes() == b"not parquet at all"
    assert pl.read_parquet(path).height == 1


async def test_stale_temp_files_are_cleaned_at_start_and_ignored_by_readers(tmp_path: Path) -> None:
    storage = CandleStorage(tmp_path, flush_every=1)
    await storage.start()
    await storage.handle(candle(0))
    folder = next(p.parent for p in tmp_path.rglob("*.parquet"))
    stale = folder / f"1970-01.parquet{TEMP_MARK}999"
    stale.write_bytes(b"half a file")
    assert storage.load("sim", "BTC/USD", "1m").height == 1
    await CandleStorage(tmp_path).start()
    assert not stale.exists()


def test_sigkill_at_random_moments_always_leaves_a_whole_readable_file(tmp_path: Path) -> None:
    """Kill a writing process 40 times at random instants; the month file always reads back whole."""
    rng = random.Random(20261124)
    script = Path(__file__).with_name("writer_process.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[2]), *sys.path])}
    previous_rows = 0
    kills_mid_flush = 0
    start = 0
    for _ in range(40):
        child = subprocess.Popen(
            [sys.executable, str(script), str(tmp_path), str(start)], stdout=subprocess.PIPE, text=True, env=env
        )
        assert child.stdout is not None
        first = child.stdout.readline()  # started and flushed once: the kill lands during real work
        assert first.strip()
        time.sleep(rng.uniform(0.0, 0.05))
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stdout.close()
        files = [p for p in tmp_path.rglob("*.parquet") if TEMP_MARK not in p.name]
        kills_mid_flush += any(TEMP_MARK in p.name for p in tmp_path.rglob("*"))
        frame = pl.concat([pl.read_parquet(p) for p in files])  # raises if any file is torn
        assert frame["open_time_ms"].is_sorted()
        assert frame["open_time_ms"].n_unique() == frame.height
        assert frame.height >= previous_rows  # nothing committed is ever lost
        previous_rows = frame.height
        start += 10_000
    assert previous_rows > 0
    print(f"40 kills, {kills_mid_flush} left a temp file behind, final rows {previous_rows}")
