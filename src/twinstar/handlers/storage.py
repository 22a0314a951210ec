"""Closed candles to Parquet: partitioned, atomic, deduplicated, batched.

Layout: ``root/<exchange>/<symbol>/<interval>/<YYYY-MM>.parquet`` (symbol
made path-safe; the real one is a column). One file per month keeps every
flush small: it rewrites only the months that got new candles. Each rewrite
merges with what is on disk, drops duplicate open times (the newest value
wins), sorts, and replaces the file atomically. A file that cannot be read at
merge time is moved aside (``.corrupt-N``), never overwritten, so no stored
candle is ever lost silently.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Final

import polars as pl

from twinstar.atomic import TEMP_MARK, remove_stale_temps, replace_atomically
from twinstar.bus.bus import Bus
from twinstar.bus.events import CandleClosed

log: Final = logging.getLogger("twinstar.storage")

SCHEMA: Final = {
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
_Key = tuple[str, str, str, str]  # exchange, symbol, interval, month


def safe_name(text: str) -> str:
    """Make a symbol or exchange usable as one path component (BTC/USDT:USDT -> BTC-USDT-USDT)."""
    return "".join(ch if ch.isalnum() or ch in "._" else "-" for ch in text)


def _month(open_time_ms: int) -> str:
    return dt.datetime.fromtimestamp(open_time_ms / 1000, tz=dt.UTC).strftime("%Y-%m")


def _write_parquet(frame: pl.DataFrame, path: Path) -> None:
    frame.write_parquet(path, compression="zstd")


class CandleStorage:
    """Component: buffers CandleClosed and flushes every `flush_every` candles and on stop."""

    def __init__(self, root: str | Path, *, flush_every: int = 500) -> None:
        self.root = Path(root)
        self.flush_every = max(1, flush_every)
        self._pending: dict[_Key, list[tuple[int, float, float, float, float, float]]] = defaultdict(list)
        self._count = 0
        self.written = 0
        self.rejected = 0

    def attach(self, bus: Bus) -> None:
        """Subscribe to closed candles."""
        bus.subscribe(CandleClosed, self.handle, name="CandleStorage")

    async def start(self) -> None:
        """Create the root and clear temp files a crashed run left behind."""
        self.root.mkdir(parents=True, exist_ok=True)
        removed = remove_stale_temps(self.root)
        if removed:
            log.warning("removed %d unfinished temp files under %s", removed, self.root)

    async def handle(self, candle: CandleClosed) -> None:
        """Buffer one candle; flush when the batch is full."""
        values = (candle.open, candle.high, candle.low, candle.close)
        if not all(v > 0 and math.isfinite(v) for v in values) or not candle.volume >= 0:
            self.rejected += 1
            log.error(
                "refusing to store bad candle %s %s %d: %s", candle.symbol, candle.interval, candle.open_time_ms, values
            )
            return
        key = (candle.exchange, candle.symbol, candle.interval, _month(candle.open_time_ms))
        self._pending[key].append((candle.open_time_ms, *values, candle.volume))
        self._count += 1
        if self._count >= self.flush_every:
            self.flush()

    async def stop(self) -> None:
        """Flush what is buffered."""
        self.flush()

    def path_for(self, exchange: str, symbol: str, interval: str, month: str) -> Path:
        """Where the candles of one series and month live."""
        return self.root / safe_name(exchange) / safe_name(symbol) / interval / f"{month}.parquet"

    def flush(self) -> None:
        """Merge buffered candles into their month files (one bounded batch)."""
        pending, self._pending, self._count = self._pending, defaultdict(list), 0
        for (exchange, symbol, interval, month), rows in pending.items():
            path = self.path_for(exchange, symbol, interval, month)
            path.parent.mkdir(parents=True, exist_ok=True)
            new = pl.DataFrame([(exchange, symbol, interval, *row) for row in rows], schema=SCHEMA, orient="row")
            old = self._read_for_merge(path)
            merged = (
                (pl.concat([old, new]) if old is not None else new)
                .unique("open_time_ms", keep="last", maintain_order=True)
                .sort("open_time_ms")
            )
            replace_atomically(path, functools.partial(_write_parquet, merged))
            self.written += len(rows)

    def _read_for_merge(self, path: Path) -> pl.DataFrame | None:
        if not path.exists():
            return None
        try:
            return pl.read_parquet(path).select(list(SCHEMA)).cast(SCHEMA)  # type: ignore[arg-type]
        except (pl.exceptions.PolarsError, OSError) as exc:
            n = 1
            while path.with_name(f"{path.name}.corrupt-{n}").exists():
                n += 1
            aside = path.with_name(f"{path.name}.corrupt-{n}")
            path.rename(aside)
            log.error("unreadable %s moved aside to %s (%s); starting the month afresh", path, aside.name, exc)
            return None

    def load(
        self, exchange: str, symbol: str, interval: str, *, start_ms: int | None = None, end_ms: int | None = None
    ) -> pl.DataFrame:
        """Return stored candles of one series, sorted, optionally within [start_ms, end_ms)."""
        folder = self.root / safe_name(exchange) / safe_name(symbol) / interval
        files = sorted(p for p in folder.glob("*.parquet") if TEMP_MARK not in p.name) if folder.exists() else []
        if not files:
            return pl.DataFrame(schema=SCHEMA)
        frame = pl.concat([pl.read_parquet(p) for p in files]).sort("open_time_ms")
        if start_ms is not None:
            frame = frame.filter(pl.col("open_time_ms") >= start_ms)
        if end_ms is not None:
            frame = frame.filter(pl.col("open_time_ms") < end_ms)
        return frame

    def __repr__(self) -> str:
        return f"CandleStorage(root={str(self.root)!r}, buffered={self._count}, written={self.written})"
