"""Closed candles by REST polling, and the publisher every feed of a series shares."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any, Final

from twinstar.adapters.base import Bar, Exchange
from twinstar.adapters.supervision import Backoff, cancelled_from_outside, reason_of
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
                reason = reason_of(exc)
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
