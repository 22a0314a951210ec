from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from twinstar.candles import CandleFileError, load_candles
from twinstar.data import bundled_candles_path


def test_the_bundled_data_loads_sorted_and_hourly() -> None:
    series = load_candles(bundled_candles_path())
    assert (series.interval, series.frame.height) == ("1h", 20_111)
    assert series.frame.row(0) == (1_498_906_800_000, 2505.56, 2513.38, 2495.12, 2509.17, 114.6)
    assert series.frame["open_time_ms"].is_sorted()


def test_newest_first_csv_with_iso_dates_and_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Volume\n"
        "2024-01-01 00:02:00,3,4,2,3,1\n2024-01-01 00:01:00,2,3,1,2,1\n"
        "2024-01-01 00:01:00,2,3,1,2.5,1\n2024-01-01 00:00:00,1,2,1,2,1\n"
    )
    series = load_candles(path)
    assert series.interval == "1m"
    assert series.frame["close"].to_list() == [2.0, 2.5, 3.0]  # the duplicate minute: the last row read wins
    assert series.frame["open_time_ms"].to_list() == [1_704_067_200_000, 1_704_067_260_000, 1_704_067_320_000]


def test_epoch_seconds_and_parquet(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {
            "timestamp": [1_700_000_000, 1_700_003_600],
            "open": [1.0, 2.0],
            "high": [2.0, 3.0],
            "low": [1.0, 1.0],
            "close": [2.0, 2.0],
            "volume": [0.0, 1.0],
        }
    )
    frame.write_parquet(tmp_path / "c.parquet")
    series = load_candles(tmp_path / "c.parquet")
    assert series.interval == "1h"
    assert series.frame["open_time_ms"].to_list() == [1_700_000_000_000, 1_700_003_600_000]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("empty.csv", "time,open,high,low,close\n", "the file has no rows"),
        ("nots.csv", "open,high,low,close\n1,2,1,2\n", "missing time column"),
        ("nohigh.csv", "time,open,low,close\n1700000000,1,1,2\n", "missing column 'high'"),
        (
            "badts.csv",
            "time,open,high,low,close\n2024-01-01,1,2,1,2\nyesterday,1,2,1,2\n",
            "unparseable timestamp 'yesterday' at row 2",
        ),
        (
            "nan.csv",
            "time,open,high,low,close\n1700000000,1,2,1,2\n1700000060,NaN,2,1,2\n",
            "missing or NaN price in column 'open' at row 2",
        ),
        ("neg.csv", "time,open,high,low,close\n1700000000,1,2,1,-2\n", "non-positive price in column 'close' at row 1"),
        ("hl.csv", "time,open,high,low,close\n1700000000,1,1,2,1\n", "high below low in column 'high' at row 1"),
        ("text.csv", "time,open,high,low,close\n1700000000,one,2,1,2\n", "a price column is not numeric"),
        ("c.json", "{}", "unknown file type '.json'"),
    ],
)
def test_malformed_files_get_one_line_errors_naming_the_problem(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(CandleFileError) as info:
        load_candles(path, interval="1m")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CandleFileError, match="no such file"):
        load_candles(tmp_path / "nope.csv")
