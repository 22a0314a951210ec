"""SIGKILL the compaction child at random instants while the writer keeps flushing: nothing flushed is lost.

The writer (this test, a real started CandleStorage) adds a piece of new
candles and corrections of old ones before each compaction, so every killed
compaction leaves month files of which some hold the new rows and some the
old: every read must still give the model's series, every file must be whole,
and no piece may be gone (only the writer deletes pieces, after a report).
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio
import polars as pl
import pytest

from twinstar.atomic import TEMP_MARK
from twinstar.bus.events import CandleClosed
from twinstar.handlers.storage import CandleStorage
from twinstar.storage.compactor import command
from twinstar.storage.layout import month_files, series_dirs
from twinstar.storage.pieces import list_pieces, read_piece

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

KILLS = 12
SYMBOLS = [f"S{i}/USDT" for i in range(6)]
FEB = 1_706_745_600_000  # 2024-02-01 00:00 UTC
SECOND = 1_000
SPAN = 4_000  # one-second candles per symbol on each side of the month boundary
Model = dict[tuple[str, int], float]


def candle(symbol: str, ms: int, close: float) -> CandleClosed:
    return CandleClosed(
        ts_ns=0, exchange="sim", symbol=symbol, interval="1s", open_time_ms=ms,
        open=close, high=close, low=close, close=close, volume=1.0,
    )  # fmt: skip


def hand(storage: CandleStorage, model: Model, symbol: str, ms: int, close: float) -> None:
    storage.handle(candle(symbol, ms, close))
    model[symbol, ms] = close


def check(storage: CandleStorage, model: Model) -> None:
    for folder in series_dirs(storage.root):
        for path in month_files(folder):
            pl.read_parquet(path)  # raises if torn (load() would skip it)
    for _, piece in list_pieces(storage.root):
        read_piece(piece)
    for symbol in SYMBOLS:
        frame = storage.load("sim", symbol, "1s")
        times = sorted(ms for s, ms in model if s == symbol)
        assert frame["open_time_ms"].to_list() == times  # sorted, unique, none lost
        assert frame["close"].to_list() == [model[symbol, ms] for ms in times]  # the newest value of each


def _compact_until_killed(root: Path, upto: int, after_s: float) -> bool:
    """Start the real compaction child, SIGKILL it `after_s` later; return whether it was still running.

    Blocking on purpose: nothing else runs meanwhile.
    """
    child = subprocess.Popen(command(root, upto), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(after_s)
    finally:
        child.send_signal(signal.SIGKILL)
        status = child.wait()  # the one process this test started
    assert status in {-signal.SIGKILL, 0}  # 0: it finished first; its pieces still wait for the writer
    return status != 0


def _startup_s(root: Path) -> float:
    """How long a compaction child takes to start: one asked to compact piece 0, which never exists."""
    began = time.perf_counter()
    subprocess.run(command(root, 0), check=True, capture_output=True)
    return time.perf_counter() - began


def _month_inodes(root: Path) -> dict[Path, int]:
    return {path: path.stat().st_ino for folder in series_dirs(root) for path in month_files(folder)}


def test_sigkill_during_compaction_loses_nothing_flushed(tmp_path: Path) -> None:
    anyio.run(_scenario, tmp_path)


async def _scenario(root: Path) -> None:
    rng = random.Random(20_261_203)
    model: Model = {}
    storage = CandleStorage(root, flush_every=10**9)
    await storage.start()
    for symbol in SYMBOLS:
        for k in range(-SPAN, SPAN):
            hand(storage, model, symbol, FEB + k * SECOND, 100.0 + k % 89)
    storage.flush()
    began = time.perf_counter()
    assert await storage.compact() is not None
    full = time.perf_counter() - began
    startup = _startup_s(root)
    # Timings only steer the kills into the work (reading, each month file's write); they are never asserted.
    mid_write = partly_rewritten = 0
    for round_ in range(KILLS):
        for symbol in SYMBOLS:
            for _ in range(40):  # corrections on both sides of the boundary, then new candles
                hand(storage, model, symbol, FEB + rng.randrange(-SPAN, SPAN) * SECOND, float(rng.randint(1, 99)))
            for k in range(10):
                hand(storage, model, symbol, FEB + (SPAN + round_ * 10 + k) * SECOND, 7.0)
        storage.flush()
        pieces = list_pieces(root)
        temps, inodes = set(root.rglob(f"*{TEMP_MARK}*")), _month_inodes(root)
        killed = _compact_until_killed(root, pieces[-1][0], rng.uniform(startup * 0.8, full * 1.1))
        mid_write += bool(set(root.rglob(f"*{TEMP_MARK}*")) - temps)
        replaced = sum(inode != inodes.get(path) for path, inode in _month_inodes(root).items())
        partly_rewritten += killed and 0 < replaced < len(inodes)
        assert list_pieces(root) == pieces  # a compaction never deletes a piece
        check(storage, model)
    report = await storage.compact()  # a whole one at last: everything reaches the month files
    assert report is not None
    assert list_pieces(root) == []
    check(storage, model)
    await storage.stop()
    print(
        f"\n{KILLS} compactions killed at random instants: {mid_write} mid-write, {partly_rewritten} with some month "
        "files rewritten and some not; every file whole, every read equal to the model"
    )
