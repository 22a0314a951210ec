from __future__ import annotations

from pathlib import Path

import msgspec
import polars as pl
import pytest

from twinstar import Config
from twinstar.backtest import check_data, run_backtest
from twinstar.backtest.checks import DataReport
from twinstar.bus.events import FlattenRequested, PositionClosed
from twinstar.bus.record import read_stream
from twinstar.candles import CandleFileError
from twinstar.replay import replay
from twinstar.session import sim_components

from .helpers import START_MS, walk, write

pytestmark = pytest.mark.anyio
HOUR = 3_600_000


def _with_gaps(policy: str) -> Config:
    base = Config(symbols=["SIM/USD"])
    strategy = msgspec.structs.replace(base.strategy, params={"fast": 3, "slow": 8})
    return msgspec.structs.replace(base, strategy=strategy, data=msgspec.structs.replace(base.data, gaps=policy))


def _gappy(tmp_path: Path) -> Path:
    """Hourly candles with a 108-day hole after the 300th and a 3-hour one after the 500th."""
    frame = walk(800, step_ms=HOUR)
    shift = pl.when(pl.int_range(pl.len()) >= 300).then(108 * 24 * HOUR).otherwise(0)
    shift = shift + pl.when(pl.int_range(pl.len()) >= 500).then(3 * HOUR).otherwise(0)
    return write(frame.with_columns(pl.col("open_time_ms") + shift), tmp_path / "gappy.parquet")


def test_gaps_are_counted_with_the_longest_in_one_short_block(tmp_path: Path) -> None:
    checked = check_data(_with_gaps("reset"), _gappy(tmp_path))
    hole_from = START_MS + 300 * HOUR
    assert checked.report == DataReport(
        source=str((tmp_path / "gappy.parquet").resolve()),
        candles=800,
        interval="1h",
        inferred=True,
        first_ms=START_MS,
        last_ms=START_MS + 799 * HOUR + 108 * 24 * HOUR + 3 * HOUR,
        gaps=2,
        longest_gap_ms=108 * 24 * HOUR,
        longest_gap_from_ms=hole_from - HOUR,
        policy="reset",
        filled=0,
    )
    assert checked.report.lines()[2:] == [
        "  gaps: 2 gaps longer than 1h, longest 108d (2024-01-13 12:00 to 2024-04-30 12:00)",
        "  on gaps: the position is closed at each gap (set data gaps to refuse or fill to change)",
    ]


def test_refuse_names_the_gaps(tmp_path: Path) -> None:
    path = _gappy(tmp_path)
    with pytest.raises(CandleFileError) as caught:
        check_data(_with_gaps("refuse"), path)
    assert str(caught.value) == (
        f"{path.resolve()}: 2 gaps longer than 1h, longest 108d after 2024-01-13 11:00 UTC "
        "(set data gaps to reset or fill to trade it anyway)"
    )


def test_fill_adds_flat_candles_at_the_last_close(tmp_path: Path) -> None:
    checked = check_data(_with_gaps("fill"), _gappy(tmp_path))
    frame = checked.frame
    assert checked.report.filled == 108 * 24 + 3
    assert frame.height == 800 + 108 * 24 + 3
    assert (frame["open_time_ms"].diff().drop_nulls() == HOUR).all()
    last_real = frame.row(299, named=True)
    first_fill = frame.row(300, named=True)
    assert first_fill == {
        "open_time_ms": last_real["open_time_ms"] + HOUR,
        "open": last_real["close"],
        "high": last_real["close"],
        "low": last_real["close"],
        "close": last_real["close"],
        "volume": 0.0,
    }


async def test_reset_closes_the_position_at_each_gap_and_replays_the_same(tmp_path: Path) -> None:
    result = await run_backtest(_with_gaps("reset"), _gappy(tmp_path), tmp_path / "run")
    events = list(read_stream(result.stream))
    stops = [e for e in events if isinstance(e, FlattenRequested)]
    assert [e.ts_ns // 1_000_000 for e in stops] == [
        START_MS + 300 * HOUR + 108 * 24 * HOUR,
        START_MS + 500 * HOUR + 108 * 24 * HOUR + 3 * HOUR,
    ]
    # Nothing stays open across a hole: whatever was open is closed when the hole ends, before its next candle.
    for stop in stops:
        after = events[events.index(stop) + 1 :]
        closed = next(e for e in after if isinstance(e, PositionClosed))
        assert (closed.ts_ns, closed.reason) == (stop.ts_ns, "flatten")
    await replay(result.stream, output=tmp_path / "again.tws", components=sim_components)
    assert (tmp_path / "again.tws").read_bytes() == Path(result.stream).read_bytes()


@pytest.mark.parametrize(
    ("interval", "message"),
    [
        ("15m", "interval 15m does not match the data, whose candles are 1h apart"),
        ("4h", "interval 4h does not match the data, whose candles are 1h apart"),
    ],
)
def test_an_interval_that_is_not_the_datas_is_refused(tmp_path: Path, interval: str, message: str) -> None:
    path = write(walk(100, step_ms=HOUR), tmp_path / "hourly.csv")
    with pytest.raises(CandleFileError, match=message):
        check_data(_with_gaps("reset"), path, interval=interval)
    assert check_data(_with_gaps("reset"), path, interval="1h").report.interval == "1h"


def test_one_second_candles_are_seen_as_such(tmp_path: Path) -> None:
    path = write(walk(100, step_ms=1_000), tmp_path / "seconds.csv")
    assert check_data(_with_gaps("reset"), path).report.interval == "1s"
    with pytest.raises(CandleFileError, match="interval 1m does not match the data, whose candles are 1s apart"):
        check_data(_with_gaps("reset"), path, interval="1m")


def test_milliseconds_since_midnight_are_refused_naming_the_column(tmp_path: Path) -> None:
    path = tmp_path / "midnight.csv"
    rows = "\n".join(f"{60_000 * i},100,101,99,100,1" for i in range(100))
    path.write_text("time,open,high,low,close,volume\n" + rows + "\n")
    with pytest.raises(CandleFileError) as caught:
        check_data(_with_gaps("reset"), path)
    assert str(caught.value) == (
        f"{path.resolve()}: column 'time' holds '0' .. '5940000', read as 1970-01-01 00:00 to 1970-03-10 18:00 UTC; "
        "candle times must lie between 2009 and now (epoch seconds, ms, us, ns or dates)"
    )


def test_future_times_and_odd_spacings_are_refused(tmp_path: Path) -> None:
    future = write(walk(50, start_ms=4_102_444_800_000), tmp_path / "future.csv")  # 2100
    with pytest.raises(CandleFileError) as caught:
        check_data(_with_gaps("reset"), future)
    assert str(caught.value) == (
        f"{future.resolve()}: column 'open_time_ms' holds '4102444800000' .. '4102447740000', "
        "read as 2100-01-01 00:00 to 2100-01-01 00:49 UTC; "
        "candle times must lie between 2009 and now (epoch seconds, ms, us, ns or dates)"
    )
    odd = write(walk(50, step_ms=7 * 60_000), tmp_path / "odd.parquet")
    with pytest.raises(CandleFileError) as caught:
        check_data(_with_gaps("reset"), odd)
    assert str(caught.value) == (
        f"{odd.resolve()}: candles in column 'open_time_ms' are 7m apart "
        "(1704067200000 .. 1704087780000), a spacing no exchange uses"
    )
