"""Which feed a venue gets for an interval: what it really streams."""

from __future__ import annotations

from typing import Final

from twinstar.adapters.base import Exchange
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.adapters.feeds.klines import StreamCandleFeed
from twinstar.adapters.feeds.polling import PollingCandleFeed
from twinstar.adapters.feeds.trades import TradeCandleFeed
from twinstar.clock import Clock
from twinstar.config import FeedConfig

KLINE_STREAM_INTERVALS: Final[dict[str, frozenset[str]]] = {"upbit": frozenset({"1s"})}


def choose_feed(
    exchange: Exchange,
    symbol: str,
    interval: str,
    clock: Clock,
    *,
    mode: str = "auto",
    settings: FeedConfig | None = None,
) -> PollingCandleFeed | StreamCandleFeed | TradeCandleFeed:
    """The feed for what the venue really streams at `interval`: klines, else trades, else REST polling.

    Bithumb and Lighter stream trades but not klines; Upbit streams klines of
    one second only, so its minute candles are built from trades. `mode =
    "poll"` always polls; `"stream"` insists on the kline stream where ccxt.pro
    flags neither.
    """
    if mode == "poll" or not isinstance(exchange, CcxtExchange):
        return PollingCandleFeed(exchange, symbol, interval, clock, settings=settings)
    has = exchange.ccxt.has
    served = KLINE_STREAM_INTERVALS.get(str(exchange.ccxt.id))
    if has.get("watchOHLCV") and (served is None or interval in served):
        return StreamCandleFeed(exchange, symbol, interval, clock, settings=settings)
    if has.get("watchTrades"):
        return TradeCandleFeed(exchange, symbol, interval, clock, settings=settings)
    if mode == "stream":
        return StreamCandleFeed(exchange, symbol, interval, clock, settings=settings)
    return PollingCandleFeed(exchange, symbol, interval, clock, settings=settings)
