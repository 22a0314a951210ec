"""Shared benchmark data: a seeded random walk of one-minute candles."""

from __future__ import annotations

import numpy as np
import polars as pl

START_MS = 1_704_067_200_000  # 2024-01-01 UTC


def random_walk(n: int, *, seed: int = 42, start: float = 100.0) -> pl.DataFrame:
    """Continuous one-minute candles (each opens at the previous close), seeded."""
    rng = np.random.default_rng(seed)
    closes = start * np.exp(np.cumsum(rng.normal(0.0, 0.001, n)))
    opens = np.concatenate([[start], closes[:-1]])
    spread = np.abs(rng.normal(0.0, 0.0005, n)) * closes
    highs = np.maximum(opens, closes) + spread
    lows = np.minimum(opens, closes) - spread
    return pl.DataFrame(
        {
            "open_time_ms": START_MS + np.arange(n, dtype=np.int64) * 60_000,
            "open": opens,
            "high": highs,
            "low": lows,
            "close": closes,
            "volume": rng.uniform(1.0, 10.0, n),
        }
    )
