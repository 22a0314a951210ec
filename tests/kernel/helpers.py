"""Small event builders for kernel tests."""

from __future__ import annotations

from twinstar.bus.events import CandleClosed, SignalFired


def candle(i: int, close: float = 100.0) -> CandleClosed:
    """A one-minute candle numbered `i` (its open time is i minutes)."""
    return CandleClosed(
        ts_ns=i * 60_000_000_000,
        exchange="sim",
        symbol="BTC/USD",
        interval="1m",
        open_time_ms=i * 60_000,
        open=close,
        high=close,
        low=close,
        close=close,
        volume=1.0,
    )


def signal(i: int, side: str = "buy") -> SignalFired:
    """A signal reacting to candle `i`."""
    return SignalFired(
        ts_ns=i,
        strategy="t",
        exchange="sim",
        symbol="BTC/USD",
        side=side,  # type: ignore[arg-type]
        price=100.0,
        stop_price=0.0,
        reason="test",
        candle_open_time_ms=i * 60_000,
    )
