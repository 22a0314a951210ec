"""The portfolio's equity: every open position marked at its own symbol's latest close, after each candle.

Like `report.equity.EquityCurve` for one symbol (a candle is marked with the
positions as of the events before it), but across symbols: one row per
candle, reduced to one row per candle time once all symbols' candles of that
time are in, and per symbol its own realised and open PnL.
"""

from __future__ import annotations

import polars as pl

from twinstar.bus.bus import Bus
from twinstar.bus.events import CandleClosed, PositionClosed, PositionOpened
from twinstar.report.equity import MarkedPosition


class PortfolioCurve:
    """Component: after each candle, the whole account's equity and that symbol's own PnL."""

    def __init__(self, initial_equity: float) -> None:
        self.initial_equity = initial_equity
        self._open: dict[str, MarkedPosition] = {}
        self._realised: dict[str, float] = {}
        self._last_close: dict[str, float] = {}
        self._first_close: dict[str, float] = {}
        self._rows: list[tuple[int, str, float, float, float, float]] = []  # time, symbol, close, own, total, index

    def attach(self, bus: Bus) -> None:
        """Subscribe to candles and position events."""
        bus.subscribe(CandleClosed, self.on_candle)
        bus.subscribe(PositionOpened, self.on_opened)
        bus.subscribe(PositionClosed, self.on_closed)

    def _pnl(self, symbol: str) -> float:
        position = self._open.get(symbol)
        unrealised = position.marked(self._last_close[symbol]) if position is not None else 0.0
        return self._realised.get(symbol, 0.0) + unrealised

    def on_candle(self, event: CandleClosed) -> None:
        """Mark every symbol at its latest close and note this candle's row."""
        symbol = event.symbol
        self._last_close[symbol] = event.close
        self._first_close.setdefault(symbol, event.close)
        total = sum(self._pnl(s) for s in self._last_close)
        # Buy and hold of equal parts of every symbol seen: the mean of each close over its first.
        index = sum(self._last_close[s] / self._first_close[s] for s in self._last_close) / len(self._last_close)
        own = self._pnl(symbol)
        self._rows.append((event.open_time_ms, symbol, event.close, own, self.initial_equity + total, index))

    def on_opened(self, event: PositionOpened) -> None:
        """Track the open position for marking."""
        self._open[event.symbol] = MarkedPosition.opened(event)

    def on_closed(self, event: PositionClosed) -> None:
        """Book the realised part; a partial close keeps the rest, with its share of the entry fee, marked."""
        self._realised[event.symbol] = self._realised.get(event.symbol, 0.0) + event.pnl
        position = self._open.get(event.symbol)
        if position is not None and position.reduce(event.qty):
            del self._open[event.symbol]

    def _frame(self) -> pl.DataFrame:
        schema = {"time_ms": pl.Int64, "symbol": pl.String, "close": pl.Float64}
        schema |= {"own": pl.Float64, "total": pl.Float64, "index": pl.Float64}
        return pl.DataFrame(self._rows, schema=schema, orient="row")

    def frame(self) -> pl.DataFrame:
        """The portfolio curve: `time_ms`, `equity`, and as `close` the equal-weight buy-and-hold index."""
        last = self._frame().group_by("time_ms", maintain_order=True).last()
        return last.select("time_ms", pl.col("total").alias("equity"), pl.col("index").alias("close"))

    def symbol_frame(self, symbol: str) -> pl.DataFrame:
        """One symbol's curve: the initial equity plus its own PnL, at its own candles and closes."""
        rows = self._frame().filter(pl.col("symbol") == symbol)
        return rows.select("time_ms", (pl.col("own") + self.initial_equity).alias("equity"), "close")

    def __repr__(self) -> str:
        return f"PortfolioCurve(rows={len(self._rows)}, symbols={sorted(self._last_close)}, open={sorted(self._open)})"
