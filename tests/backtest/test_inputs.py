"""Data in: compressed, archived, headerless and trade files, and the two real formats in tests/backtest/data."""

from __future__ import annotations

import gzip
import io
import subprocess
import sys
import zipfile
from pathlib import Path

import msgspec
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from twinstar.backtest.inputs import read_series
from twinstar.candles import CandleFileError

from .helpers import walk, write

DATA = Path(__file__).parent / "data"
LEAN = DATA / "lean-btcusd"
BINANCE_TRADES = DATA / "hftbacktest_usdm_btcusdt_20240808_trades.gz"


def _ohlcv_by(trades: pl.DataFrame, length_ms: int) -> pl.DataFrame:
    """Candles of `trades` (time ms, price, size) by plain polars, to check the trade path against."""
    return (
        trades.sort("time", maintain_order=True)
        .group_by((pl.col("time") // length_ms * length_ms).alias("open_time_ms"), maintain_order=True)
        .agg(
            pl.col("price").first().alias("open"),
            pl.col("price").max().alias("high"),
            pl.col("price").min().alias("low"),
            pl.col("price").last().alias("close"),
            pl.col("size").sum().alias("volume"),
        )
    )


def test_compressed_archived_and_headerless_files_give_the_same_candles(tmp_path: Path) -> None:
    frame = walk(500)
    expected = read_series(write(frame, tmp_path / "plain.csv")).frame
    text = (tmp_path / "plain.csv").read_bytes()
    (tmp_path / "candles.csv.gz").write_bytes(gzip.compress(text))
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as archive:  # two files, read in name order and joined
        archive.writestr("a.csv", frame.head(200).write_csv())
        buffer = io.BytesIO()
        frame.tail(300).write_parquet(buffer)
        archive.writestr("b.parquet", buffer.getvalue())
    (tmp_path / "bare.csv").write_text(frame.write_csv(include_header=False))
    folder = tmp_path / "days"
    folder.mkdir()
    write(frame.head(250), folder / "1.csv")
    write(frame.tail(250), folder / "2.parquet")
    assert read_series(tmp_path / "candles.csv.gz").frame.equals(expected)
    assert read_series(tmp_path / "two.zip").frame.equals(expected)
    assert read_series(folder).frame.equals(expected)
    headerless = read_series(tmp_path / "bare.csv", columns="time,open,high,low,close,volume")
    assert headerless.frame.equals(expected)
    skipped = read_series(tmp_path / "bare.csv", columns="time,open,high,low,close,-")
    assert skipped.frame.drop("volume").equals(expected.drop("volume"))
    with pytest.raises(CandleFileError, match="has 6 columns, --columns names 5"):
        read_series(tmp_path / "bare.csv", columns="time,open,high,low,close")


@pytest.mark.parametrize(
    "times",
    [
        [1_704_067_200 + 60 * i for i in range(3)],  # epoch seconds
        [1_704_067_200_000 + 60_000 * i for i in range(3)],
        [1_704_067_200_000_000 + 60_000_000 * i for i in range(3)],
        [1_704_067_200_000_000_000 + 60_000_000_000 * i for i in range(3)],
        ["2024-01-01T00:00:00Z", "2024-01-01T00:01:00Z", "2024-01-01T00:02:00Z"],
        ["2024-01-01 00:00", "2024-01-01 00:01", "2024-01-01 00:02"],
    ],
)
def test_epoch_units_and_iso_dates_are_recognised(tmp_path: Path, times: list[object]) -> None:
    rows = "\n".join(f"{t},1,2,0.5,1.5,3" for t in times)
    (tmp_path / "c.csv").write_text("time,open,high,low,close,volume\n" + rows + "\n")
    assert read_series(tmp_path / "c.csv").frame["open_time_ms"].to_list() == [
        1_704_067_200_000,
        1_704_067_260_000,
        1_704_067_320_000,
    ]


def test_lean_minute_zips_load_with_the_date_from_their_names() -> None:
    series = read_series(LEAN)
    assert series.interval == "1m"
    days = []
    for path in sorted(LEAN.glob("*_trade.zip")):
        with zipfile.ZipFile(path) as archive:
            [name] = archive.namelist()
            day = pl.read_csv(archive.read(name), has_header=False, new_columns=["ms", "o", "h", "l", "c", "v"])
        midnight = int(
            pl.Series([path.name[:8]]).str.strptime(pl.Date, "%Y%m%d").cast(pl.Datetime("ms")).dt.epoch("ms")[0]
        )
        days.append(day.select((pl.col("ms") + midnight).alias("open_time_ms"), "o", "h", "l", "c", "v"))
    expected = pl.concat(days)
    assert series.frame.height == expected.height
    assert series.frame.rows() == [tuple(float(x) if i else x for i, x in enumerate(r)) for r in expected.rows()]
    assert series.frame.row(0) == (1_522_800_000_000, 7424.91, 7424.91, 7422.0, 7422.0, 7.14319709)


def test_binance_trades_become_candles_through_the_live_trade_code() -> None:
    series = read_series(BINANCE_TRADES)
    lines = gzip.decompress(BINANCE_TRADES.read_bytes()).splitlines()
    data = [msgspec.json.decode(line.partition(b" ")[2])["data"] for line in lines]
    trades = pl.DataFrame(
        {"time": [d["T"] for d in data], "price": [float(d["p"]) for d in data], "size": [float(d["q"]) for d in data]}
    )
    expected = _ohlcv_by(trades, 60_000)
    # The first minute started before the recording, the last one had not ended: both are left out.
    # Volumes are summed trade by trade there, pairwise here: equal to the last bits.
    assert_frame_equal(series.frame, expected.slice(1, expected.height - 2), check_exact=False, rel_tol=1e-12)
    assert series.frame.height == 4
    assert series.interval == "1m"


def test_a_trade_table_becomes_candles_of_any_interval(tmp_path: Path) -> None:
    trades = pl.DataFrame(
        {
            "time": [1_704_067_200_000 + 700 * i for i in range(400)],
            "price": [100.0 + (i * 7 % 13) for i in range(400)],
            "size": [0.1 + i % 3 for i in range(400)],
        }
    )
    trades.write_csv(tmp_path / "trades.csv")
    series = read_series(tmp_path / "trades.csv", interval="5s")
    expected = _ohlcv_by(trades, 5_000)
    # The last 5 s had not ended; volumes summed in another order agree to the last bits.
    assert_frame_equal(series.frame, expected.head(expected.height - 1), check_exact=False, rel_tol=1e-12)
    assert series.interval == "5s"


def _twinstar(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "twinstar", *args], capture_output=True, text=True, cwd=cwd, timeout=50, check=False
    )


@pytest.mark.parametrize(
    ("data", "options", "block"),
    [
        (LEAN, [], "3,887 candles of 1m (inferred from the data), 2018-04-04 00:00 to 2018-04-06 23:59 UTC"),
        (
            BINANCE_TRADES,
            ["--interval", "1m"],
            "4 candles of 1m (matches the data), 2024-08-08 23:55 to 2024-08-08 23:58 UTC",
        ),
    ],
)
def test_the_real_formats_run_with_one_command_and_replay(
    tmp_path: Path, data: Path, options: list[str], block: str
) -> None:
    out = tmp_path / "out"
    result = _twinstar("run", "--data", str(data), "--symbol", "BTC/USD", "--out", str(out), *options, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert block in result.stderr
    again = _twinstar("replay", str(out / "events.tws"), "--output", str(tmp_path / "again.tws"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again.tws").read_bytes() == (out / "events.tws").read_bytes()
