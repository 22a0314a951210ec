"""CandleStorage on real Parquet files in tmp_path: layout, merge, history, bad input."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl
import pytest

from twinstar.atomic import TEMP_MARK
from twinstar.bus.bus import Bus
from twinstar.bus.events import CandleClosed, CandleRejected
from twinstar.clock import SimClock
from twinstar.config import Config
from twinstar.handlers.storage import CandleStorage, StorageLockedError, month_of, safe_name
from twinstar.kernel import Kernel
from twinstar.storage.compact import CompactionReport

pytestmark = pytest.mark.anyio
JAN = 1_704_067_200_000  # 2024-01-01 00:00 UTC
FEB = JAN + 31 * 86_400_000
MAR = FEB + 29 * 86_400_000
MINUTE = 60_000
SYMBOL = "BTC/USDT:USDT"
SERIES_DIR = ("exchange=binanceusdm", "symbol=BTC-USDT-USDT", "interval=1m")


def at(ms: int, close: float = 1.0, *, symbol: str = SYMBOL, volume: float = 1.0) -> CandleClosed:
    """A one-minute binanceusdm candle opening at `ms`, all prices `close`."""
    return CandleClosed(
        ts_ns=(ms + MINUTE) * 1_000_000,
        exchange="binanceusdm",
        symbol=symbol,
        interval="1m",
        open_time_ms=ms,
        open=close,
        high=close,
        low=close,
        close=close,
        volume=volume,
    )


def row(ms: int, close: float = 1.0, symbol: str = SYMBOL) -> tuple[object, ...]:
    """The stored row of `at(ms, close)`."""
    return ("binanceusdm", symbol, "1m", ms, close, close, close, close, 1.0)


async def started(root: Path, **kwargs: int) -> CandleStorage:
    storage = CandleStorage(root, **kwargs)
    await storage.start()
    return storage


def test_symbols_become_single_safe_path_components() -> None:
    assert [safe_name(s) for s in ["BTC/USDT:USDT", "ETH-USD", "a=b c", "..", "", "é"]] == [
        "BTC-USDT-USDT",
        "ETH-USD",
        "a-b-c",
        "_..",
        "_",
        "-",
    ]
    assert [month_of(JAN), month_of(FEB - 1), month_of(FEB)] == ["2024-01", "2024-01", "2024-02"]


async def test_candles_are_partitioned_by_month_deduplicated_and_load_back_sorted(tmp_path: Path) -> None:
    storage = await started(tmp_path, flush_every=1000)
    for ms, close in [(FEB, 5.0), (JAN + MINUTE, 2.0), (JAN, 1.0), (JAN + MINUTE, 3.0)]:
        storage.handle(at(ms, close))
    await storage.stop()

    folder = tmp_path.joinpath(*SERIES_DIR)
    assert sorted(p.name for p in folder.iterdir()) == ["2024-01.parquet", "2024-02.parquet"]
    january = pl.read_parquet(folder / "2024-01.parquet")
    # The later value for the same open time wins (3.0 replaced 2.0), rows sorted by open time.
    assert january.rows() == [row(JAN, 1.0), row(JAN + MINUTE, 3.0)]
    assert january.schema == CandleStorage(tmp_path).load("x", "y", "1m").schema

    reloaded = CandleStorage(tmp_path)
    assert reloaded.load("binanceusdm", SYMBOL, "1m").rows() == [
        row(JAN, 1.0),
        row(JAN + MINUTE, 3.0),
        row(FEB, 5.0),
    ]
    assert reloaded.load("binanceusdm", SYMBOL, "1m", start_ms=JAN + 1, end_ms=FEB).rows() == [row(JAN + MINUTE, 3.0)]
    assert reloaded.load("binanceusdm", SYMBOL, "1m", start_ms=FEB).rows() == [row(FEB, 5.0)]
    assert reloaded.load("binanceusdm", "ETH/USDT:USDT", "1m").height == 0
    assert reloaded.stored_series() == [("binanceusdm", SYMBOL, "1m")]


async def test_a_later_flush_merges_with_the_file_on_disk(tmp_path: Path) -> None:
    storage = await started(tmp_path, flush_every=2)
    for ms, close in [(JAN + 2 * MINUTE, 3.0), (JAN, 1.0), (JAN, 1.5), (JAN + MINUTE, 2.0)]:
        storage.handle(at(ms, close))
    await storage.stop()
    assert storage.load("binanceusdm", SYMBOL, "1m").rows() == [
        row(JAN, 1.5),
        row(JAN + MINUTE, 2.0),
        row(JAN + 2 * MINUTE, 3.0),
    ]
    assert repr(storage) == (
        f"CandleStorage(root={str(tmp_path)!r}, buffered=0, written=4, pieces=0, compactions=1, rejected=0, "
        "set_aside=0)"
    )


async def test_candles_are_flushed_in_batches_and_load_includes_the_unflushed(tmp_path: Path) -> None:
    storage = await started(tmp_path, flush_every=3)
    storage.handle(at(JAN))
    storage.handle(at(JAN + MINUTE))
    assert list(tmp_path.rglob("*.parquet")) == []
    assert storage.load("binanceusdm", SYMBOL, "1m").height == 2  # still buffered, but visible
    storage.handle(at(JAN + 2 * MINUTE))
    (piece,) = tmp_path.joinpath("_pieces").iterdir()  # one flush, one piece; month files wait for compaction
    assert pl.read_ipc_stream(piece).rows() == [row(JAN), row(JAN + MINUTE), row(JAN + 2 * MINUTE)]
    assert list(tmp_path.rglob("*.parquet")) == []
    await storage.stop()
    assert pl.read_parquet(tmp_path.joinpath(*SERIES_DIR, "2024-01.parquet")).height == 3
    assert list(tmp_path.joinpath("_pieces").iterdir()) == []


async def test_a_compaction_rewrites_only_the_months_that_changed(tmp_path: Path) -> None:
    storage = await started(tmp_path, flush_every=1000)
    for ms in (JAN, FEB, MAR):
        storage.handle(at(ms))
    assert storage.flush() == 3
    report = await storage.compact()
    assert report is not None
    assert [Path(p).name for p in report.files] == ["2024-01.parquet", "2024-02.parquet", "2024-03.parquet"]
    folder = tmp_path.joinpath(*SERIES_DIR)
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}

    storage.handle(at(FEB + MINUTE))
    assert storage.flush() == 1  # one candle written: a flush is O(new candles), it never reads a month file
    assert after_compaction(await storage.compact()) == ["2024-02.parquet"]
    after = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}
    assert after["2024-01.parquet"] == before["2024-01.parquet"]
    assert after["2024-03.parquet"] == before["2024-03.parquet"]
    assert after["2024-02.parquet"] != before["2024-02.parquet"]  # replaced by a new file
    assert pl.read_parquet(folder / "2024-02.parquet")["open_time_ms"].to_list() == [FEB, FEB + MINUTE]
    assert storage.flush() == 0  # nothing buffered: nothing touched
    assert await storage.compact() is None  # no piece: no child process
    await storage.stop()


def after_compaction(report: CompactionReport | None) -> list[str]:
    """The names of the month files a compaction rewrote."""
    assert report is not None
    return [Path(p).name for p in report.files]


async def test_symbols_whose_safe_names_collide_never_overwrite_each_other(tmp_path: Path) -> None:
    storage = await started(tmp_path, flush_every=1)
    storage.handle(at(JAN, 1.0, symbol="BTC/USDT"))
    storage.handle(at(JAN, 2.0, symbol="BTC-USDT"))
    await storage.stop()
    assert len(list(tmp_path.rglob("*.parquet"))) == 1  # same folder, same month file
    assert storage.load("binanceusdm", "BTC/USDT", "1m").rows() == [row(JAN, 1.0, "BTC/USDT")]
    assert storage.load("binanceusdm", "BTC-USDT", "1m").rows() == [row(JAN, 2.0, "BTC-USDT")]


@pytest.mark.parametrize(
    ("candle", "reason"),
    [
        (at(JAN, float("nan")), "storage: open is nan"),
        (at(JAN, float("inf")), "storage: open is inf"),
        (at(JAN, -1.0), "storage: open is not positive (-1.0)"),
        (at(JAN, 0.0), "storage: open is not positive (0.0)"),
        (at(JAN, 1.0, volume=float("nan")), "storage: volume is nan"),
        (at(JAN, 1.0, volume=-2.0), "storage: volume is -2.0"),
        (
            CandleClosed(
                ts_ns=0, exchange="e", symbol="s", interval="1m", open_time_ms=JAN,
                open=2.0, high=1.0, low=3.0, close=2.0, volume=0.0,
            ),
            "storage: high 1.0 is below low 3.0",
        ),
    ],
)  # fmt: skip
async def test_bad_candles_are_refused_logged_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, candle: CandleClosed, reason: str
) -> None:
    bus = Bus(SimClock(123), mode="replay")
    storage = CandleStorage(tmp_path, flush_every=1)
    storage.attach(bus)
    rejected: list[CandleRejected] = []

    async def collect(event: CandleRejected) -> None:
        rejected.append(event)

    bus.subscribe(CandleRejected, collect)
    await storage.start()
    with caplog.at_level(logging.ERROR, logger="twinstar.storage"):
        await bus.publish(candle)
    await storage.stop()

    expected = CandleRejected(
        ts_ns=123,
        exchange=candle.exchange,
        symbol=candle.symbol,
        interval=candle.interval,
        open_time_ms=JAN,
        reason=reason,
    )
    assert rejected == [expected]
    assert storage.rejected == 1
    assert list(tmp_path.rglob("*.parquet")) == []
    assert [r.getMessage().split(": ")[-1] for r in caplog.records] == [reason.removeprefix("storage: ")]


async def test_an_unreadable_month_file_found_at_start_is_set_aside_not_fatal(tmp_path: Path) -> None:
    path = CandleStorage(tmp_path).path_for("binanceusdm", SYMBOL, "1m", "2024-01")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"PAR1 torn half of a file")
    async with Kernel(Config(), clock=SimClock(0), components=[CandleStorage(tmp_path, flush_every=1)]) as kernel:
        (storage,) = kernel.components
        assert isinstance(storage, CandleStorage)
        assert storage.set_aside == [path.with_name("2024-01.parquet.corrupt-1")]
        await kernel.publish(at(JAN, 7.0))
    assert path.with_name("2024-01.parquet.corrupt-1").read_bytes() == b"PAR1 torn half of a file"
    assert pl.read_parquet(path).rows() == [row(JAN, 7.0)]


async def test_a_file_that_breaks_while_running_is_set_aside_at_compaction_never_overwritten(
    tmp_path: Path,
) -> None:
    storage = await started(tmp_path, flush_every=1)
    storage.handle(at(JAN))
    await storage.compact()
    path = storage.path_for("binanceusdm", SYMBOL, "1m", "2024-01")
    path.write_bytes(b"garbage")
    path.with_name("2024-01.parquet.corrupt-1").write_bytes(b"an older casualty")
    assert storage.load("binanceusdm", SYMBOL, "1m").height == 0  # skipped and logged, not raised
    storage.handle(at(JAN + MINUTE))
    assert storage.load("binanceusdm", SYMBOL, "1m").rows() == [row(JAN + MINUTE)]  # from its piece
    await storage.compact()
    assert storage.set_aside == [path.with_name("2024-01.parquet.corrupt-2")]  # reported by the child
    assert path.with_name("2024-01.parquet.corrupt-1").read_bytes() == b"an older casualty"
    assert path.with_name("2024-01.parquet.corrupt-2").read_bytes() == b"garbage"
    assert pl.read_parquet(path).rows() == [row(JAN + MINUTE)]
    await storage.stop()


async def test_a_foreign_parquet_file_is_set_aside_too(tmp_path: Path) -> None:
    path = CandleStorage(tmp_path).path_for("binanceusdm", SYMBOL, "1m", "2024-01")
    path.parent.mkdir(parents=True)
    pl.DataFrame({"price": [1.0]}).write_parquet(path)
    storage = await started(tmp_path)
    assert [p.name for p in storage.set_aside] == ["2024-01.parquet.corrupt-1"]
    await storage.stop()


async def test_stale_temp_files_are_ignored_by_readers_and_removed_at_start(tmp_path: Path) -> None:
    storage = await started(tmp_path, flush_every=1)
    storage.handle(at(JAN))
    await storage.stop()
    folder = tmp_path.joinpath(*SERIES_DIR)
    stale = [folder / f"2024-01.parquet{TEMP_MARK}999-1", folder / f"2024-02.parquet{TEMP_MARK}999-2"]
    for path in stale:
        path.write_bytes(b"half a file")
    assert storage.load("binanceusdm", SYMBOL, "1m").rows() == [row(JAN)]
    await (await started(tmp_path)).stop()
    assert sorted(p.name for p in folder.iterdir()) == ["2024-01.parquet"]


async def test_a_failed_write_keeps_the_candles_buffered_for_the_next_flush(tmp_path: Path) -> None:
    storage = await started(tmp_path, flush_every=1)
    pieces = tmp_path / "_pieces"
    pieces.rmdir()
    pieces.write_bytes(b"a file where the folder should be")
    storage.handle(at(JAN))  # the flush fails, is logged, and does not raise
    assert repr(storage).startswith(f"CandleStorage(root={str(tmp_path)!r}, buffered=1, written=0, pieces=0")
    pieces.unlink()
    pieces.mkdir()
    assert storage.flush() == 1
    assert storage.load("binanceusdm", SYMBOL, "1m").rows() == [row(JAN)]
    await storage.stop()


async def test_a_failed_compaction_keeps_every_piece_and_is_retried(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    storage = await started(tmp_path, flush_every=1)
    blocker = tmp_path / "exchange=binanceusdm"
    blocker.write_bytes(b"a file where the folder should be")
    storage.handle(at(JAN))
    with caplog.at_level(logging.ERROR, logger="twinstar.storage"):
        assert await storage.compact() is None  # the child failed; logged, not raised
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        f"compaction under {tmp_path} failed, its pieces stay"
    ]
    assert len(list((tmp_path / "_pieces").iterdir())) == 1
    assert storage.load("binanceusdm", SYMBOL, "1m").rows() == [row(JAN)]
    blocker.unlink()
    await storage.stop()
    assert pl.read_parquet(storage.path_for("binanceusdm", SYMBOL, "1m", "2024-01")).rows() == [row(JAN)]


async def test_history_is_preloaded_at_start_and_follows_new_candles(tmp_path: Path) -> None:
    first = await started(tmp_path, flush_every=1000)
    for i in range(6):
        first.handle(at(FEB - 3 * MINUTE + i * MINUTE, float(i + 1)))  # 3 in January, 3 in February
    first.handle(at(JAN, 1.0, symbol="ETH/USDT:USDT"))
    await first.stop()

    storage = await started(tmp_path, preload=4)

    def closes(frame: pl.DataFrame) -> list[float]:
        return [float(x) for x in frame["close"]]

    assert closes(storage.history("binanceusdm", SYMBOL, "1m")) == [3.0, 4.0, 5.0, 6.0]
    assert closes(storage.history("binanceusdm", "ETH/USDT:USDT", "1m")) == [1.0]
    storage.handle(at(FEB + 3 * MINUTE, 7.0))
    storage.handle(at(FEB + 2 * MINUTE, 6.5))  # a late correction replaces, never duplicates
    assert closes(storage.history("binanceusdm", SYMBOL, "1m")) == [4.0, 5.0, 6.5, 7.0]
    assert closes(storage.history("binanceusdm", SYMBOL, "1m", limit=2)) == [6.5, 7.0]
    assert storage.history("binanceusdm", SYMBOL, "1m", limit=0).height == 0
    assert storage.history("binanceusdm", "nope", "1m").height == 0
    await storage.stop()


async def test_one_root_has_one_writer(tmp_path: Path) -> None:
    storage = await started(tmp_path)
    with pytest.raises(StorageLockedError, match="another process is storing candles under"):
        await CandleStorage(tmp_path).start()
    await storage.stop()
    await (await started(tmp_path)).stop()  # released on stop


async def test_the_kernel_flushes_storage_on_shutdown(tmp_path: Path) -> None:
    storage = CandleStorage(tmp_path, flush_every=10_000)
    async with Kernel(Config(), clock=SimClock(0), components=[storage], mode="replay") as kernel:
        for i in range(100):
            await kernel.publish(at(JAN + i * MINUTE, 1.0 + i))
        assert list(tmp_path.rglob("*.parquet")) == []
    frame = CandleStorage(tmp_path).load("binanceusdm", SYMBOL, "1m")
    assert (frame.height, frame["close"][-1]) == (100, 100.0)
