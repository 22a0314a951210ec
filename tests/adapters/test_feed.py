"""The polling feed against the simulated exchange (its candles are the venue's history)."""

from __future__ import annotations

import pytest

from tests.pipeline.harness import Tap
from twinstar.adapters.base import Bar
from twinstar.adapters.feeds import PollingCandleFeed, bar_problem
from twinstar.adapters.sim import SimExchange
from twinstar.bus.bus import Bus
from twinstar.bus.events import (
    CandleClosed,
    CandleRejected,
    FeedBackfilled,
    FeedGapDetected,
)
from twinstar.clock import SimClock

pytestmark = pytest.mark.anyio
MIN = 60_000


class Venue(SimExchange):
    """A sim whose candle history is set directly, as a venue's REST klines would be."""

    def __init__(self, clock: SimClock) -> None:
        super().__init__(clock)
        self.history: list[Bar] = []

    async def fetch_ohlcv(
        self, symbol: str, interval: str, *, since_ms: int | None = None, limit: int = 500
    ) -> list[Bar]:
        self.fetches += 1
        bars = [b for b in self.history if since_ms is None or b.open_time_ms >= since_ms]
        return bars[-limit:] if since_ms is None else bars[:limit]

    fetches = 0


def bar(minute: int, close: float = 100.0) -> Bar:
    return Bar(minute * MIN, close, close, close, close, 1.0)


async def test_only_closed_candles_are_published_once_and_gaps_are_backfilled() -> None:
    clock = SimClock(10 * MIN * 1_000_000)
    venue = Venue(clock)
    venue.history = [bar(m) for m in range(11)]  # minute 10 is still open at t=10:00
    bus = Bus(clock, mode="replay")
    tap = Tap()
    tap.attach(bus)
    feed = PollingCandleFeed(venue, "BTC/USD", "1m", clock)
    feed.attach(bus)
    assert await feed.poll_once() == 10
    assert await feed.poll_once() == 0  # nothing new: nothing twice
    venue.history += [bar(m) for m in range(11, 15)]
    clock.set_ns(15 * MIN * 1_000_000)  # the feed slept through minutes 10..14
    assert await feed.poll_once() == 5
    opens = [e.open_time_ms // MIN for e in tap.of(CandleClosed)]  # type: ignore[attr-defined]
    assert opens == list(range(15))
    assert tap.of(FeedBackfilled)[0].count == 4  # type: ignore[attr-defined]
    venue.history += [bar(17)]  # the venue itself has no candle for 15 and 16
    clock.set_ns(18 * MIN * 1_000_000)
    await feed.poll_once()
    [gap] = tap.of(FeedGapDetected)
    assert (gap.from_ms, gap.to_ms) == (15 * MIN, 16 * MIN)  # type: ignore[attr-defined]


async def test_bad_candles_are_rejected_not_published() -> None:
    clock = SimClock(3 * MIN * 1_000_000)
    venue = Venue(clock)
    venue.history = [bar(0), Bar(MIN, 1.0, 0.5, 2.0, 1.0, 1.0), Bar(2 * MIN, float("nan"), 1, 1, 1, 1)]
    bus = Bus(clock, mode="replay")
    tap = Tap()
    tap.attach(bus)
    feed = PollingCandleFeed(venue, "BTC/USD", "1m", clock)
    feed.attach(bus)
    await feed.poll_once()
    assert [e.open_time_ms for e in tap.of(CandleClosed)] == [0]  # type: ignore[attr-defined]
    assert [e.reason for e in tap.of(CandleRejected)] == [  # type: ignore[attr-defined]
        "prices outside the candle's high/low",
        "non-finite or non-positive price",
    ]
    assert bar_problem(bar(5)) is None


async def test_a_failing_venue_is_retried_with_backoff_and_reported() -> None:
    clock = SimClock(2 * MIN * 1_000_000, autojump=True)
    venue = Venue(clock)
    venue.history = [bar(0), bar(1)]
    feed = PollingCandleFeed(venue, "BTC/USD", "1m", clock)
    # Adapters raise ExchangeError when a fetch fails: two failures, then the venue recovers.
    calls = 0
    original = venue.fetch_ohlcv

    async def flaky(symbol: str, interval: str, *, since_ms: int | None = None, limit: int = 500) -> list[Bar]:
        nonlocal calls
        calls += 1
        if calls <= 2:
            from twinstar.adapters.base import ErrorKind, ExchangeError

            raise ExchangeError(ErrorKind.NETWORK, "connection reset")
        feed._stopped = calls >= 3  # stop after the recovering poll
        return await original(symbol, interval, since_ms=since_ms, limit=limit)

    venue.fetch_ohlcv = flaky  # type: ignore[method-assign]
    bus = Bus(clock, mode="replay")
    tap = Tap()
    tap.attach(bus)
    feed.attach(bus)
    start = clock.now_ns()
    await feed.run()
    names = [type(e).__name__ for e in tap.events]
    assert names == ["FeedDisconnected", "FeedDisconnected", "CandleClosed", "CandleClosed", "FeedConnected"]
    assert clock.now_ns() - start >= 3_000_000_000  # backed off 1 s then 2 s
