"""Closed candles built from a trade stream, for venues without a kline stream.

Bithumb and Lighter have no `watchOHLCV` in ccxt.pro, but both stream trades.
`TradeCandles` folds trades (ccxt's unified trade dicts, converted by
`trade_from_ccxt`) into one-interval candles and hands back each candle once it
is closed:

- A candle closes when the first trade of a later interval arrives, or when the
  feed says its interval is over (`close_until`, for quiet markets).
- Open and close are the earliest and latest trade by timestamp; trades with
  the same timestamp keep their arrival order. Out-of-order trades inside the
  open interval therefore land where they belong.
- An interval without trades yields no candle: nothing is forward-filled and no
  volume is invented. The feed fills such gaps from the venue's REST klines.
- A trade whose id was already counted in the open candle is a duplicate and is
  ignored (reconnects can replay recent trades). Trades without an id (Bithumb's
  legacy stream) cannot be told apart and are all counted.
- A trade for an interval that is already closed is stale: a published candle is
  never amended, so it is counted in `stale` and dropped.
- A trade without a usable time, price or amount is counted in `rejected`.

`newest_ms` is the latest time of any usable trade seen, so a feed can tell
how far it trails the market.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from twinstar.adapters.base import Bar


class Trade(msgspec.Struct, frozen=True):
    """One public trade: when (ms), at what price, how much, and the venue's id if any."""

    timestamp_ms: int
    price: float
    amount: float
    id: str | None = None


def trade_from_ccxt(trade: Mapping[str, Any]) -> Trade | None:
    """Convert a ccxt unified trade dict; None when its time, price or amount is unusable."""
    timestamp, price, amount = trade.get("timestamp"), trade.get("price"), trade.get("amount")
    try:
        if timestamp is None or price is None or amount is None:
            return None
        trade_id = None if trade.get("id") is None else str(trade["id"])
        parsed = Trade(int(timestamp), float(price), float(amount), trade_id)
    except (TypeError, ValueError, OverflowError):  # an infinite time is no time
        return None
    if not (math.isfinite(parsed.price) and parsed.price > 0 and math.isfinite(parsed.amount) and parsed.amount >= 0):
        return None
    return parsed


class _Open:
    """The candle still being traded (mutable, private to TradeCandles)."""

    __slots__ = ("close", "close_ms", "high", "ids", "low", "open", "open_ms", "open_time_ms", "volume")

    def __init__(self, open_time_ms: int, trade: Trade) -> None:
        self.open_time_ms = open_time_ms
        self.open = self.high = self.low = self.close = trade.price
        self.open_ms = self.close_ms = trade.timestamp_ms
        self.volume = trade.amount
        self.ids: set[str] = set() if trade.id is None else {trade.id}

    def add(self, trade: Trade) -> None:
        if trade.timestamp_ms < self.open_ms:  # earlier than the open so far: it is the open
            self.open, self.open_ms = trade.price, trade.timestamp_ms
        if trade.timestamp_ms >= self.close_ms:  # ties: the later arrival is the later trade
            self.close, self.close_ms = trade.price, trade.timestamp_ms
        self.high = max(self.high, trade.price)
        self.low = min(self.low, trade.price)
        self.volume += trade.amount
        if trade.id is not None:
            self.ids.add(trade.id)

    def bar(self) -> Bar:
        return Bar(self.open_time_ms, self.open, self.high, self.low, self.close, self.volume)


class TradeCandles:
    """Fold trades into closed candles of `length_ms` (see the module docstring for the rules)."""

    def __init__(self, length_ms: int) -> None:
        if length_ms <= 0:
            raise ValueError(f"candle length must be positive, got {length_ms} ms")
        self.length_ms = length_ms
        self._open: _Open | None = None
        self._closed_until_ms: int | None = None  # end of the last closed candle: older trades are stale
        self.accepted = 0
        self.duplicates = 0
        self.stale = 0
        self.rejected = 0
        self.newest_ms: int | None = None  # latest timestamp of a usable trade (accepted or not)

    @property
    def current(self) -> Bar | None:
        """The candle still being traded, if any."""
        return None if self._open is None else self._open.bar()

    def add(self, trade: Trade | None) -> Bar | None:
        """Take one trade; return the candle it closed, if it opened a later interval."""
        if trade is None:
            self.rejected += 1
            return None
        if self.newest_ms is None or trade.timestamp_ms > self.newest_ms:
            self.newest_ms = trade.timestamp_ms
        start = trade.timestamp_ms - trade.timestamp_ms % self.length_ms
        if self._closed_until_ms is not None and start < self._closed_until_ms:
            self.stale += 1
            return None
        candle = self._open
        if candle is not None and start == candle.open_time_ms:
            if trade.id is not None and trade.id in candle.ids:
                self.duplicates += 1
                return None
            candle.add(trade)
            self.accepted += 1
            return None
        if candle is not None and start < candle.open_time_ms:
            self.stale += 1  # an earlier interval than the open one: it may already be published
            return None
        closed = self._close()
        self._open = _Open(start, trade)
        self.accepted += 1
        return closed

    def add_ccxt(self, trades: Iterable[Mapping[str, Any]]) -> list[Bar]:
        """Take a batch of ccxt unified trades in arrival order; return the candles they closed."""
        closed: list[Bar] = []
        add = self.add  # one pass, no intermediate list: a burst is tens of thousands of trades
        for raw in trades:
            bar = add(trade_from_ccxt(raw))
            if bar is not None:
                closed.append(bar)
        return closed

    def close_until(self, now_ms: int) -> Bar | None:
        """Close the open candle if its interval ended at or before `now_ms`; return it."""
        candle = self._open
        if candle is None or candle.open_time_ms + self.length_ms > now_ms:
            return None
        return self._close()

    def _close(self) -> Bar | None:
        candle, self._open = self._open, None
        if candle is None:
            return None
        self._closed_until_ms = candle.open_time_ms + self.length_ms
        return candle.bar()

    def __repr__(self) -> str:
        return (
            f"TradeCandles(length_ms={self.length_ms}, current={self.current!r}, accepted={self.accepted}, "
            f"duplicates={self.duplicates}, stale={self.stale}, rejected={self.rejected})"
        )
