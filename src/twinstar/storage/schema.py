"""The stored candle row, and the one rule that turns layers of rows into a series."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypeAlias

import polars as pl

SCHEMA: Final = pl.Schema(
    {
        "exchange": pl.String,
        "symbol": pl.String,
        "interval": pl.String,
        "open_time_ms": pl.Int64,
        "open": pl.Float64,
        "high": pl.Float64,
        "low": pl.Float64,
        "close": pl.Float64,
        "volume": pl.Float64,
    }
)
SERIES: Final = ("exchange", "symbol", "interval")
ROW_SCHEMA: Final = pl.Schema({name: SCHEMA[name] for name in list(SCHEMA)[3:]})
# A candle is unique per series and open time; the series columns are part of
# the key because path-safe names may collide (BTC/USDT and BTC-USDT).
KEY: Final = (*SERIES, "open_time_ms")
SeriesKey: TypeAlias = tuple[str, str, str]  # exchange, symbol, interval
Row: TypeAlias = tuple[int, float, float, float, float, float]  # open_time_ms, o, h, l, c, v


def empty() -> pl.DataFrame:
    """Return a frame with no rows in the storage schema."""
    return pl.DataFrame(schema=SCHEMA)


def conform(frame: pl.DataFrame) -> pl.DataFrame:
    """Return `frame` in the storage schema; raise `SchemaError` if a column is missing."""
    missing = [name for name in SCHEMA if name not in frame.columns]
    if missing:
        raise pl.exceptions.SchemaError(f"missing columns {missing}")
    return frame.select(list(SCHEMA)).cast(SCHEMA)


def merge(layers: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """Return one deduplicated series from `layers`, oldest layer first, sorted by open time.

    The newest value of a candle wins: a closed candle should not change, so a
    later, different value is the exchange's correction (a REST backfill
    replacing a websocket candle). Re-applying layers already merged is
    harmless, which is what makes compaction safe to interrupt.
    """
    frame = pl.concat(layers) if layers else empty()
    return frame.unique(list(KEY), keep="last", maintain_order=True).sort("open_time_ms", "symbol")


def rows_frame(series: SeriesKey, rows: Sequence[Row]) -> pl.DataFrame:
    """Return `rows` of one series as a frame in the storage schema."""
    exchange, symbol, interval = series
    body = pl.DataFrame(rows, schema=ROW_SCHEMA, orient="row")
    return body.select(
        pl.lit(exchange).alias("exchange"),
        pl.lit(symbol).alias("symbol"),
        pl.lit(interval).alias("interval"),
        pl.all(),
    ).cast(SCHEMA)
