"""The equity curve of a backtest, computed from the input frame at the end instead of candle by candle.

`EquityCurve` appends six values per candle; over a million candles that is
most of a backtest's memory and a good part of its time. A backtest already
holds every candle in its input frame, so this curve listens only to position
events and marks the open position at each candle's close in a few polars passes
(and the trade book of `BacktestReport` takes the last close from the frame too).
It gives the same numbers: `EquityCurve` sees candle k before the position
events that candle k causes (they are dispatched after it), so candle k is
marked with the position as of the last event stamped before its close.
"""

from __future__ import annotations

from array import array
from typing import Final

import polars as pl

from twinstar.bus.bus import Bus
from twinstar.bus.events import PositionClosed, PositionOpened
from twinstar.report import RunReport
from twinstar.report.equity import EquityCurve
from twinstar.report.html import plotly_available
from twinstar.report.trades import TradeBook

_SLICE: Final = 65_536  # candles marked at a time


class FrameCurve(EquityCurve):
    """An `EquityCurve` over the first `candles` rows of a backtest's input frame."""

    def __init__(self, initial_equity: float, frame: pl.DataFrame, length_ms: int) -> None:
        super().__init__(initial_equity)
        self.input_frame = frame
        self.length_ms = length_ms
        self.candles = frame.height  # set lower when a run stops early
        # After each position event, column by column: stamp, realised PnL, signed quantity, entry price,
        # entry fee left. Flat arrays: one per run, not one tuple per event.
        self._stamps = array("q")
        self._states = {name: array("d") for name in ("realised", "qty", "entry", "fee")}

    def attach(self, bus: Bus) -> None:
        """Subscribe to position events only."""
        bus.subscribe(PositionOpened, self.on_opened)
        bus.subscribe(PositionClosed, self.on_closed)

    def on_opened(self, event: PositionOpened) -> None:
        """Track the open position, as `EquityCurve` does, and note the state."""
        super().on_opened(event)
        self._note(event.ts_ns, event.symbol)

    def on_closed(self, event: PositionClosed) -> None:
        """Book the realised part, as `EquityCurve` does, and note the state."""
        super().on_closed(event)
        self._note(event.ts_ns, event.symbol)

    def _note(self, ts_ns: int, symbol: str) -> None:
        position = self._open.get(symbol)
        states = self._states
        self._stamps.append(ts_ns)
        states["realised"].append(self.realised)
        if position is None:
            qty = entry = fee = 0.0
        else:
            qty = position.qty if position.side == "long" else -position.qty
            entry, fee = position.entry_price, position.fee
        states["qty"].append(qty)
        states["entry"].append(entry)
        states["fee"].append(fee)

    def frame(self) -> pl.DataFrame:
        """The curve as `EquityCurve.frame` gives it, for the candles that ran.

        The candle columns are the input frame's own buffers; only the equity is
        new, computed a slice of candles at a time so that its temporaries stay small.
        """
        candles = self.input_frame.head(self.candles)
        flat = {name: [0.0] for name in self._states}  # the state before the first event
        states = pl.DataFrame(flat, schema=dict.fromkeys(flat, pl.Float64)).vstack(
            pl.DataFrame({name: pl.Series(name, values, pl.Float64) for name, values in self._states.items()})
        )
        stamps = pl.Series("ts_ns", self._stamps, pl.Int64)
        parts = [
            self._equity(states, stamps, candles.slice(first, _SLICE))
            for first in range(0, max(candles.height, 1), _SLICE)
        ]
        return pl.DataFrame(
            [
                candles["open_time_ms"].alias("time_ms"),
                pl.concat(parts, rechunk=False).alias("equity"),
                *(candles[name] for name in ("open", "high", "low", "close")),
            ]
        )

    def _equity(self, states: pl.DataFrame, stamps: pl.Series, candles: pl.DataFrame) -> pl.Series:
        # Candle k is marked with the state after the last event stamped before its close: with the flat
        # state in front, that is the count of such events (a binary search, not a join).
        at = stamps.search_sorted((candles["open_time_ms"] + self.length_ms) * 1_000_000)
        marked = states.select(pl.all().gather(at), close=candles["close"])
        qty, move = pl.col("qty"), pl.col("close") - pl.col("entry")
        # Written as EquityCurve computes it, operation for operation, so the floats come out the same.
        unrealised = (
            pl.when(qty > 0)
            .then(qty * move - pl.col("fee"))
            .when(qty < 0)
            .then((-qty) * (-move) - pl.col("fee"))
            .otherwise(0.0)
        )
        return marked.select((self.initial_equity + pl.col("realised")) + unrealised).to_series()

    def finish(self, candles: int) -> None:
        """The run is over after `candles` candles; fill the plain lists that the SVG chart reads without plotly."""
        self.candles = candles
        if not plotly_available():
            curve = self.frame()
            self.times_ms, self.equity = curve["time_ms"].to_list(), curve["equity"].to_list()

    def __repr__(self) -> str:
        return f"FrameCurve(candles={self.candles}, states={len(self._stamps)}, realised={self.realised:.2f})"


class BacktestReport(RunReport):
    """A `RunReport` whose equity curve is a `FrameCurve` over the backtest's input frame.

    With `series` (the exchange and symbol the frame's candles are), the trade
    book does not follow candles either: `finish` tells it the last close.
    """

    def __init__(
        self, initial_equity: float, frame: pl.DataFrame, length_ms: int, *, series: tuple[str, str] | None = None
    ) -> None:
        super().__init__(initial_equity)
        self.curve: FrameCurve = FrameCurve(initial_equity, frame, length_ms)
        self._series = series
        if series is not None:
            self.trades = TradeBook(follow_candles=False)

    def finish(self, candles: int) -> None:
        """The run is over after the first `candles` candles of the frame."""
        self.curve.finish(candles)
        if self._series is not None and candles:
            last = self.curve.input_frame.row(candles - 1, named=True)
            close_ns = (last["open_time_ms"] + self.curve.length_ms) * 1_000_000
            self.trades.last_close(*self._series, close_ns, last["close"])
