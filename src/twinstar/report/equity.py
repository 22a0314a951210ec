"""Mark-to-market equity per closed candle, from candle and position events.

A component that listens to candles and position events only, so the same
curve comes out of a paper run, a replay and a live session.
"""

from __future__ import annotations

import msgspec
import polars as pl

from twinstar.bus.bus import Bus
from twinstar.bus.events import CandleClosed, PositionClosed, PositionOpened, PositionSide


class _Open(msgspec.Struct):
    side: PositionSide
    qty: float
    entry_price: float
    fee: float


class EquityCurve:
    """Equity at every closed candle (realised PnL plus the open position marked at the close), and the candle."""

    def __init__(self, initial_equity: float) -> None:
        self.initial_equity = initial_equity
        self.realised = 0.0
        self._open: dict[str, _Open] = {}
        self.times_ms: list[int] = []
        self.equity: list[float] = []
        self.opens: list[float] = []
        self.highs: list[float] = []
        self.lows: list[float] = []
        self.closes: list[float] = []

    def attach(self, bus: Bus) -> None:
        """Subscribe to candles and position events."""
        bus.subscribe(CandleClosed, self.on_candle)
        bus.subscribe(PositionOpened, self.on_opened)
        bus.subscribe(PositionClosed, self.on_closed)

    def on_candle(self, event: CandleClosed) -> None:
        """Record mark-to-market equity at this candle's close."""
        unrealised = 0.0
        position = self._open.get(event.symbol)
        if position is not None:
            move = event.close - position.entry_price
            unrealised = position.qty * (move if position.side == "long" else -move) - position.fee
        self.times_ms.append(event.open_time_ms)
        self.equity.append(self.initial_equity + self.realised + unrealised)
        self.opens.append(event.open)
        self.highs.append(event.high)
        self.lows.append(event.low)
        self.closes.append(event.close)

    def on_opened(self, event: PositionOpened) -> None:
        """Track the open position for marking."""
        self._open[event.symbol] = _Open(event.side, event.qty, event.entry_price, event.fee)

    def on_closed(self, event: PositionClosed) -> None:
        """Book the realised part; a partial close keeps the rest, with its share of the entry fee, marked."""
        self.realised += event.pnl
        position = self._open.get(event.symbol)
        if position is None:
            return
        left = position.qty - event.qty
        if left <= 1e-12:
            del self._open[event.symbol]
        else:
            position.fee *= left / position.qty
            position.qty = left

    def frame(self) -> pl.DataFrame:
        """The curve as columns `time_ms` (candle open), `equity`, `open`, `high`, `low` and `close`."""
        columns = {
            "time_ms": self.times_ms,
            "equity": self.equity,
            "open": self.opens,
            "high": self.highs,
            "low": self.lows,
            "close": self.closes,
        }
        return pl.DataFrame(columns, schema={name: pl.Int64 if name == "time_ms" else pl.Float64 for name in columns})

    def __repr__(self) -> str:
        return f"EquityCurve(bars={len(self.equity)}, open={sorted(self._open)}, realised={self.realised:.2f})"
