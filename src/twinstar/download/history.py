"""Page a venue's klines from a start time to an end time into a `CandleStorage`, after what it holds.

Only closed candles are stored (the venue's newest one may still be open).
A page that brings nothing new ends the range: the venue has no more. A
failed request is retried on a growing backoff when its error kind is
retryable (rate limit, network, venue down), so a long download survives a
blip; anything else ends it with the error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import msgspec

from twinstar.adapters.base import Bar, Exchange, ExchangeError
from twinstar.bus.events import CandleClosed
from twinstar.clock import Clock
from twinstar.download.gaps import Gap, GapFinder
from twinstar.handlers.storage import CandleStorage

BACKOFF_S: Final = (1.0, 2.0, 4.0, 8.0, 16.0)
_NS_PER_MS: Final = 1_000_000


class DownloadResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one download fetched and stored, and the venue's holes within it."""

    stored_before: int  # candles of the series already in the store in the asked range
    fetched: int  # new candles written
    requests: int
    first_ms: int | None  # open time of the first and last candle the store now holds in the range
    last_ms: int | None
    gaps: list[Gap]


class Span(msgspec.Struct, frozen=True):
    """Open times ``[start_ms, end_ms)`` to fetch, and the stored candles on either side (for the gaps there)."""

    start_ms: int
    end_ms: int
    previous_ms: int | None
    next_ms: int | None


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    """What a download will fetch: the parts of the asked range the store lacks."""

    since_ms: int
    until_ms: int
    stored_before: int  # candles already stored in the asked range
    spans: list[Span]
    expected: int  # candles the spans would hold without a gap


class HistoryDownload:
    """One series' download: `run` fetches what the store lacks between `since_ms` and `until_ms`."""

    def __init__(
        self,
        exchange: Exchange,
        storage: CandleStorage,
        clock: Clock,
        *,
        symbol: str,
        interval: str,
        length_ms: int,
        page_limit: int,
    ) -> None:
        self.exchange = exchange
        self.storage = storage
        self.clock = clock
        self.symbol = symbol
        self.interval = interval
        self.length_ms = length_ms
        self.page_limit = page_limit
        self.requests = 0
        self.fetched = 0

    def plan(self, since_ms: int, until_ms: int) -> Plan:
        """Find what the store lacks of ``[since_ms, until_ms)``: before its first candle and after its last."""
        stored = self.storage.load(self.exchange.name, self.symbol, self.interval, since_ms, until_ms)
        if stored.height == 0:
            spans = [Span(since_ms, until_ms, None, None)]
        else:
            first, last = int(stored["open_time_ms"][0]), int(stored["open_time_ms"][-1])
            spans = [Span(since_ms, first, None, first), Span(last + self.length_ms, until_ms, last, None)]
            spans = [span for span in spans if span.start_ms < span.end_ms]
        expected = sum(-(-(span.end_ms - span.start_ms) // self.length_ms) for span in spans)
        return Plan(since_ms=since_ms, until_ms=until_ms, stored_before=stored.height, spans=spans, expected=expected)

    async def run(self, plan: Plan, *, on_progress: Callable[[int], None] | None = None) -> DownloadResult:
        """Fetch every missing closed candle of `plan`; report candles fetched so far to `on_progress`."""
        gaps: list[Gap] = []
        for span in plan.spans:
            gaps += await self._fetch(span, on_progress)
        stored = self.storage.load(self.exchange.name, self.symbol, self.interval, plan.since_ms, plan.until_ms)
        opens = stored["open_time_ms"]
        return DownloadResult(
            stored_before=plan.stored_before,
            fetched=self.fetched,
            requests=self.requests,
            first_ms=int(opens[0]) if stored.height else None,
            last_ms=int(opens[-1]) if stored.height else None,
            gaps=sorted(gaps, key=lambda gap: gap.from_ms),
        )

    async def _fetch(self, part: Span, on_progress: Callable[[int], None] | None) -> list[Gap]:
        finder = GapFinder(self.length_ms, part.previous_ms)
        cursor = part.start_ms
        closed_before_ms = self.clock.now_ms() - self.length_ms  # opened by then: closed now
        while cursor < part.end_ms:
            bars = [
                bar
                for bar in await self._page(cursor)
                if cursor <= bar.open_time_ms < part.end_ms and bar.open_time_ms <= closed_before_ms
            ]
            if not bars:
                break  # the venue has nothing more in this range
            for bar in bars:
                finder.see(bar.open_time_ms)
                self.storage.handle(self._candle(bar))
            self.fetched += len(bars)
            cursor = bars[-1].open_time_ms + self.length_ms
            if on_progress is not None:
                on_progress(self.fetched)
        if part.next_ms is not None:
            finder.see(part.next_ms)  # the hole, if any, between what was fetched and what was stored
        return finder.gaps

    async def _page(self, since_ms: int) -> list[Bar]:
        waits = iter(BACKOFF_S)
        while True:
            self.requests += 1
            try:
                bars = await self.exchange.fetch_ohlcv(
                    self.symbol, self.interval, since_ms=since_ms, limit=self.page_limit
                )
            except ExchangeError as exc:
                wait_s = next(waits, None)
                if wait_s is None or not exc.kind.retryable:
                    raise
                await self.clock.sleep(wait_s)
                continue
            return sorted(bars, key=lambda bar: bar.open_time_ms)

    def _candle(self, bar: Bar) -> CandleClosed:
        return CandleClosed(
            ts_ns=(bar.open_time_ms + self.length_ms) * _NS_PER_MS,
            exchange=self.exchange.name,
            symbol=self.symbol,
            interval=self.interval,
            open_time_ms=bar.open_time_ms,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=bar.volume,
        )

    def __repr__(self) -> str:
        return (
            f"HistoryDownload({self.exchange.name} {self.symbol} {self.interval}, "
            f"fetched={self.fetched}, requests={self.requests})"
        )
