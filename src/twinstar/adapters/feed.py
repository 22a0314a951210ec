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

import asyncio
import contextlib
import itertools
import logging
import math
import time
from typing import Any, Final

import anyio

from twinstar.adapters.base import Bar, Exchange, ExchangeError, bar_from_row
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.adapters.kline_finals import track as track_kline_finals
from twinstar.adapters.supervision import Backoff, cancelled_from_outside
from twinstar.adapters.trade_candles import TradeCandles, trade_from_ccxt
from twinstar.bus.bus import Bus
from twinstar.bus.events import (
    CandleClosed,
    CandleRejected,
    FeedBackfilled,
    FeedConnected,
    FeedDegraded,
    FeedDisconnected,
    FeedGapDetected,
    FeedLagging,
    FeedStopped,
    PriceMoved,
)
from twinstar.clock import Clock
from twinstar.config import FeedConfig
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
    | FeedDegraded
    | FeedLagging
)


DAY_MS: Final = 86_400_000
# A candle not seen closed this long after its close is asked for over REST (lost, or an empty interval).
OVERDUE_GRACE_S: Final = 5.0
# A candle published this long after its close is `late` (a live feed publishes within a few seconds).
LATE_AFTER_MS: Final = round(OVERDUE_GRACE_S * 1000)
_OVERDUE: Final = object()  # `_next_update`'s answer when a candle close is overdue
# A trade feed whose newest trade trails the clock this much is behind the market (network and backlog).
LAG_WARN_MS: Final = 1_000


def _reason(exc: BaseException) -> str:
    """What a feed's failure says about itself, in one line."""
    if isinstance(exc, ExchangeError):
        return exc.message[:200]
    if isinstance(exc, TimeoutError):
        return "stream silent"
    return f"{type(exc).__name__}: {exc}"[:200]


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
        settings: FeedConfig | None = None,
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.interval = interval
        self.clock = clock
        self.settle_s = settle_s  # venues finalise a candle a moment after its close
        self.warmup = warmup
        self.settings = settings or FeedConfig()
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
        clock_ms = self.clock.now_ms()
        now_ms = max(clock_ms, closed_by_ms or 0)
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
                late=clock_ms - (bar.open_time_ms + self._length_ms) > LATE_AFTER_MS,
            )
            published += 1
        self.published += published
        return published

    async def _reject(self, bar: Bar, problem: str) -> None:
        log.error("rejected candle %s %s %d: %s", self.symbol, self.interval, bar.open_time_ms, problem)
        await self._emit(CandleRejected, open_time_ms=bar.open_time_ms, reason=problem)

    async def run(self) -> None:
        """Poll after every candle close until `stop_intake`; back off while the venue fails, maybe give up."""
        backoff = Backoff(self.settings)
        connected = False
        while not self._stopped:
            try:
                await self.poll_once()
            except (Exception, asyncio.CancelledError) as exc:  # this feed's trouble, never the kernel's
                if cancelled_from_outside(exc):
                    raise  # our own shutdown
                if self._stopped:
                    return
                connected = False
                reason = _reason(exc)
                wait = backoff.failed()
                if wait is None:
                    await self.give_up(f"{backoff.attempt - 1} retries failed; last: {reason}")
                    return
                await self._emit(FeedDisconnected, reason=reason, attempt=backoff.attempt, retry_in_s=wait)
                await self.clock.sleep(wait)
                continue
            if not connected:
                connected = True
                backoff.succeeded()
                await self._emit(FeedConnected)
            now_ms = self.clock.now_ms()
            next_close_ms = (now_ms // self._length_ms + 1) * self._length_ms
            await self.clock.sleep((next_close_ms - now_ms) / 1000 + self.settle_s)

    async def stop_intake(self) -> None:
        """Stop polling (the kernel then drains and cancels the task)."""
        if not self._stopped:
            self._stopped = True
            await self._emit(FeedStopped, reason="shutdown")

    async def give_up(self, reason: str) -> None:
        """End this feed for good (its backoff is exhausted); the kernel and the other feeds run on."""
        if not self._stopped:
            self._stopped = True
            log.error("%s %s %s feed stopped: %s", self.exchange.name, self.symbol, self.interval, reason)
            await self._emit(FeedStopped, reason=reason)

    def __repr__(self) -> str:
        return (
            f"PollingCandleFeed({self.exchange.name} {self.symbol} {self.interval}, "
            f"last_open_ms={self._last_open_ms}, published={self.published})"
        )


class _WatchedFeed:
    """The loop both stream feeds share: watch, reconnect with backoff, backfill over REST.

    After every (re)connect, and whenever a subclass reports that the stream
    skipped candles, the REST path fetches what was missed; stream and REST
    share one publisher (`self.rest`), so nothing is published twice.

    Each feed is supervised on its own: any failure of one watch, one frame or
    one backfill (a REST error, a malformed row, a future cancelled because a
    sibling's reconnect closed the shared client) is this feed's alone: it is
    published as `FeedDisconnected`, waited out on `Backoff` and retried, and
    after `feed.max_attempts` the feed ends with `FeedStopped`; the kernel and
    the other feeds run on. The venue's ccxt.pro client is shared by every
    feed of the venue (one socket, subscriptions multiplexed): only a socket
    that has received nothing at all for `feed.silence_s` is closed; a stream
    that is alive but late with a candle is checked over REST within
    `OVERDUE_GRACE_S` of the candle's close.
    """

    def __init__(
        self, exchange: CcxtExchange, symbol: str, interval: str, clock: Clock, *, settings: FeedConfig | None = None
    ) -> None:
        self.exchange = exchange
        self.symbol = symbol
        self.interval = interval
        self.clock = clock
        self.settings = settings or FeedConfig()
        self._length_ms = interval_ms(interval)
        self.rest = PollingCandleFeed(exchange, symbol, interval, clock, settings=self.settings)
        self._stopped = False
        self.frames = 0
        self._usable_at = 0.0  # monotonic time of the last frame that held something usable
        self._said_unusable = False
        self._checked_due_ms = 0  # the overdue candle close already checked over REST
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

    async def _unwatch(self) -> None:
        """Drop this feed's own subscription, where ccxt.pro can (the next watch subscribes again)."""

    def _reset(self) -> None:
        """Forget per-connection state after the stream broke."""

    def _usable(self) -> None:
        """A subclass saw something usable in the last frame."""
        self._usable_at = time.monotonic()
        self._said_unusable = False

    async def _price_moved(self, bar: Bar | None) -> None:
        """Publish `PriceMoved` when the open candle `bar` reached a new low or high."""
        seen = self._extreme
        if not self._track_extremes or bar is None:
            return
        if seen is not None and seen.open_time_ms == bar.open_time_ms and seen.low <= bar.low and seen.high >= bar.high:
            return
        self._extreme = bar
        await self.rest._emit(PriceMoved, open_time_ms=bar.open_time_ms, low=bar.low, high=bar.high, price=bar.close)

    def _due_ms(self) -> int | None:
        """When the candle after the last one published should have been seen closed, grace included."""
        last = self.rest._last_open_ms
        if last is None:
            return None
        return last + 2 * self._length_ms + round(OVERDUE_GRACE_S * 1000)

    async def run(self) -> None:
        """Watch the stream until `stop_intake` or until the backoff gives up; see the class docstring."""
        backoff = Backoff(self.settings)
        need_backfill = True
        self._usable_at = time.monotonic()
        while not self._stopped:
            try:
                if need_backfill:
                    await self.rest.poll_once()
                    need_backfill = False
                update = await self._next_update()
                if update is _OVERDUE:
                    await self._check_overdue()
                    continue
                if update is not None:
                    self.frames += 1
                    if backoff.succeeded() or self.frames == 1:
                        await self.rest._emit(FeedConnected)
                need_backfill = await self._absorb(update)
                if update is not None:
                    await self._say_if_unusable()
            except (Exception, asyncio.CancelledError) as exc:
                if cancelled_from_outside(exc):
                    raise  # our own shutdown
                if self._stopped:
                    return
                need_backfill = True
                self._reset()
                reason = self.exchange.scrub(_reason(exc))
                wait = backoff.failed()
                if wait is None:
                    await self.rest.give_up(f"{backoff.attempt - 1} retries failed; last: {reason}")
                    return
                await self.rest._emit(FeedDisconnected, reason=reason, attempt=backoff.attempt, retry_in_s=wait)
                if isinstance(exc, TimeoutError):
                    await self._close_dead_sockets()
                await self.clock.sleep(wait)

    async def _next_update(self) -> Any:
        """The next update; `_OVERDUE` when a candle close is late; TimeoutError when the socket is dead."""
        due = self._due_ms()
        overdue_in_s = math.inf if due is None or due <= self._checked_due_ms else (due - self.clock.now_ms()) / 1000
        if overdue_in_s <= 0:
            return _OVERDUE
        with anyio.move_on_after(min(self.settings.silence_s, overdue_in_s)):  # watchdogs: real time by nature
            return await self._watch()
        due = self._due_ms()
        if due is not None and due > self._checked_due_ms and self.clock.now_ms() >= due:
            return _OVERDUE
        if self._socket_alive():
            return None  # our subscription is quiet (no trades), the socket is not: nothing is lost
        raise TimeoutError("stream silent")

    async def _check_overdue(self) -> None:
        """A candle should have closed by now: REST tells a lost one (published now) from an empty one."""
        due = self._due_ms()
        self._checked_due_ms = due or 0
        before = self.rest.published
        await self.rest.poll_once()
        if self.rest.published > before:
            log.warning("%s %s: the stream missed a candle; REST had it", self.exchange.name, self.symbol)
            # The subscription may be stuck although the socket lives: renew it. Bounded: a venue that never
            # acknowledges the unsubscribe must not hold this feed (REST has it covered meanwhile).
            with anyio.move_on_after(min(self.settings.silence_s, 5.0)):
                await self._unwatch()

    async def _say_if_unusable(self) -> None:
        if self._said_unusable or time.monotonic() - self._usable_at < self.settings.unusable_s:
            return
        self._said_unusable = True
        reason = f"frames arrive but none usable for {self.settings.unusable_s:g}s"
        log.error("%s %s %s: %s", self.exchange.name, self.symbol, self.interval, reason)
        await self.rest._emit(FeedDegraded, reason=reason)

    def _own_sockets(self) -> dict[str, Any]:
        """The venue's ccxt.pro clients that carry this feed's subscription (by url).

        ccxt.pro keys a client's futures and subscriptions by message hashes
        that name the unified symbol (`ohlcv::BTC/USDT:USDT::1m`, `trades::...`);
        the account's private socket names none, so it is never taken for ours.
        """
        clients: dict[str, Any] = getattr(self.exchange.ccxt, "clients", None) or {}
        own = {}
        for url, client in clients.items():
            keys = [*(getattr(client, "subscriptions", None) or {}), *(getattr(client, "futures", None) or {})]
            if any(self.symbol in str(key) for key in keys):
                own[url] = client
        return own

    def _socket_alive(self) -> bool:
        """Whether a socket carrying this feed received anything within `silence_s` (pongs and siblings count)."""
        horizon_ms = time.time() * 1000 - self.settings.silence_s * 1000
        return any((getattr(c, "last_message_at", None) or 0) > horizon_ms for c in self._own_sockets().values())

    async def _close_dead_sockets(self) -> None:
        """Close this feed's sockets that received nothing within `silence_s` (a half-open socket).

        Only this feed's, and only dead ones: a client is shared with the venue's
        other feeds (and its private stream has its own), whose live
        subscriptions must not be torn down by this feed's trouble.
        """
        clients: dict[str, Any] = getattr(self.exchange.ccxt, "clients", None) or {}
        horizon_ms = time.time() * 1000 - self.settings.silence_s * 1000
        for url, client in self._own_sockets().items():
            if (getattr(client, "last_message_at", None) or 0) <= horizon_ms:
                clients.pop(url, None)
                with contextlib.suppress(Exception):  # a socket that is already dead may fail to close
                    await client.close()

    async def stop_intake(self) -> None:
        """Stop watching; the kernel then cancels the task."""
        self._stopped = True
        await self.rest.stop_intake()


class StreamCandleFeed(_WatchedFeed):
    """Component: closed candles from a ccxt.pro `watch_ohlcv` stream, REST-backfilled.

    A candle is published once a newer candle appears in the stream, so a
    candle still being traded is never taken for a closed one. Its values are
    the final ones only if the venue's final update arrived (`kline_finals`);
    otherwise the candle is confirmed over REST first and published as the
    venue's REST answer has it.
    """

    _current: Bar | None = None  # the stream's candle still being traded

    def __init__(
        self, exchange: CcxtExchange, symbol: str, interval: str, clock: Clock, *, settings: FeedConfig | None = None
    ) -> None:
        super().__init__(exchange, symbol, interval, clock, settings=settings)
        self._finals = track_kline_finals(exchange.ccxt)
        self.confirmed_over_rest = 0

    async def _final(self, candle: Bar) -> Bar:
        """`candle` as the venue has it closed: the stream's own if its final update came, else REST's."""
        ccxt = self.exchange.ccxt
        if self._finals is not None:
            market_id = str(((ccxt.markets or {}).get(self.symbol) or {}).get("id", ""))
            interval = str((ccxt.timeframes or {}).get(self.interval, self.interval))
            if self._finals.seen(market_id, interval, candle.open_time_ms):
                return candle
        self.confirmed_over_rest += 1
        rows = await self.exchange.fetch_ohlcv(self.symbol, self.interval, since_ms=candle.open_time_ms, limit=2)
        return next((bar for bar in rows if bar.open_time_ms == candle.open_time_ms), candle)

    async def _watch(self) -> Any:
        return self._cached_newer() or await self.exchange.ccxt.watch_ohlcv(self.symbol, self.interval)

    def _cached_newer(self) -> list[Any] | None:
        """Rows ccxt.pro stored while we were busy, if a newer candle is among them.

        A watch resolves only on the next frame: frames that arrived while this
        feed was publishing or confirming sit in ccxt.pro's cache, and the candle
        they close would wait for the venue's next frame.
        """
        current = self._current
        timeframes: dict[str, Any] = getattr(self.exchange.ccxt, "ohlcvs", None) or {}
        stored = (timeframes.get(self.symbol) or {}).get(self.interval) if current is not None else None
        if not stored or current is None:
            return None
        rows = [row for row in stored if isinstance(row, list) and row and isinstance(row[0], int)]
        if not any(row[0] > current.open_time_ms for row in rows):
            return None
        return [row for row in rows if row[0] >= current.open_time_ms]

    def _reset(self) -> None:
        self._current = None

    async def _unwatch(self) -> None:
        if self.exchange.ccxt.has.get("unWatchOHLCV"):
            with contextlib.suppress(Exception):  # already gone is as good as dropped
                await self.exchange.ccxt.un_watch_ohlcv(self.symbol, self.interval)

    async def _absorb(self, update: Any) -> bool:
        if update is None:  # a quiet wake-up: nothing arrived, nothing to publish
            return False
        # ccxt.pro hands over only what changed since the last call: track the open candle here.
        closed: list[Bar] = []
        bars = [bar_from_row(row) for row in update] if isinstance(update, list) else [None]
        if None in bars:  # a frame ccxt could not make sense of: dropped, said, and the feed goes on
            await self.rest._emit(CandleRejected, open_time_ms=0, reason=f"unreadable kline row in {update!r:.120}")
        usable = sorted((b for b in bars if b is not None), key=lambda b: b.open_time_ms)
        if usable:
            self._usable()
        for bar in usable:
            current = self._current
            if current is None or bar.open_time_ms == current.open_time_ms:
                self._current = bar
            elif bar.open_time_ms > current.open_time_ms:
                closed.append(current)  # a newer candle began: this one is final
                self._current = bar
        last = self.rest._last_open_ms
        opens = [c.open_time_ms for c in closed]
        if last is not None and any(b - a > self._length_ms for a, b in itertools.pairwise([last, *opens])):
            return True  # the stream skipped candles (before or between these): REST fills them in, in order
        await self.rest.publish_closed([await self._final(candle) for candle in closed])
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
