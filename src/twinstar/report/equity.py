"""Mark-to-market equity per closed candle, from candle and position events.

A component that listens to candles and position events only, so the same
curve comes out of a paper run, a replay and a live session.
"""

from __future__ import annotations

import msgspec
import polars as pl

from twinstar.bus.bus import Bus
from twinstar.bus.events import CandleClosed, PositionClosed, PositionOpened, PositionSide


class MarkedPosition(msgspec.Struct):
    """An open position as an equity curve marks it: side, size, entry and the entry fee not yet booked."""

    side: PositionSide
    qty: float
    entry_price: float
    fee: float

    @classmethod
    def opened(cls, event: PositionOpened) -> MarkedPosition:
        """The position `event` opened."""
        return cls(event.side, event.qty, event.entry_price, event.fee)

    def marked(self, price: float) -> float:
        """Its PnL at `price`, the entry fee included."""
        move = price - self.entry_price
        return self.qty * (move if self.side == "long" else -move) - self.fee

    def reduce(self, qty: float) -> bool:
        """Take off a close of `qty` (the rest keeps its share of the entry fee); True when nothing is left."""
        left = self.qty - qty
        if left <= 1e-12:
            return True
        self.fee *= left / self.qty
        self.qty = left
        return False


class EquityCurve:
    """Equity at every closed candle (realised PnL plus the open position marked at the close), and the candle."""

    def __init__(self, initial_equity: float) -> None:
        self.initial_equity = initial_equity
        self.realised = 0.0
        self._open: dict[str, MarkedPosition] = {}
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
        position = self._open.get(event.symbol)
        unrealised = position.marked(event.close) if position is not None else 0.0
        self.times_ms.append(event.open_time_ms)
        self.equity.append(self.initial_equity + self.realised + unrealised)
        self.opens.append(event.open)
        self.highs.append(event.high)
        self.lows.append(event.low)
        self.closes.append(event.close)

    def on_opened(self, event: PositionOpened) -> None:
        """Track the open position for marking."""
        self._open[event.symbol] = MarkedPosition.opened(event)

    def on_closed(self, event: PositionClosed) -> None:
        """Book the realised part; a partial close keeps the rest, with its share of the entry fee, marked."""
        self.realised += event.pnl
        position = self._open.get(event.symbol)
        if position is not None and position.reduce(event.qty):
            del self._open[event.symbol]

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
