"""Load a user's candle file (CSV or Parquet) into a clean, validated frame.

Accepted columns, any case: a time column (timestamp, time, date, datetime,
open_time, open_time_ms) holding epoch seconds or milliseconds or date
strings, then open, high, low, close and (optionally) volume. Rows may come
newest first; duplicates by time are dropped (the last one wins). Any problem
is a `CandleFileError` whose message is one line naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import msgspec
import polars as pl

from twinstar.intervals import interval_from_ms

COLUMNS: Final = ("open_time_ms", "open", "high", "low", "close", "volume")
_TIME_NAMES: Final = ("open_time_ms", "open_time", "timestamp", "time", "date", "datetime", "unix")
_DATE_FORMATS: Final = ("%Y-%m-%d %I:%M %p", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d")


class CandleFileError(ValueError):
    """A candle file cannot be used; the message names the problem in one line."""


class CandleSeries(msgspec.Struct, frozen=True, kw_only=True):
    """Candles sorted by open time, with the interval they were taken at."""

    frame: pl.DataFrame
    interval: str
    source: str


def _read(path: Path) -> pl.DataFrame:
    suffixes = "".join(path.suffixes[-2:]).lower()
    try:
        if path.suffix.lower() == ".parquet":
            return pl.read_parquet(path)
        if suffixes.endswith((".csv", ".csv.gz")) or path.suffix.lower() == ".txt":
            try:
                frame = pl.read_csv(path, infer_schema_length=10_000)
            except pl.exceptions.ComputeError:
                frame = pl.DataFrame()
            # CryptoDataDownload-style files start with a banner line before the header.
            if not any(c.lower().strip() in _TIME_NAMES for c in frame.columns):
                banner_skipped = pl.read_csv(path, skip_rows=1, infer_schema_length=10_000)
                if any(c.lower().strip() in _TIME_NAMES for c in banner_skipped.columns):
                    return banner_skipped
            return frame
    except FileNotFoundError:
        raise CandleFileError(f"{path}: no such file") from None
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CandleFileError(f"{path}: cannot parse ({first})") from None
    raise CandleFileError(f"{path}: unknown file type {path.suffix!r} (use .csv, .csv.gz or .parquet)")


def _times_ms(column: pl.Series, path: Path) -> pl.Series:
    if column.dtype.is_numeric():
        values = column.cast(pl.Int64, strict=False)
        # Epoch seconds are < 1e11 until the year 5138; milliseconds are larger.
        return (values * 1000).zip_with(values < 100_000_000_000, values)
    if column.dtype in (pl.Datetime, pl.Date):
        return column.cast(pl.Datetime("ms")).dt.epoch("ms")
    # CryptoDataDownload writes hours as "2019-10-17 09-AM"; give them minutes.
    text = column.cast(pl.String).str.replace(r" (\d{1,2})-(AM|PM)$", " $1:00 $2")
    for fmt in _DATE_FORMATS:
        parsed = text.str.strptime(pl.Datetime("ms"), fmt, strict=False)
        if parsed.null_count() == 0:
            return parsed.dt.epoch("ms")
    parsed = text.str.to_datetime(strict=False, time_unit="ms")
    bad = parsed.is_null().arg_true()
    if len(bad):
        row = int(bad[0])
        raise CandleFileError(f"{path}: unparseable timestamp {text[row]!r} at row {row + 1}")
    return parsed.dt.replace_time_zone(None).dt.epoch("ms")


def load_candles(path: str | Path, *, interval: str | None = None) -> CandleSeries:
    """Read, validate, sort and deduplicate candles from `path`."""
    path = Path(path)
    raw = _read(path)
    if raw.height == 0:
        raise CandleFileError(f"{path}: the file has no rows")
    by_name = {c.lower().strip(): c for c in raw.columns}
    time_col = next((by_name[n] for n in _TIME_NAMES if n in by_name), None)
    if time_col is None:
        raise CandleFileError(f"{path}: missing time column (one of {', '.join(_TIME_NAMES)})")
    for name in ("open", "high", "low", "close"):
        if name not in by_name:
            raise CandleFileError(f"{path}: missing column {name!r}")
    # CryptoDataDownload has "volume_btc" (base) beside "volume" (quote): candles count base units.
    base_volume = [c for n, c in by_name.items() if n.startswith("volume_") and n not in ("volume_usd", "volume_usdt")]
    volume = base_volume[0] if base_volume else by_name.get("volume")
    try:
        frame = pl.DataFrame(
            {
                "open_time_ms": _times_ms(raw[time_col], path),
                **{name: raw[by_name[name]].cast(pl.Float64) for name in ("open", "high", "low", "close")},
                "volume": raw[volume].cast(pl.Float64) if volume else pl.zeros(raw.height, eager=True),
            }
        )
    except pl.exceptions.InvalidOperationError as exc:
        raise CandleFileError(f"{path}: a price column is not numeric ({str(exc).splitlines()[0]})") from None
    _check_values(frame, path)
    frame = frame.unique("open_time_ms", keep="last", maintain_order=True).sort("open_time_ms")
    if interval is None:
        if frame.height < 2:
            raise CandleFileError(f"{path}: cannot infer the interval from one candle; pass --interval")
        spacing = int(frame["open_time_ms"].diff().drop_nulls().median())  # type: ignore[arg-type]
        try:
            interval = interval_from_ms(spacing)
        except ValueError:
            raise CandleFileError(f"{path}: candles are {spacing} ms apart, not a whole interval") from None
    return CandleSeries(frame=frame, interval=interval, source=str(path))


def _check_values(frame: pl.DataFrame, path: Path) -> None:
    checks = [
        ("open_time_ms", pl.col("open_time_ms").is_null(), "missing timestamp"),
        *[
            (c, pl.col(c).is_null() | pl.col(c).is_nan(), "missing or NaN price")
            for c in ("open", "high", "low", "close")
        ],
        *[(c, pl.col(c) <= 0, "non-positive price") for c in ("open", "high", "low", "close")],
        ("volume", pl.col("volume").is_nan() | (pl.col("volume") < 0), "negative or NaN volume"),
        ("high", pl.col("high") < pl.col("low"), "high below low"),
    ]
    for column, bad, what in checks:
        rows = frame.select(bad.fill_null(True).arg_true()).to_series()
        if len(rows):
            row = int(rows[0])
            raise CandleFileError(f"{path}: {what} in column {column!r} at row {row + 1}")
