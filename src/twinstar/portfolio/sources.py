"""The candles of a portfolio backtest: `SYMBOL=FILE` for one file per symbol, or `FILE` with a symbol column."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import msgspec
import polars as pl

from twinstar.backtest.checks import DataReport, GapPolicy, check_series
from twinstar.candles import CandleFileError, load_candles


class SymbolData(msgspec.Struct, frozen=True, kw_only=True):
    """One symbol's candles, read and checked as a one-symbol backtest checks them."""

    symbol: str
    frame: pl.DataFrame
    report: DataReport


def _symbols_in(path: Path) -> list[str]:
    """The values of `path`'s symbol column (any case), sorted; empty when it has none."""
    if not path.is_file():
        raise CandleFileError(f"{path}: no such file")
    parquet = path.name.lower().endswith((".parquet", ".pq"))
    names = pl.read_parquet_schema(path) if parquet else pl.read_csv(path, n_rows=0, infer_schema=False).columns
    column = next((name for name in names if name.strip().lower() == "symbol"), None)
    if column is None:
        return []
    values = pl.read_parquet(path, columns=[column]) if parquet else pl.read_csv(path, columns=[column])
    return sorted(str(v) for v in values[column].drop_nulls().unique())


def load_symbols(specs: Sequence[str], *, interval: str | None, gaps: GapPolicy) -> list[SymbolData]:
    """Read every `SYMBOL=FILE` or `FILE` (all the symbols of its symbol column); CandleFileError on a problem."""
    wanted: list[tuple[str, Path, str | None]] = []  # (symbol, file, the symbol to pick from the file)
    for spec in specs:
        symbol, sep, name = spec.partition("=")
        if sep:
            wanted.append((symbol.strip(), Path(name), None))
            continue
        found = _symbols_in(Path(spec))
        if not found:
            raise CandleFileError(f"{spec}: no symbol column; name the symbol as SYMBOL={spec}")
        wanted += [(symbol, Path(spec), symbol) for symbol in found]
    symbols = [symbol for symbol, _, _ in wanted]
    if len(set(symbols)) != len(symbols) or not all(symbols):
        raise CandleFileError(f"each symbol once, and named: got {', '.join(repr(s) for s in symbols)}")
    now_ms = time.time_ns() // 1_000_000
    loaded = []
    for symbol, path, pick in wanted:
        series = load_candles(path, symbol=pick, interval=interval)
        frame, report = check_series(series, interval=interval, policy=gaps, now_ms=now_ms)
        loaded.append(SymbolData(symbol=symbol, frame=frame, report=report))
    intervals = {data.report.interval for data in loaded}
    if len(intervals) > 1:
        raise CandleFileError(f"the symbols' candles differ in interval ({', '.join(sorted(intervals))}): use one")
    return loaded
