"""Closed candles from an exchange: REST polling, and a WebSocket stream backed by it.

Polling (`PollingCandleFeed`) asks just after each candle closes.

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

from twinstar.adapters.base import Bar, Exchange, ExchangeError
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.bus.bus import Bus
from twinstar.bus.events import (
    CandleClosed,
    CandleRejected,
    FeedBackfilled,
    FeedConnected,
    FeedDisconnected,
    FeedGapDetected,
    FeedStopped,
)
from twinstar.clock import Clock
from twinstar.intervals import interval_ms

log: Final = logging.getLogger("twinstar.feed")

FeedEvent = (
    CandleClosed | FeedConnected | FeedDisconnected | FeedGapDetected | FeedBackfilled | FeedStopped | CandleRejected
)


def bar_problem(bar: Bar) -> str | None:
    """Say what is wrong with a candle, or None when it is usable."""
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

    async def publish_closed(self, bars: list[Bar]) -> int:
        """Publish, in order and once each, the bars whose interval is over; return how many."""
        now_ms = self.clock.now_ms()
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
            expected = None if self._last_open_ms is None else self._last_open_ms + self._length_ms
            if expected is not None and bar.open_time_ms > expected:
                await self._emit(FeedGapDetected, from_ms=expected, to_ms=bar.open_time_ms - self._length_ms)
            self._last_open_ms = bar.open_time_ms
            problem = bar_problem(bar)
            if problem is not None:
                log.error("rejected candle %s %s %d: %s", self.symbol, self.interval, bar.open_time_ms, problem)
                await self._emit(CandleRejected, open_time_ms=bar.open_time_ms, reason=problem)
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
                await self._emit(FeedDisconnected, reason=exc.message, attempt=attempt)
                await self.clock.sleep(self.backoff_s[min(attempt, len(self.backoff_s)) - 1])
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


class StreamCandleFeed:
    """Component: closed candles from a ccxt.pro `watch_ohlcv` stream, REST-backfilled.

    A candle is published once a newer candle appears in the stream, so a
    candle still being traded is never taken for a closed one. After every
    (re)connect, and whenever the stream skips candles, the REST path fetches
    what was missed; both paths share one publisher, so nothing is published
    twice. A stream silent for `silence_s` is treated as dead and reopened.
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
        length_s = interval_ms(interval) / 1000
        self.silence_s = silence_s if silence_s is not None else max(10.0, 3 * length_s)
        self.backoff_s = backoff_s
        self.rest = PollingCandleFeed(exchange, symbol, interval, clock)
        self._stopped = False
        self._current: Bar | None = None  # the stream's candle still being traded
        self.frames = 0

    def attach(self, bus: Bus) -> None:
        """Publish through the shared publisher."""
        self.rest.attach(bus)

    async def run(self) -> None:
        """Watch the stream until `stop_intake`; reconnect with backoff, backfill on every reconnect."""
        attempt = 0
        need_backfill = True
        length = interval_ms(self.interval)
        while not self._stopped:
            try:
                if need_backfill:
                    await self.rest.poll_once()
                    need_backfill = False
                with anyio.fail_after(self.silence_s):  # a network watchdog: real time by nature
                    rows = await self.exchange.ccxt.watch_ohlcv(self.symbol, self.interval)
            except Exception as exc:  # every failure means the same: reconnect, then backfill
                attempt += 1
                need_backfill = True
                reason = "stream silent" if isinstance(exc, TimeoutError) else self.exchange.scrub(str(exc))[:200]
                await self.rest._emit(FeedDisconnected, reason=reason, attempt=attempt)
                await self._drop_sockets()
                self._current = None
                await self.clock.sleep(self.backoff_s[min(attempt, len(self.backoff_s)) - 1])
                continue
            self.frames += 1
            if attempt or self.frames == 1:
                attempt = 0
                await self.rest._emit(FeedConnected)
            # ccxt.pro hands over only what changed since the last call: track the open candle here.
            closed: list[Bar] = []
            for r in sorted(rows, key=lambda row: row[0]):
                bar = Bar(int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5] or 0))
                current = self._current
                if current is None or bar.open_time_ms == current.open_time_ms:
                    self._current = bar
                elif bar.open_time_ms > current.open_time_ms:
                    closed.append(current)  # a newer candle began: this one is final
                    self._current = bar
            last = self.rest._last_open_ms
            if closed and last is not None and closed[0].open_time_ms > last + length:
                need_backfill = True  # the stream skipped candles: REST fills them in, in order
                continue
            await self.rest.publish_closed(closed)

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

    def __repr__(self) -> str:
        return f"StreamCandleFeed({self.exchange.name} {self.symbol} {self.interval}, frames={self.frames})"
