"""Candle files for backtest tests: a seeded random walk written where a test asks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl

START_MS = 1_704_067_200_000  # 2024-01-01 UTC


def walk(n: int, *, seed: int = 7, step_ms: int = 60_000, start_ms: int = START_MS) -> pl.DataFrame:
    """`n` continuous candles `step_ms` apart, each opening at the previous close."""
    rng = np.random.default_rng(seed)
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.002, n)))
    opens = np.concatenate([[100.0], closes[:-1]])
    spread = np.abs(rng.normal(0.0, 0.001, n)) * closes
    return pl.DataFrame(
        {
            "open_time_ms": start_ms + np.arange(n, dtype=np.int64) * step_ms,
            "open": opens,
            "high": np.maximum(opens, closes) + spread,
            "low": np.minimum(opens, closes) - spread,
            "close": closes,
            "volume": rng.uniform(1.0, 10.0, n),
        }
    )


def write(frame: pl.DataFrame, path: Path) -> Path:
    """Write `frame` as CSV or Parquet by the suffix of `path`; return `path`."""
    if path.suffix == ".parquet":
        frame.write_parquet(path)
    else:
        frame.write_csv(path)
    return path
