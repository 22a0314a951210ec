"""The equity curve of a backtest, computed from the input frame at the end instead of candle by candle.

`EquityCurve` appends six values per candle; over a million candles that is
most of a backtest's memory and a good part of its time. A backtest already
holds every candle in its input frame, so this curve listens only to position
events and marks the open position at each candle's close in one polars pass.
It gives the same numbers: `EquityCurve` sees candle k before the position
events that candle k causes (they are dispatched after it), so candle k is
marked with the position as of the last event stamped before its close.
"""

from __future__ import annotations

import polars as pl

from twinstar.bus.bus import Bus
from twinstar.bus.events import PositionClosed, PositionOpened
from twinstar.report import RunReport
from twinstar.report.equity import EquityCurve
from twinstar.report.html import plotly_available


class FrameCurve(EquityCurve):
    """An `EquityCurve` over the first `candles` rows of a backtest's input frame."""

    def __init__(self, initial_equity: float, frame: pl.DataFrame, length_ms: int) -> None:
        super().__init__(initial_equity)
        self._frame = frame
        self._length_ms = length_ms
        self.candles = frame.height  # set lower when a run stops early
        # After each position event: (stamp, realised PnL, signed quantity, entry price, entry fee left).
        self._states: list[tuple[int, float, float, float, float]] = []

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
        if position is None:
            self._states.append((ts_ns, self.realised, 0.0, 0.0, 0.0))
        else:
            qty = position.qty if position.side == "long" else -position.qty
            self._states.append((ts_ns, self.realised, qty, position.entry_price, position.fee))

    def frame(self) -> pl.DataFrame:
        """The curve as `EquityCurve.frame` gives it, for the candles that ran."""
        candles = self._frame.head(self.candles).select(
            pl.col("open_time_ms").alias("time_ms"),
            ((pl.col("open_time_ms") + self._length_ms) * 1_000_000).alias("close_ns"),
            "open",
            "high",
            "low",
            "close",
        )
        states = pl.DataFrame(
            self._states,
            schema={"ts_ns": pl.Int64, **dict.fromkeys(("realised", "qty", "entry", "fee"), pl.Float64)},
            orient="row",
        )
        marked = candles.join_asof(
            states, left_on="close_ns", right_on="ts_ns", strategy="backward", allow_exact_matches=False
        )
        qty, move = pl.col("qty").fill_null(0.0), pl.col("close") - pl.col("entry")
        # Written as EquityCurve computes it, operation for operation, so the floats come out the same.
        unrealised = (
            pl.when(qty > 0)
            .then(qty * move - pl.col("fee"))
            .when(qty < 0)
            .then((-qty) * (-move) - pl.col("fee"))
            .otherwise(0.0)
        )
        equity = (self.initial_equity + pl.col("realised").fill_null(0.0)) + unrealised
        return marked.select("time_ms", equity.alias("equity"), "open", "high", "low", "close")

    def finish(self, candles: int) -> None:
        """The run is over after `candles` candles; fill the plain lists that the SVG chart reads without plotly."""
        self.candles = candles
        if not plotly_available():
            curve = self.frame()
            self.times_ms, self.equity = curve["time_ms"].to_list(), curve["equity"].to_list()

    def __repr__(self) -> str:
        return f"FrameCurve(candles={self.candles}, states={len(self._states)}, realised={self.realised:.2f})"


class BacktestReport(RunReport):
    """A `RunReport` whose equity curve is a `FrameCurve` over the backtest's input frame."""

    def __init__(self, initial_equity: float, frame: pl.DataFrame, length_ms: int) -> None:
        super().__init__(initial_equity)
        self.curve: FrameCurve = FrameCurve(initial_equity, frame, length_ms)
