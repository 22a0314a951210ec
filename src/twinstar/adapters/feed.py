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

from __future__ import annotations

import contextlib
import logging
import math
from typing import Any, Final

import anyio

from twinstar.adapters.base import Bar, Exchange, ExchangeError, bar_from_row
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.adapters.trade_candles import TradeCandles, trade_from_ccxt
from twinstar.bus.bus import Bus
from twinstar.bus.events import (
    CandleClosed,
    CandleRejected,
    FeedBackfilled,
    FeedConnected,
    FeedDisconnected,
    FeedGapDetected,
    FeedStopped,
    PriceMoved,
)
from twinstar.clock import Clock
from twinstar.intervals import interval_ms

log: Final = logging.getLogger("twinstar.feed")

FeedEvent = (
    CandleClosed
    | FeedConnected
    | FeedDisconnected
    | FeedGapDetected
    | FeedBackfilled
    | FeedStopped
    | CandleRejected
    | PriceMoved
)


DAY_MS: Final = 86_400_000


def bar_problem(bar: Bar, length_ms: int = 0) -> str | None:
    """Say what is wrong with a candle, or None when it is usable.

    With `length_ms`, an intraday candle must also open on its interval's grid
    (every venue aligns minutes and hours to UTC; days and weeks follow local
    conventions, so they are not checked).
    """
    if 0 < length_ms < DAY_MS and bar.open_time_ms % length_ms:
        return f"open time {bar.open_time_ms} is not on the {length_ms // 1000}s grid"
    prices = (bar.open, bar.high, bar.low, bar.close)
    if not all(math.isfinite(p) and p > 0 for p in prices):
        return "non-finite or non-positive price"
    if bar.high < bar.low or not bar.low <= min(bar.open, bar.close) or not max(bar.open, bar.close) <= bar.high:
        return "prices outside the candle's high/low"
    if not (math.isfinite(bar.volume) and bar.volume >= 0):
        return "bad volume"
    return None


class PollingCandleFeed:
    """Component: publishes CandleClosed for one (exchange, symbol, interval)."""

    def __init__(
        self,
        exchange: Exchange,
        symbol: str,
        interval: str,
        clock: Clock,
        *,
        settle_s: float = 2.0,
        warmup: int = 100,
        backoff_s: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0),
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.interval = interval
        self.clock = clock
        self.settle_s = settle_s  # venues finalise a candle a moment after its close
        self.warmup = warmup
        self.backoff_s = backoff_s
        self._length_ms = interval_ms(interval)
        self._last_open_ms: int | None = None
        self._stopped = False
        self._bus: Bus | None = None
        self.published = 0

    def attach(self, bus: Bus) -> None:
        """Keep the bus to publish on."""
        self._bus = bus

    async def _emit(self, event_type: type[FeedEvent], **fields: Any) -> None:
        """Publish an event of this feed's series, stamped now."""
        if self._bus is not None:
            await self._bus.publish(
                event_type(
                    ts_ns=self.clock.now_ns(),
                    exchange=self.exchange.name,
                    symbol=self.symbol,
                    interval=self.interval,
                    **fields,
                )
            )

    async def poll_once(self) -> int:
        """Fetch and publish every newly closed candle; return how many were published."""
        since = None if self._last_open_ms is None else self._last_open_ms + self._length_ms
        limit = self.warmup if since is None else 1_000
        bars = await self.exchange.fetch_ohlcv(self.symbol, self.interval, since_ms=since, limit=limit)
        published = await self.publish_closed(bars)
        if published > 1 and since is not None:
            await self._emit(FeedBackfilled, count=published - 1)
        return published

    async def backfill_before(self, until_ms: int) -> int:
        """Fetch and publish the missed candles opening before `until_ms` (the caller has the rest)."""
        since = None if self._last_open_ms is None else self._last_open_ms + self._length_ms
        if since is not None and since >= until_ms:
            return 0
        limit = self.warmup if since is None else 1_000
        bars = await self.exchange.fetch_ohlcv(self.symbol, self.interval, since_ms=since, limit=limit)
        # A later candle exists, so everything before `until_ms` is over whatever our clock says.
        published = await self.publish_closed([b for b in bars if b.open_time_ms < until_ms], closed_by_ms=until_ms)
        if published and since is not None:
            await self._emit(FeedBackfilled, count=published)
        return published

    async def publish_closed(self, bars: list[Bar], *, closed_by_ms: int | None = None) -> int:
        """Publish, in order and once each, the bars whose interval is over; return how many.

        A bar is over when it ends by `closed_by_ms`, by default the clock's now;
        a caller that saw a later candle or trade passes that proof instead.
        """
        now_ms = max(self.clock.now_ms(), closed_by_ms or 0)
        fresh = sorted(
            (
                b
                for b in bars
                if b.open_time_ms + self._length_ms <= now_ms
                and (self._last_open_ms is None or b.open_time_ms > self._last_open_ms)
            ),
            key=lambda b: b.open_time_ms,
        )
        published = 0
        for bar in fresh:
            if self._last_open_ms is not None and bar.open_time_ms <= self._last_open_ms:
                continue  # a duplicate inside one reply
            if 0 < self._length_ms < DAY_MS and bar.open_time_ms % self._length_ms:
                await self._reject(bar, bar_problem(bar, self._length_ms) or "")
                continue  # off the grid: a phantom, it neither advances the series nor counts as a gap
            expected = None if self._last_open_ms is None else self._last_open_ms + self._length_ms
            if expected is not None and bar.open_time_ms > expected:
                await self._emit(FeedGapDetected, from_ms=expected, to_ms=bar.open_time_ms - self._length_ms)
            self._last_open_ms = bar.open_time_ms
            problem = bar_problem(bar)
            if problem is not None:
                await self._reject(bar, problem)
                continue
            await self._emit(
                CandleClosed,
                open_time_ms=bar.open_time_ms,
                open=bar.open,
                high=bar.high,
                low=bar.low,
                close=bar.close,
                volume=bar.volume,
            )
            published += 1
        self.published += published
        return published

    async def _reject(self, bar: Bar, problem: str) -> None:
        log.error("rejected candle %s %s %d: %s", self.symbol, self.interval, bar.open_time_ms, problem)
        await self._emit(CandleRejected, open_time_ms=bar.open_time_ms, reason=problem)

    async def run(self) -> None:
        """Poll after every candle close until `stop_intake`; back off while the venue fails."""
        attempt = 0
        connected = False
        while not self._stopped:
            try:
                await self.poll_once()
            except ExchangeError as exc:
                attempt += 1
                connected = False
                wait = self.backoff_s[min(attempt, len(self.backoff_s)) - 1]
                await self._emit(FeedDisconnected, reason=exc.message, attempt=attempt, retry_in_s=wait)
                await self.clock.sleep(wait)
                continue
            if not connected:
                connected, attempt = True, 0
                await self._emit(FeedConnected)
            now_ms = self.clock.now_ms()
            next_close_ms = (now_ms // self._length_ms + 1) * self._length_ms
            await self.clock.sleep((next_close_ms - now_ms) / 1000 + self.settle_s)

    async def stop_intake(self) -> None:
        """Stop polling (the kernel then drains and cancels the task)."""
        if not self._stopped:
            self._stopped = True
            await self._emit(FeedStopped, reason="shutdown")

    def __repr__(self) -> str:
        return (
            f"PollingCandleFeed({self.exchange.name} {self.symbol} {self.interval}, "
            f"last_open_ms={self._last_open_ms}, published={self.published})"
        )


class _WatchedFeed:
    """The loop both stream feeds share: watch, reconnect with backoff, backfill over REST.

    After every (re)connect, and whenever a subclass reports that the stream
    skipped candles, the REST path fetches what was missed; stream and REST
    share one publisher (`self.rest`), so nothing is published twice. A stream
    silent for `silence_s` is treated as dead and reopened.
    """

    def __init__(
        self,
        exchange: CcxtExchange,
        symbol: str,
        interval: str,
        clock: Clock,
        *,
        silence_s: float | None = None,
        backoff_s: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0),
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.interval = interval
        self.clock = clock
        self._length_ms = interval_ms(interval)
        self.silence_s = silence_s if silence_s is not None else max(10.0, 3 * self._length_ms / 1000)
        self.backoff_s = backoff_s
        self.rest = PollingCandleFeed(exchange, symbol, interval, clock)
        self._stopped = False
        self.frames = 0
        # Only where the kernel keeps the stops itself: the open candle's extremes, so a stop fires mid-candle.
        self._track_extremes = not exchange.supports_native_stop
        self._extreme: Bar | None = None  # the open candle's low and high as last published

    def attach(self, bus: Bus) -> None:
        """Publish through the shared publisher."""
        self.rest.attach(bus)

    async def _watch(self) -> Any:
        """Wait for the next stream update; None when the subclass woke up without one."""
        raise NotImplementedError

    async def _absorb(self, update: Any) -> bool:
        """Publish what `update` closed (None: a wake-up without data); True asks for a REST backfill."""
        raise NotImplementedError

    def _reset(self) -> None:
        """Forget per-connection state after the stream broke."""

    async def _price_moved(self, bar: Bar | None) -> None:
        """Publish `PriceMoved` when the open candle `bar` reached a new low or high."""
        seen = self._extreme
        if not self._track_extremes or bar is None:
            return
        if seen is not None and seen.open_time_ms == bar.open_time_ms and seen.low <= bar.low and seen.high >= bar.high:
            return
        self._extreme = bar
        await self.rest._emit(PriceMoved, open_time_ms=bar.open_time_ms, low=bar.low, high=bar.high, price=bar.close)

    async def run(self) -> None:
        """Watch the stream until `stop_intake`; reconnect with backoff, backfill on every reconnect."""
        attempt = 0
        need_backfill = True
        while not self._stopped:
            try:
                if need_backfill:
                    await self.rest.poll_once()
                    need_backfill = False
                with anyio.fail_after(self.silence_s):  # a network watchdog: real time by nature
                    update = await self._watch()
            except Exception as exc:  # every failure means the same: reconnect, then backfill
                attempt += 1
                need_backfill = True
                reason = "stream silent" if isinstance(exc, TimeoutError) else self.exchange.scrub(str(exc))[:200]
                wait = self.backoff_s[min(attempt, len(self.backoff_s)) - 1]
                await self.rest._emit(FeedDisconnected, reason=reason, attempt=attempt, retry_in_s=wait)
                await self._drop_sockets()
                self._reset()
                await self.clock.sleep(wait)
                continue
            if update is not None:
                self.frames += 1
                if attempt or self.frames == 1:
                    attempt = 0
                    await self.rest._emit(FeedConnected)
            need_backfill = await self._absorb(update)

    async def _drop_sockets(self) -> None:
        """Close ccxt.pro's WebSocket clients (not the exchange): the next watch opens a fresh one."""
        clients: dict[str, object] = getattr(self.exchange.ccxt, "clients", None) or {}
        for url, client in list(clients.items()):
            clients.pop(url, None)
            with contextlib.suppress(Exception):  # a socket that is already dead may fail to close
                await client.close()  # type: ignore[attr-defined]

    async def stop_intake(self) -> None:
        """Stop watching; the kernel then cancels the task."""
        self._stopped = True
        await self.rest.stop_intake()


class StreamCandleFeed(_WatchedFeed):
    """Component: closed candles from a ccxt.pro `watch_ohlcv` stream, REST-backfilled.

    A candle is published once a newer candle appears in the stream, so a
    candle still being traded is never taken for a closed one.
    """

    _current: Bar | None = None  # the stream's candle still being traded

    async def _watch(self) -> Any:
        return await self.exchange.ccxt.watch_ohlcv(self.symbol, self.interval)

    def _reset(self) -> None:
        self._current = None

    async def _absorb(self, update: Any) -> bool:
        # ccxt.pro hands over only what changed since the last call: track the open candle here.
        closed: list[Bar] = []
        bars = [bar_from_row(row) for row in update] if isinstance(update, list) else [None]
        if None in bars:  # a frame ccxt could not make sense of: dropped, said, and the feed goes on
            await self.rest._emit(CandleRejected, open_time_ms=0, reason=f"unreadable kline row in {update!r:.120}")
        for bar in sorted((b for b in bars if b is not None), key=lambda b: b.open_time_ms):
            current = self._current
            if current is None or bar.open_time_ms == current.open_time_ms:
                self._current = bar
            elif bar.open_time_ms > current.open_time_ms:
                closed.append(current)  # a newer candle began: this one is final
                self._current = bar
        last = self.rest._last_open_ms
        if closed and last is not None and closed[0].open_time_ms > last + self._length_ms:
            return True  # the stream skipped candles: REST fills them in, in order
        await self.rest.publish_closed(closed)
        await self._price_moved(self._current)
        return False

    def __repr__(self) -> str:
        return f"StreamCandleFeed({self.exchange.name} {self.symbol} {self.interval}, frames={self.frames})"


class TradeCandleFeed(_WatchedFeed):
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
    """

    def __init__(
        self,
        exchange: CcxtExchange,
        symbol: str,
        interval: str,
        clock: Clock,
        *,
        settle_s: float = 2.0,
        silence_s: float | None = None,
        backoff_s: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0),
    ) -> None:
        super().__init__(exchange, symbol, interval, clock, silence_s=silence_s, backoff_s=backoff_s)
        self.settle_s = settle_s  # how long after an interval's end its last trades may still arrive
        # ccxt.pro keeps the last `tradesLimit` trades (1000 by default) and hands over only those: a burst
        # larger than that between two of our reads would silently lose trades, so keep more.
        options = exchange.ccxt.options
        options["tradesLimit"] = max(int(options.get("tradesLimit") or 0), 50_000)
        self.candles = TradeCandles(self._length_ms)
        self._complete_from_ms: int | None = None  # candles opening before this missed trades
        self._last_read: dict[str, Any] | None = None  # newest trade taken from ccxt.pro's store (kept on reconnect)

    def _unread(self) -> list[dict[str, Any]] | None:
        """The trades ccxt.pro stored since we last read, oldest first; None if it keeps no store.

        ccxt.pro resolves `watch_trades` only on the next message, so trades that
        arrived while this feed was busy (publishing, backfilling) would wait for
        a later trade, or be lost to a close by time. Reading its store with our
        own cursor sees them at once, and never twice.
        """
        stored = (getattr(self.exchange.ccxt, "trades", None) or {}).get(self.symbol)
        if stored is None:
            return None
        fresh: list[dict[str, Any]] = []
        for trade in reversed(stored):
            if trade is self._last_read:
                break
            fresh.append(trade)
        else:
            if self._last_read is not None:  # our cursor fell out of the store: more trades came than it keeps
                log.warning(
                    "%s %s: more trades than ccxt.pro keeps arrived between two reads", self.symbol, self.interval
                )
        if fresh:
            self._last_read = fresh[0]
        return fresh[::-1]

    async def _watch(self) -> Any:
        waiting = self._unread()
        if waiting:
            return waiting
        current = self.candles.current
        timeout_s = math.inf
        if current is not None:
            close_at_ms = current.open_time_ms + self._length_ms + round(self.settle_s * 1000)
            timeout_s = max(0.0, (close_at_ms - self.clock.now_ms()) / 1000)
        with anyio.move_on_after(timeout_s):
            # Cancelling this wait loses nothing: ccxt.pro keeps the trades in its store.
            update = await self.exchange.ccxt.watch_trades(self.symbol)
            fresh = self._unread()
            return update if fresh is None else fresh
        return None

    def _reset(self) -> None:
        self.candles = TradeCandles(self._length_ms)
        self._complete_from_ms = None

    async def _absorb(self, update: Any) -> bool:
        if update is None:  # the open candle's interval (plus settle) is over: close it by time
            closed = self.candles.close_until(self.clock.now_ms() - round(self.settle_s * 1000))
            bars = [] if closed is None else [closed]
        else:
            trades = [trade_from_ccxt(t) for t in update]
            first = next((t for t in trades if t is not None), None)
            if self._complete_from_ms is None and first is not None:
                # The first interval seen after a (re)connect began before we subscribed.
                self._complete_from_ms = first.timestamp_ms - first.timestamp_ms % self._length_ms + self._length_ms
            bars = [bar for bar in map(self.candles.add, trades) if bar is not None]
        for bar in bars:
            if self._complete_from_ms is None or bar.open_time_ms < self._complete_from_ms:
                continue  # began before we subscribed: REST publishes it before the next one
            last = self.rest._last_open_ms
            if last is None or bar.open_time_ms > last + self._length_ms:
                await self.rest.backfill_before(bar.open_time_ms)
            await self.rest.publish_closed([bar], closed_by_ms=bar.open_time_ms + self._length_ms)
        await self._price_moved(self.candles.current)
        return False

    def __repr__(self) -> str:
        return (
            f"TradeCandleFeed({self.exchange.name} {self.symbol} {self.interval}, frames={self.frames}, "
            f"candles={self.candles!r})"
        )
