"""Flush pieces and their compaction: one deduplicated, ordered series, compacted by a child process."""

from __future__ import annotations

import ast
import fcntl
import logging
import os
import random
import threading
from pathlib import Path

import anyio
import polars as pl
import pytest

import twinstar.storage
from twinstar.bus.events import CandleClosed
from twinstar.clock import SimClock
from twinstar.config import Config
from twinstar.handlers.storage import SCHEMA, CandleStorage
from twinstar.kernel import Kernel
from twinstar.storage.layout import COMPACT_LOCK_NAME
from twinstar.storage.pieces import list_pieces, piece_path

pytestmark = pytest.mark.anyio
FEB = 1_706_745_600_000  # 2024-02-01 00:00 UTC
MINUTE = 60_000
# Two of them share a folder (their safe names collide); all three cross a month boundary.
SYMBOLS = ("BTC/USDT", "BTC-USDT", "ETH/USDT:USDT")
Model = dict[tuple[str, int], float]


def at(symbol: str, ms: int, close: float) -> CandleClosed:
    return CandleClosed(
        ts_ns=0, exchange="bybit", symbol=symbol, interval="1m", open_time_ms=ms,
        open=close, high=close, low=close, close=close, volume=1.0,
    )  # fmt: skip


def expected(model: Model, symbol: str) -> list[tuple[object, ...]]:
    """The rows `load` must return for `symbol`: one per open time, the last value handed in, sorted."""
    times = sorted(ms for s, ms in model if s == symbol)
    return [("bybit", symbol, "1m", ms, *[model[symbol, ms]] * 4, 1.0) for ms in times]


def assert_reads(storage: CandleStorage, model: Model) -> None:
    for symbol in SYMBOLS:
        assert storage.load("bybit", symbol, "1m").rows() == expected(model, symbol)
        january = {key: close for key, close in model.items() if key[1] < FEB}
        assert storage.load("bybit", symbol, "1m", end_ms=FEB).rows() == expected(january, symbol)


async def test_reads_see_one_series_across_month_files_pieces_and_buffer_newest_winning(tmp_path: Path) -> None:
    rng = random.Random(42)
    model: Model = {}
    # A store the previous layout wrote (month files only) reads as before and takes pieces on top.
    old = pl.DataFrame([("bybit", "BTC/USDT", "1m", FEB - MINUTE, *[9.0] * 4, 1.0)], schema=SCHEMA, orient="row")
    month_file = CandleStorage(tmp_path).path_for("bybit", "BTC/USDT", "1m", "2024-01")
    month_file.parent.mkdir(parents=True)
    old.write_parquet(month_file)
    model["BTC/USDT", FEB - MINUTE] = 9.0

    storage = CandleStorage(tmp_path, flush_every=10**9, preload=5)
    await storage.start()
    slots = [FEB + k * MINUTE for k in range(-6, 6)]  # few slots: many corrections, late and out of order
    for step in range(1, 8):
        for _ in range(25):
            symbol, ms, close = rng.choice(SYMBOLS), rng.choice(slots), float(rng.randint(1, 10_000))
            storage.handle(at(symbol, ms, close))
            model[symbol, ms] = close
        assert_reads(storage, model)  # buffered candles are visible
        storage.flush()
        assert_reads(storage, model)  # from pieces
        if step % 3 == 0:
            report = await storage.compact()
            assert report is not None
            assert list_pieces(tmp_path) == []
            assert_reads(storage, model)  # from month files
    assert len(list_pieces(tmp_path)) == 1
    assert storage.stored_series() == sorted(("bybit", s, "1m") for s in SYMBOLS)
    storage.handle(at("ETH/USDT:USDT", FEB + 7 * MINUTE, 5.0))  # left buffered until stop
    model["ETH/USDT:USDT", FEB + 7 * MINUTE] = 5.0
    await storage.stop()

    assert list_pieces(tmp_path) == []
    assert (
        sorted(p.name for p in tmp_path.rglob("*.parquet"))
        == ["2024-01.parquet", "2024-01.parquet"] + ["2024-02.parquet"] * 2
    )  # BTC/USDT and BTC-USDT share a folder and so its files
    reopened = CandleStorage(tmp_path, preload=5)
    await reopened.start()
    assert_reads(reopened, model)
    for symbol in SYMBOLS:
        assert reopened.history("bybit", symbol, "1m").rows() == expected(model, symbol)[-5:]
    await reopened.stop()


async def test_the_kernel_compacts_in_a_child_process_and_starts_no_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    start = threading.Thread.start

    def recording_start(thread: threading.Thread) -> None:
        threads.append(thread.name)
        start(thread)

    monkeypatch.setattr(threading.Thread, "start", recording_start)
    storage = CandleStorage(tmp_path, flush_every=1, compact_every=3)
    async with Kernel(Config(), clock=SimClock(0), components=[storage], mode="live") as kernel:
        for i in range(3):
            await kernel.publish(at("BTC/USDT", FEB + i * MINUTE, 1.0 + i))
        await kernel.bus.idle()
        # `run` saw three pieces and compacts; the storage offers no event for it, so poll its counter.
        while storage.compactions == 0:  # noqa: ASYNC110
            await anyio.sleep(0.01)
        report = storage.last_compaction
        assert report is not None
        assert report.pid != os.getpid()  # the work was done by another process
        assert [Path(p).name for p in report.pieces] == [piece_path(tmp_path, n).name for n in (1, 2, 3)]
        assert [Path(p).name for p in report.files] == ["2024-02.parquet"]
        assert (report.rows, report.set_aside) == (3, [])
        assert list_pieces(tmp_path) == []
        assert storage.load("bybit", "BTC/USDT", "1m")["close"].to_list() == [1.0, 2.0, 3.0]
    assert threads == []
    assert repr(storage) == (
        f"CandleStorage(root={str(tmp_path)!r}, buffered=0, written=3, pieces=0, compactions=1, rejected=0, "
        "set_aside=0)"
    )


async def test_a_compaction_left_running_by_a_killed_writer_postpones_ours(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = CandleStorage(tmp_path, flush_every=1)
    await storage.start()
    storage.handle(at("BTC/USDT", FEB, 1.0))
    with (tmp_path / COMPACT_LOCK_NAME).open("ab") as orphan:  # stands in for the orphaned compaction
        fcntl.flock(orphan.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with caplog.at_level(logging.WARNING, logger="twinstar.storage"):
            assert await storage.compact() is None
        fcntl.flock(orphan.fileno(), fcntl.LOCK_UN)
    assert [r.getMessage() for r in caplog.records] == [
        f"compaction under {tmp_path} postponed: another compaction is running under {tmp_path}"
    ]
    assert len(list_pieces(tmp_path)) == 1  # nothing deleted, nothing lost
    await storage.stop()
    assert list_pieces(tmp_path) == []
    assert storage.load("bybit", "BTC/USDT", "1m").height == 1


async def test_an_unreadable_piece_found_at_start_is_set_aside_and_never_reused(tmp_path: Path) -> None:
    first = CandleStorage(tmp_path, flush_every=1)
    await first.start()
    first.handle(at("BTC/USDT", FEB, 1.0))
    first.flush()
    first._release_lock()  # a writer that died: its piece stays, uncompacted
    broken = piece_path(tmp_path, 2)
    broken.write_bytes(b"not an arrow stream")

    storage = CandleStorage(tmp_path, flush_every=1)
    await storage.start()
    assert storage.set_aside == [broken.with_name(f"{broken.name}.corrupt-1")]
    storage.handle(at("BTC/USDT", FEB + MINUTE, 2.0))
    assert [p.name for _, p in list_pieces(tmp_path)] == [piece_path(tmp_path, n).name for n in (1, 2)]
    assert storage.load("bybit", "BTC/USDT", "1m")["close"].to_list() == [1.0, 2.0]
    await storage.stop()
    assert broken.with_name(f"{broken.name}.corrupt-1").read_bytes() == b"not an arrow stream"


def test_the_storage_package_imports_nothing_the_compaction_child_lacks() -> None:
    """The child runs without the `twinstar` package __init__ (see compactor): only these imports work there."""
    package = Path(twinstar.storage.__file__).parent
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                if name == "twinstar" or name.startswith("twinstar."):
                    assert name == "twinstar.atomic" or name.startswith("twinstar.storage"), (path.name, name)
