"""The loop the stream feeds share: watch, supervise, reconnect, backfill and check overdue closes over REST."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import Any, Final

import anyio

from twinstar.adapters.base import Bar
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.adapters.feeds.polling import (
    OVERDUE_GRACE_S,
    PollingCandleFeed,
)
from twinstar.adapters.supervision import Backoff, cancelled_from_outside, reason_of
from twinstar.bus.bus import Bus
from twinstar.bus.events import (
    FeedConnected,
    FeedDegraded,
    FeedDisconnected,
    PriceMoved,
)
from twinstar.clock import Clock
from twinstar.config import FeedConfig
from twinstar.intervals import interval_ms

log: Final = logging.getLogger("twinstar.feed")

_OVERDUE: Final = object()  # `_next_update`'s answer when a candle close is overdue


class WatchedFeed:
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
                reason = self.exchange.scrub(reason_of(exc))
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
        # Watchdogs: real time by nature. asyncio's timeout, not anyio's scope: this runs for every frame,
        # and it costs a timer handle where a cancel scope costs several times that.
        watchdog = asyncio.timeout(min(self.settings.silence_s, overdue_in_s))
        try:
            async with watchdog:
                return await self._watch()
        except TimeoutError:
            if not watchdog.expired():
                raise  # not our watchdog's
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
