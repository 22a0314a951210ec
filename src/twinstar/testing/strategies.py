"""Strategies for tests and benchmarks: not for trading."""

from __future__ import annotations

from twinstar.bus.events import CandleClosed, Side
from twinstar.handlers.strategy import Signal


class Flip:
    """Signals the other side on every candle, so every candle trades (latency and load tests)."""

    name = "flip"

    def __init__(self) -> None:
        self.side: Side = "sell"

    def on_candle(self, candle: CandleClosed) -> Signal:
        """Reverse: buy after a sell, sell after a buy."""
        self.side = "buy" if self.side == "sell" else "sell"
        return Signal(self.side, 0.0, "flip")

    def __repr__(self) -> str:
        return f"Flip(side={self.side!r})"
