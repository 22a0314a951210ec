"""Load a user's candle file (CSV or Parquet) into a clean, validated series.

Accepted columns, in any case (spaces count as underscores): one time column
(``open_time_ms``, ``open_time``, ``timestamp``, ``time``, ``date`` or
``datetime``, first match wins) holding epoch seconds, milliseconds,
microseconds or nanoseconds, or date strings (UTC unless they carry an
offset); then ``open``, ``high``, ``low``, ``close`` and optionally
``volume`` (0 when absent). A ``volume_<base>`` column such as
CryptoDataDownload's ``volume_btc`` is preferred over ``volume``, because
there ``volume`` is the quote amount and candles count base units.

Rows may come newest first; they are sorted ascending. Rows with the same
open time are reduced to one: the row that comes later in the file wins.
Files may start with one banner line before the header (CryptoDataDownload).

Every problem is a `CandleFileError` whose message is one line naming the
file and the problem; rows are counted from 1 at the first data row, in
file order. Nothing is read with pandas: polars parses everything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import msgspec
import polars as pl

from twinstar.adapters.base import Bar
from twinstar.candle_errors import CandleFileError as CandleFileError  # noqa: PLC0414  (re-exported from here)
from twinstar.intervals import interval_from_ms, interval_ms

COLUMNS: Final = ("open_time_ms", "open", "high", "low", "close", "volume")
PRICES: Final = ("open", "high", "low", "close")
TIME_NAMES: Final = ("open_time_ms", "open_time", "timestamp", "time", "date", "datetime")
SUFFIXES: Final = (".csv", ".csv.gz", ".txt", ".parquet", ".pq")
_QUOTE_VOLUMES: Final = frozenset(
    {"volume_usd", "volume_usdt", "volume_usdc", "volume_busd", "volume_eur", "volume_quote"}
)
# Tried in order; the one that parses most rows is kept. Naive times are UTC.
_DATE_FORMATS: Final = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %I:%M %p",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y%m%d %H:%M",
)
_DATE_ONLY_FORMATS: Final = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d")


class CandleSeries(msgspec.Struct, frozen=True, kw_only=True):
    """Candles sorted by open time, unique, with the interval they were taken at.

    `frame` has exactly the columns of `COLUMNS` (Int64 open time in ms, Float64 values).
    """

    frame: pl.DataFrame
    interval: str
    source: str
    symbol: str = ""
    time_column: str = ""  # the file's name for the time column
    time_values: str = ""  # its first and last cell as written, for messages about implausible times

    def __len__(self) -> int:
        return self.frame.height

    def bars(self) -> list[Bar]:
        """Return the candles as `Bar` rows (for code that wants plain objects)."""
        return [Bar(*row) for row in self.frame.select(COLUMNS).iter_rows()]


def load_candles(path: str | Path, *, symbol: str | None = None, interval: str | None = None) -> CandleSeries:
    """Read, validate, sort and deduplicate the candles in `path`.

    `interval` ("1m", "1h", "1d") is inferred from the median spacing when not
    given. `symbol` is metadata, or picks one symbol out of a file whose
    ``symbol`` column holds several. Raise `CandleFileError` on any problem.
    """
    path = Path(path)
    try:
        return _load(path, symbol, interval)
    except CandleFileError:
        raise
    except (pl.exceptions.PolarsError, OSError, ValueError, UnicodeDecodeError) as exc:
        # Anything polars or the OS raises still becomes one clear line, never a traceback.
        raise CandleFileError(f"{path}: cannot read ({_one_line(exc)})") from None


def candles_from_frame(
    raw: pl.DataFrame, source: str | Path, *, symbol: str | None = None, interval: str | None = None
) -> CandleSeries:
    """Validate, sort and deduplicate candles already read into `raw` (columns as `load_candles` takes them).

    `source` names the data in messages. Raise `CandleFileError` on any problem.
    """
    path = Path(source)
    try:
        return _validated(raw, path, symbol, interval)
    except CandleFileError:
        raise
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise CandleFileError(f"{path}: cannot read ({_one_line(exc)})") from None


def _load(path: Path, symbol: str | None, interval: str | None) -> CandleSeries:
    return _validated(read_table(path), path, symbol, interval)


def _validated(raw: pl.DataFrame, path: Path, symbol: str | None, interval: str | None) -> CandleSeries:
    if raw.height == 0:
        raise CandleFileError(f"{path}: no candle rows (only a header)")
    by_name = {c.strip().lower().replace(" ", "_"): c for c in raw.columns}
    time_col = next((by_name[n] for n in TIME_NAMES if n in by_name), None)
    if time_col is None:
        raise CandleFileError(f"{path}: missing time column (one of {', '.join(TIME_NAMES)})")
    for name in PRICES:
        if name not in by_name:
            raise CandleFileError(f"{path}: missing column '{name}'")
    raw, symbol = _pick_symbol(raw, by_name.get("symbol"), symbol, path)
    base_volumes = [c for n, c in by_name.items() if n.startswith("volume_") and n not in _QUOTE_VOLUMES]
    volume_col = base_volumes[0] if base_volumes else by_name.get("volume")

    columns: dict[str, pl.Series] = {"open_time_ms": times_ms(raw[time_col], path)}
    for name in PRICES:
        columns[name] = _numbers(raw[by_name[name]], name, path)
    columns["volume"] = (
        _numbers(raw[volume_col], "volume", path) if volume_col else pl.Series("volume", [0.0] * raw.height)
    )
    frame = pl.DataFrame(columns)
    _check_values(frame, path)
    if not (frame["open_time_ms"].diff().drop_nulls() > 0).all():  # most files are already in order
        frame = frame.unique("open_time_ms", keep="last", maintain_order=True).sort("open_time_ms")
    cells = raw[time_col]
    return CandleSeries(
        frame=frame,
        interval=_interval(frame, interval, path),
        source=str(path),
        symbol=symbol,
        time_column=time_col,
        time_values=f"{_cell(cells[0])} .. {_cell(cells[-1])}",
    )


def _cell(value: object) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def read_table(path: Path) -> pl.DataFrame:
    """Read a CSV (every cell as text) or Parquet file as it is; CandleFileError names what is wrong."""
    name = path.name.lower()
    if not name.endswith(SUFFIXES):
        raise CandleFileError(f"{path}: unknown file type {path.suffix!r} (use {', '.join(SUFFIXES)})")
    if not path.is_file():
        raise CandleFileError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise CandleFileError(f"{path}: the file is empty")
    if name.endswith((".parquet", ".pq")):
        return pl.read_parquet(path)
    # Everything as text: we cast ourselves, so a bad cell is reported with its row.
    try:
        frame: pl.DataFrame | None = pl.read_csv(path, infer_schema=False)
        error: pl.exceptions.PolarsError | None = None
    except pl.exceptions.PolarsError as exc:
        frame, error = None, exc
    if frame is None or not _has_time_column(frame):
        # CryptoDataDownload files start with a banner line before the header
        # (it has fewer fields than the rows, so the plain read fails).
        try:
            banner_skipped = pl.read_csv(path, infer_schema=False, skip_rows=1)
        except pl.exceptions.PolarsError:
            banner_skipped = None
        if banner_skipped is not None and _has_time_column(banner_skipped):
            return banner_skipped
    if frame is None:
        assert error is not None  # set together with frame = None
        raise error
    return frame


def _has_time_column(frame: pl.DataFrame) -> bool:
    return any(c.strip().lower().replace(" ", "_") in TIME_NAMES for c in frame.columns)


def _pick_symbol(raw: pl.DataFrame, column: str | None, wanted: str | None, path: Path) -> tuple[pl.DataFrame, str]:
    if column is None:
        return raw, wanted or ""
    values = raw[column].cast(pl.String).drop_nulls().unique().sort().to_list()
    if len(values) <= 1:
        # A file of one symbol may spell it its own way (BTCUSD); the caller's name wins.
        return raw, wanted or (values[0] if values else "")
    if wanted is None or wanted not in values:
        shown = ", ".join(values[:5]) + (", ..." if len(values) > 5 else "")
        raise CandleFileError(f"{path}: holds several symbols ({shown}); pass one of them as symbol")
    return raw.filter(pl.col(column).cast(pl.String) == wanted), wanted


def _first_row(mask: pl.Series) -> int | None:
    """1-based row of the first True in `mask` (nulls count as True), or None."""
    rows = mask.fill_null(True).arg_true()
    return int(rows[0]) + 1 if len(rows) else None


def _numbers(column: pl.Series, name: str, path: Path) -> pl.Series:
    if column.dtype.is_numeric():
        return column.cast(pl.Float64).alias(name)
    text = column.cast(pl.String).str.strip_chars()
    values = text.cast(pl.Float64, strict=False)
    row = _first_row(values.is_null() & text.is_not_null() & (text != ""))
    if row is not None:
        raise CandleFileError(f"{path}: non-numeric value {text[row - 1]!r} in column '{name}' at row {row}")
    return values.alias(name)


def _epoch_to_ms(values: pl.Series) -> pl.Series:
    # The unit follows from the magnitude: 1e11 s is the year 5138, 1e11 ms is 1973.
    return (
        pl.select(
            pl.when(values.abs() < 100_000_000_000)
            .then(values * 1_000)
            .when(values.abs() < 100_000_000_000_000)
            .then(values)
            .when(values.abs() < 100_000_000_000_000_000)
            .then(values // 1_000)
            .otherwise(values // 1_000_000)
        )
        .to_series()
        .cast(pl.Int64)
    )


def times_ms(column: pl.Series, path: Path) -> pl.Series:
    """A time column (epoch s/ms/us/ns, datetimes or date strings) as epoch milliseconds, named open_time_ms."""
    missing = _first_row(column.is_null())
    if missing is not None:
        raise CandleFileError(f"{path}: missing timestamp at row {missing}")
    if isinstance(column.dtype, pl.Datetime):
        utc = column.dt.convert_time_zone("UTC") if column.dtype.time_zone else column
        return utc.dt.epoch("ms").alias("open_time_ms")
    if column.dtype == pl.Date:
        return column.cast(pl.Datetime("ms")).dt.epoch("ms").alias("open_time_ms")
    if column.dtype.is_integer():
        return _epoch_to_ms(column.cast(pl.Int64)).alias("open_time_ms")
    if column.dtype.is_float():
        return _epoch_to_ms(column.round(0).cast(pl.Int64)).alias("open_time_ms")
    text = column.cast(pl.String).str.strip_chars()
    integers = text.cast(pl.Int64, strict=False)
    if integers[0] is not None:
        # Epoch numbers written as text (every CSV cell is text here).
        row = _first_row(integers.is_null())
        if row is not None:
            raise CandleFileError(f"{path}: unparseable timestamp {text[row - 1]!r} at row {row}")
        return _epoch_to_ms(integers).alias("open_time_ms")
    return _parse_dates(text, path)


def _parse_dates(text: pl.Series, path: Path) -> pl.Series:
    # CryptoDataDownload writes hours as "2019-10-17 09-AM"; give them minutes.
    text = text.str.replace(r"^(\S+) (\d{1,2})-(AM|PM|am|pm)$", "$1 $2:00 $3")
    best: pl.Series | None = None
    candidates = [
        *(text.str.strptime(pl.Datetime("ms"), fmt, strict=False) for fmt in _DATE_FORMATS),
        *(text.str.strptime(pl.Date, fmt, strict=False).cast(pl.Datetime("ms")) for fmt in _DATE_ONLY_FORMATS),
    ]
    for parsed in candidates:
        if best is None or parsed.null_count() < best.null_count():
            best = parsed
        if best.null_count() == 0:
            break
    assert best is not None  # the candidate list is never empty
    if best.null_count():
        # ISO 8601 with an offset or a "Z" (2024-01-01T00:00:00Z).
        aware = text.str.to_datetime(strict=False, time_unit="ms")
        if aware.null_count() < best.null_count():
            tz = aware.dtype.time_zone if isinstance(aware.dtype, pl.Datetime) else None
            best = aware.dt.convert_time_zone("UTC").dt.replace_time_zone(None) if tz else aware
    row = _first_row(best.is_null())
    if row is not None:
        raise CandleFileError(f"{path}: unparseable timestamp {text[row - 1]!r} at row {row}")
    return best.dt.epoch("ms").alias("open_time_ms")


def _check_values(frame: pl.DataFrame, path: Path) -> None:
    checks: list[tuple[pl.Expr, str]] = []
    for name in PRICES:
        column = pl.col(name)
        checks += [
            (column.is_null(), f"missing value in column '{name}'"),
            (column.is_nan() | column.is_infinite(), f"NaN or infinite price in column '{name}'"),
            (column <= 0, f"non-positive price in column '{name}'"),
        ]
    volume = pl.col("volume")
    checks += [
        # A file without a volume column gets zeros; a blank cell in one is a broken row.
        (volume.is_null(), "missing value in column 'volume'"),
        (volume.is_nan() | volume.is_infinite(), "NaN or infinite volume"),
        (volume < 0, "negative volume"),
        (pl.col("high") < pl.col("low"), "high below low in column 'high'"),
    ]
    # One pass over the frame: the first failing row of every check at once.
    firsts = frame.select(
        [expr.fill_null(False).arg_true().first().alias(str(i)) for i, (expr, _) in enumerate(checks)]
    ).row(0)
    for (_, what), first in zip(checks, firsts, strict=True):
        if first is not None:
            raise CandleFileError(f"{path}: {what} at row {int(first) + 1}")


def _interval(frame: pl.DataFrame, interval: str | None, path: Path) -> str:
    if interval is not None:
        try:
            interval_ms(interval)
        except ValueError as exc:
            raise CandleFileError(f"{path}: {exc}") from None
        return interval
    if frame.height < 2:
        raise CandleFileError(f"{path}: cannot infer the interval from a single candle; pass interval")
    # The lower median is a spacing that really occurs, so gaps cannot produce 4.5h from 1h and 8h.
    steps = frame["open_time_ms"].diff().drop_nulls().sort()
    spacing = int(steps[(len(steps) - 1) // 2])
    try:
        return interval_from_ms(spacing)
    except ValueError:
        raise CandleFileError(f"{path}: candles are {spacing} ms apart, not a whole interval") from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
