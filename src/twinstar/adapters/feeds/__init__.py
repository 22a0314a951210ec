"""Closed candles from an exchange: REST polling, and WebSocket streams backed by it.

Polling (`PollingCandleFeed`) asks just after each candle closes. Where ccxt.pro
streams klines, `StreamCandleFeed` watches them; where it streams only trades
(Bithumb, Lighter), `TradeCandleFeed` builds candles from the trades. Both
stream feeds share one reconnect loop and publish through the polling feed,
which also backfills whatever the stream missed.

Polling works on every venue ccxt speaks (Bithumb and Lighter have no kline
stream) and cannot lose a candle: each poll asks for everything since the
last candle published, so a missed poll, a reconnect or a sleeping laptop is
backfilled on the next one (`FeedGapDetected`, then `FeedBackfilled`). Only
candles whose interval is over are published, each exactly once, in order;
a malformed candle (NaN, non-positive price, high < low) becomes
`CandleRejected` instead of reaching a strategy.
"""

from twinstar.adapters.feeds.choice import KLINE_STREAM_INTERVALS, choose_feed
from twinstar.adapters.feeds.klines import StreamCandleFeed
from twinstar.adapters.feeds.polling import DAY_MS, LATE_AFTER_MS, OVERDUE_GRACE_S, PollingCandleFeed, bar_problem
from twinstar.adapters.feeds.trades import LAG_WARN_MS, TradeCandleFeed

__all__ = [
    "DAY_MS",
    "KLINE_STREAM_INTERVALS",
    "LAG_WARN_MS",
    "LATE_AFTER_MS",
    "OVERDUE_GRACE_S",
    "PollingCandleFeed",
    "StreamCandleFeed",
    "TradeCandleFeed",
    "bar_problem",
    "choose_feed",
]
