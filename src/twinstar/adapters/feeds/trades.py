"""Closed candles built from a ccxt.pro trade stream (`watch_trades`), REST-backed."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from typing import Any, Final

from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.adapters.feeds.watched import WatchedFeed
from twinstar.adapters.trade_candles import TradeCandles, trade_from_ccxt
from twinstar.bus.events import (
    FeedGapDetected,
    FeedLagging,
)
from twinstar.clock import Clock
from twinstar.config import FeedConfig

log: Final = logging.getLogger("twinstar.feed")

# A trade feed whose newest trade trails the clock this much is behind the market (network, backlog).
LAG_WARN_MS: Final = 1_000


class TradeCandleFeed(WatchedFeed):
    """Component: closed candles built from a ccxt.pro `watch_trades` stream, REST-backfilled.

    For venues that stream trades but not klines (Bithumb, Lighter). Trades are
    folded by `TradeCandles`; a candle is published when the first trade of a
    later interval arrives, or `settle_s` after its interval ended when the
    market is quiet (a trade that arrives later still is counted as stale, never
    patched in). The first candle seen after each (re)connect missed the trades
    before the subscription, so it is never published from trades: it and any
    interval without trades are fetched from the venue's REST klines before the
    next trade-built candle is published. An interval the venue has no kline
    for either becomes `FeedGapDetected`; nothing is forward-filled.

    Trades are read from ccxt.pro's store (50,000 kept per symbol), so a burst
    is folded in one pass. More trades between two reads than the store keeps
    is `FeedGapDetected` and a log line, and the candles they fall in come from
    REST, as after a reconnect. `lag_ms` is how far the newest trade folded
    trails the clock; from `LAG_WARN_MS` on the feed says it is behind, and
    says again when it caught up.
    """

    def __init__(
        self,
        exchange: CcxtExchange,
        symbol: str,
        interval: str,
        clock: Clock,
        *,
        settle_s: float = 2.0,
        settings: FeedConfig | None = None,
    ) -> None:
        super().__init__(exchange, symbol, interval, clock, settings=settings)
        self.settle_s = settle_s  # how long after an interval's end its last trades may still arrive
        # ccxt.pro keeps the last `tradesLimit` trades (1000 by default) and hands over only those: a burst
        # larger than that between two of our reads would silently lose trades, so keep more.
        options = exchange.ccxt.options
        options["tradesLimit"] = max(int(options.get("tradesLimit") or 0), 50_000)
        self.candles = TradeCandles(self._length_ms)
        self._complete_from_ms: int | None = None  # candles opening before this missed trades
        self._store: Any = None  # the ccxt.pro trade store our cursor points into
        self._last_read: dict[str, Any] | None = None  # newest trade taken from that store (kept on reconnect)
        self._overran = False  # trades were lost between two reads: the store holds fewer than arrived
        self.overruns = 0
        self.lag_ms = 0  # how far the newest trade folded trails the clock (both in venue time)
        self.lag_max_ms = 0
        self._behind = False  # said that we trail by LAG_WARN_MS or more, not yet that we caught up

    def _unread(self) -> list[dict[str, Any]] | None:
        """The trades ccxt.pro stored since we last read, oldest first; None if it keeps no store.

        ccxt.pro resolves `watch_trades` only on the next message, so trades that
        arrived while this feed was busy (publishing, backfilling) would wait for
        a later trade, or be lost to a close by time. Reading its store with our
        own cursor sees them at once, and never twice. The scan walks back only
        over what is new; a cursor no longer in the store means trades were lost.
        """
        stored = (getattr(self.exchange.ccxt, "trades", None) or {}).get(self.symbol)
        if stored is None:
            return None
        cursor = self._last_read if stored is self._store else None  # a new store (resubscribed): all unread
        self._store = stored
        fresh: list[dict[str, Any]] = []
        if cursor is None:
            fresh.extend(stored)
        else:
            for trade in reversed(stored):
                if trade is cursor:
                    break
                fresh.append(trade)
            else:
                self._overran = True  # more trades came than the store keeps: some were never read
            fresh.reverse()
        if fresh:
            self._last_read = fresh[-1]
        return fresh

    async def _watch(self) -> Any:
        waiting = self._unread()
        if waiting:
            return waiting
        current = self.candles.current
        wait_s = math.inf
        if current is not None:
            close_at_ms = current.open_time_ms + self._length_ms + round(self.settle_s * 1000)
            wait_s = max(0.0, (close_at_ms - self.clock.now_ms()) / 1000)
        if wait_s >= self.settings.silence_s:  # the shared watchdog wakes us before the close is due
            return await self._take()
        # asyncio's timeout costs a third of an anyio scope, and this one is set up once per frame.
        deadline = asyncio.timeout(wait_s)
        try:
            async with deadline:
                return await self._take()  # cancelling this wait loses nothing: ccxt.pro keeps the trades
        except TimeoutError:
            if deadline.expired():
                return None  # the open candle's close is due: `_absorb(None)` closes it by time
            raise

    async def _take(self) -> Any:
        update = await self.exchange.ccxt.watch_trades(self.symbol)
        fresh = self._unread()
        return update if fresh is None else fresh

    def _reset(self) -> None:
        self.candles = TradeCandles(self._length_ms)
        self._complete_from_ms = None

    async def _unwatch(self) -> None:
        if self.exchange.ccxt.has.get("unWatchTrades"):
            with contextlib.suppress(Exception):  # already gone is as good as dropped
                await self.exchange.ccxt.un_watch_trades(self.symbol)

    async def _absorb(self, update: Any) -> bool:
        if update is None:  # the open candle's interval (plus settle) is over: close it by time
            closed = self.candles.close_until(self.clock.now_ms() - round(self.settle_s * 1000))
            bars = [] if closed is None else [closed]
        else:
            if self._overran:
                await self._lost_trades(update)
            if self._complete_from_ms is None:
                first = next((t for t in map(trade_from_ccxt, update) if t is not None), None)
                if first is not None:
                    # The first interval seen after a (re)connect began before we subscribed.
                    self._complete_from_ms = first.timestamp_ms - first.timestamp_ms % self._length_ms + self._length_ms
            rejected = self.candles.rejected
            bars = self.candles.add_ccxt(update)
            if self.candles.rejected - rejected < len(update):
                self._usable()
                await self._measure_lag()
        for bar in bars:
            if self._complete_from_ms is None or bar.open_time_ms < self._complete_from_ms:
                continue  # began before we subscribed: REST publishes it before the next one
            last = self.rest._last_open_ms
            if last is None or bar.open_time_ms > last + self._length_ms:
                await self.rest.backfill_before(bar.open_time_ms)
            await self.rest.publish_closed([bar], closed_by_ms=bar.open_time_ms + self._length_ms)
        if self._track_extremes:  # `current` builds a Bar: only where a synthetic stop needs it
            await self._price_moved(self.candles.current)
        return False

    async def _lost_trades(self, update: list[dict[str, Any]]) -> None:
        """Trades fell out of ccxt.pro's store unread: the candles they belong to come from REST instead."""
        self._overran = False
        self.overruns += 1
        newest, current = self.candles.newest_ms, self.candles.current
        oldest_kept = next((t for t in map(trade_from_ccxt, update) if t is not None), None)
        log.warning(
            "%s %s %s: more trades arrived between two reads than ccxt.pro keeps (tradesLimit %s); "
            "the candles they fall in are fetched over REST",
            self.exchange.name,
            self.symbol,
            self.interval,
            self.exchange.ccxt.options.get("tradesLimit"),
        )
        if newest is not None and oldest_kept is not None:
            length = self._length_ms
            # The lost trades came after the newest one folded: from its candle if still open, else the next.
            from_ms = current.open_time_ms if current is not None else newest - newest % length + length
            to_ms = oldest_kept.timestamp_ms - oldest_kept.timestamp_ms % length
            await self.rest._emit(FeedGapDetected, from_ms=from_ms, to_ms=max(from_ms, to_ms))
        self._reset()  # as after a reconnect: the open candle and the next one are REST's to publish

    async def _measure_lag(self) -> None:
        """Say (`FeedLagging`) when the newest trade folded trails the clock by `LAG_WARN_MS`, and when it caught up."""
        newest = self.candles.newest_ms
        if newest is None:
            return
        self.lag_ms = lag = max(0, self.clock.now_ms() - newest)
        self.lag_max_ms = max(self.lag_max_ms, lag)
        if not self._behind and lag >= LAG_WARN_MS:
            self._behind = True
            log.warning(
                "%s %s %s: trades folded %d ms behind the market", self.exchange.name, self.symbol, self.interval, lag
            )
            await self.rest._emit(FeedLagging, lag_ms=lag, behind=True)
        elif self._behind and lag < LAG_WARN_MS // 2:
            self._behind = False
            log.info("%s %s %s: trades caught up (%d ms behind)", self.exchange.name, self.symbol, self.interval, lag)
            await self.rest._emit(FeedLagging, lag_ms=lag, behind=False)

    def __repr__(self) -> str:
        return (
            f"TradeCandleFeed({self.exchange.name} {self.symbol} {self.interval}, frames={self.frames}, "
            f"lag_ms={self.lag_ms}, overruns={self.overruns}, candles={self.candles!r})"
        )


#: Venues whose ccxt.pro kline stream serves only some intervals (Upbit streams `1s` candles only).
