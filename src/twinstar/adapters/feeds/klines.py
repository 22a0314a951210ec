"""Closed candles from a ccxt.pro kline stream (`watch_ohlcv`), REST-backed."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

from ccxt.base.errors import NetworkError

from twinstar.adapters.base import Bar, bar_from_row
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.adapters.feeds.watched import WatchedFeed
from twinstar.adapters.kline_arrivals import KlineListener
from twinstar.adapters.kline_arrivals import tap as tap_kline_arrivals
from twinstar.adapters.kline_finals import track as track_kline_finals
from twinstar.bus.events import (
    CandleRejected,
)
from twinstar.clock import Clock
from twinstar.config import FeedConfig

OHLCV_KEPT = 100  # rows ccxt.pro keeps per symbol: far more than can arrive between two of our reads


class StreamCandleFeed(WatchedFeed, KlineListener):
    """Component: closed candles from a ccxt.pro `watch_ohlcv` stream, REST-backfilled.

    A candle is published on the frame the venue marks it final with
    (`kline_finals`), or else once a newer candle appears in the stream, so a
    candle still being traded is never taken for a closed one. Without its
    final update it is confirmed over REST first and published as the
    venue's REST answer has it. Once subscribed, frames are pushed to the feed
    (`kline_arrivals`) rather than watched for one call at a time.
    """

    _current: Bar | None = None  # the stream's candle still being traded
    _sockets: tuple[Any, ...] = ()  # the ccxt.pro clients carrying our subscription; () until subscribed
    _fresh = False  # a frame arrived since the cache was last read
    _broken: Exception | None = None  # our socket closed under us
    _waiter: asyncio.Future[None] | None = None

    def __init__(
        self, exchange: CcxtExchange, symbol: str, interval: str, clock: Clock, *, settings: FeedConfig | None = None
    ) -> None:
        super().__init__(exchange, symbol, interval, clock, settings=settings)
        # ccxt.pro keeps `OHLCVLimit` rows per symbol (1,000 by default), all grown into over the first
        # 1,000 candles of a run; we read only the newest few (`_cached_newer`), so keep few.
        if "OHLCVLimit" not in exchange.config.options:  # the user's own setting wins
            exchange.ccxt.options["OHLCVLimit"] = OHLCV_KEPT
        self._finals = track_kline_finals(exchange.ccxt)
        self._arrivals = tap_kline_arrivals(exchange.ccxt)
        self.confirmed_over_rest = 0

    def _key(self) -> tuple[str, str]:
        """This feed's frames as the venue names them: (market id, interval code)."""
        ccxt = self.exchange.ccxt
        market_id = str(((ccxt.markets or {}).get(self.symbol) or {}).get("id", ""))
        return market_id, str((ccxt.timeframes or {}).get(self.interval, self.interval))

    async def _final(self, candle: Bar) -> Bar:
        """`candle` as the venue has it closed: the stream's own if its final update came, else REST's."""
        if self._marked_final(candle):
            return candle
        self.confirmed_over_rest += 1
        rows = await self.exchange.fetch_ohlcv(self.symbol, self.interval, since_ms=candle.open_time_ms, limit=2)
        return next((bar for bar in rows if bar.open_time_ms == candle.open_time_ms), candle)

    async def _watch(self) -> Any:
        if not self._sockets or self._current is None:
            return self._cached_newer() or await self._subscribe()
        if not self._fresh:
            self._waiter = waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        if self._broken is not None:
            raise self._broken
        self._fresh = False
        return self._cached_since(self._current.open_time_ms)

    async def _subscribe(self) -> Any:
        """Watch once; from then on, where the venue's frames are tapped, they are pushed to `arrived`."""
        rows = await self.exchange.ccxt.watch_ohlcv(self.symbol, self.interval)
        if self._arrivals is not None and not self._sockets:
            self._sockets = tuple(self._own_sockets().values())
            self._fresh = False  # what arrived so far is in `rows`
            if self._sockets:
                self._arrivals.listen(self._key(), self)
        return rows

    def arrived(self) -> None:
        self._fresh = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def closed(self, client: Any, error: Any) -> None:
        if client not in self._sockets:
            return
        self._broken = error if isinstance(error, Exception) else NetworkError(f"stream closed, code {error}")
        self.arrived()

    def _cached_since(self, open_ms: int) -> list[Any]:
        """ccxt.pro's cached rows of this feed from the candle opening at `open_ms` on (oldest first)."""
        timeframes: dict[str, Any] = getattr(self.exchange.ccxt, "ohlcvs", None) or {}
        stored = (timeframes.get(self.symbol) or {}).get(self.interval) or []
        rows = getattr(stored, "_deque", stored)  # the cache's own deque: read at C speed, not item by item
        tail: list[Any] = []
        for row in reversed(rows):
            if _open_ms(row) < open_ms:
                break
            tail.append(row)
        return tail[::-1]

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
        # Checked on every frame: look only at the newest rows (ccxt.pro appends in time order), not the store.
        if _open_ms(stored[-1]) <= current.open_time_ms:
            return None
        tail: list[Any] = []
        for row in reversed(stored):
            if _open_ms(row) < current.open_time_ms:
                break
            tail.append(row)
        return tail[::-1]

    def _reset(self) -> None:
        self._current = None
        self._sockets, self._broken, self._fresh = (), None, False  # the next watch subscribes again

    async def _unwatch(self) -> None:
        self._sockets = ()
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
        current = self._current
        proof_ms = current.open_time_ms if current is not None and closed else None  # a newer candle began
        if current is not None and self._marked_final(current):
            closed.append(current)  # over now, not at the next candle's first frame (that may be seconds away)
            proof_ms = current.open_time_ms + self._length_ms
        last = self.rest._last_open_ms
        closed = [c for c in closed if last is None or c.open_time_ms > last]  # a final one went out already
        opens = [c.open_time_ms for c in closed]
        if last is not None and any(b - a > self._length_ms for a, b in itertools.pairwise([last, *opens])):
            return True  # the stream skipped candles (before or between these): REST fills them in, in order
        await self.rest.publish_closed([await self._final(candle) for candle in closed], closed_by_ms=proof_ms)
        await self._price_moved(current)
        return False

    def _marked_final(self, candle: Bar) -> bool:
        """Whether the venue's frames marked `candle` final (Binance `x`, Bybit `confirm`, OKX `confirm`)."""
        return self._finals is not None and self._finals.seen(*self._key(), candle.open_time_ms)

    def __repr__(self) -> str:
        return f"StreamCandleFeed({self.exchange.name} {self.symbol} {self.interval}, frames={self.frames})"


def _open_ms(row: Any) -> int:
    """A cached kline row's open time; -1 for a row that is not one."""
    return row[0] if isinstance(row, list) and row and isinstance(row[0], int) else -1
