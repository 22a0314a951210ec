"""The WebSocket candle feed: real ccxt.pro against a loopback Binance USD-M stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from tests.adapters.test_adapters_wire import _config
from tests.pipeline.harness import Tap
from twinstar.adapters.binance import BinanceUsdm
from twinstar.adapters.feeds import StreamCandleFeed
from twinstar.adapters.feeds.klines import OHLCV_KEPT
from twinstar.bus.events import CandleClosed, FeedConnected, FeedDisconnected
from twinstar.clock import LiveClock
from twinstar.config import ExchangeConfig, FeedConfig
from twinstar.kernel import Kernel
from twinstar.testing.venue import Venue, venue

pytestmark = pytest.mark.anyio
FAST = FeedConfig(silence_s=0.5, backoff_initial_s=0.1, backoff_max_s=0.1)  # a dead socket found in 0.5 s
MIN = 60_000


async def _until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


def _history(v: Venue, opens: list[int]) -> None:
    v.klines = [[t, "100", "101", "99", "100", "1", t + MIN - 1, "0", 1, "0", "0", "0"] for t in opens]


async def test_stream_publishes_closed_candles_and_backfills_after_a_drop() -> None:
    t0 = (int(time.time() * 1000) // MIN - 10) * MIN  # candles from ten minutes ago: all long closed
    async with venue() as v:
        _history(v, [t0 - 2 * MIN, t0 - MIN])
        clock = LiveClock()
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        feed = StreamCandleFeed(adapter, "BTC/USDT:USDT", "1m", clock)
        tap = Tap()
        closes = lambda: [e.open_time_ms for e in tap.of(CandleClosed)]  # type: ignore[attr-defined]  # noqa: E731
        try:
            async with Kernel(clock=clock, components=[tap, feed]) as kernel:
                await _until(lambda: len(closes()) == 2 and bool(v.sockets) and bool(v.subscriptions))
                assert v.subscriptions == ["btcusdt@kline_1m"]
                await v.push_kline("BTCUSDT", "1m", t0, MIN, 105.0)
                await asyncio.sleep(0.2)
                assert closes() == [t0 - 2 * MIN, t0 - MIN]  # t0 is still being traded
                await v.push_kline("BTCUSDT", "1m", t0, MIN, 106.0, final=True)
                await _until(lambda: len(closes()) == 3)  # on its final frame (`x`), not at the next candle's first
                assert tap.of(CandleClosed)[-1].close == 106.0  # type: ignore[attr-defined]
                await v.push_kline("BTCUSDT", "1m", t0 + MIN, MIN, 107.0)
                await asyncio.sleep(0.2)
                assert closes() == [t0 - 2 * MIN, t0 - MIN, t0]  # the next candle's frame publishes t0 once only
                # The venue drops the socket; two candles pass while we are away.
                _history(v, [t0, t0 + MIN, t0 + 2 * MIN])
                await v.drop_sockets()
                await _until(lambda: len(tap.of(FeedDisconnected)) == 1)
                # resubscribed too: the venue sends a kline only to sockets subscribed to it
                await _until(lambda: len(closes()) == 5 and v.subscriptions.count("btcusdt@kline_1m") == 2, seconds=15)
                await v.push_kline("BTCUSDT", "1m", t0 + 3 * MIN, MIN, 108.0)
                await v.push_kline("BTCUSDT", "1m", t0 + 4 * MIN, MIN, 109.0)
                await _until(lambda: len(closes()) == 6)
                await kernel.stop("done")
        finally:
            await adapter.close()
    assert closes() == [t0 + k * MIN for k in range(-2, 4)]  # every candle once, in order
    assert len(tap.of(FeedConnected)) == 2


async def test_a_silent_stream_is_reopened() -> None:
    t0 = (int(time.time() * 1000) // MIN - 10) * MIN
    async with venue() as v:
        _history(v, [t0])
        clock = LiveClock()
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        feed = StreamCandleFeed(adapter, "BTC/USDT:USDT", "1m", clock, settings=FAST)
        tap = Tap()
        try:
            async with Kernel(clock=clock, components=[tap, feed]) as kernel:
                await _until(
                    lambda: any(
                        e.reason == "stream silent"  # type: ignore[attr-defined]
                        for e in tap.of(FeedDisconnected)
                    )
                )
                await _until(lambda: len(v.requests) > 4 and bool(v.sockets))  # backfilled and resubscribed
                await kernel.stop("done")
        finally:
            await adapter.close()
    assert [e.open_time_ms for e in tap.of(CandleClosed)] == [t0]  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_ccxt_pro_keeps_only_the_newest_rows_per_symbol_unless_the_user_says_otherwise() -> None:
    default, chosen = (
        BinanceUsdm(config=ExchangeConfig(id="binanceusdm", options=options), clock=LiveClock())
        for options in ({}, {"OHLCVLimit": 500})
    )
    try:
        assert default.ccxt.options["OHLCVLimit"] == 1000  # ccxt's own: 1,000 rows per symbol, grown into
        StreamCandleFeed(default, "BTC/USDT:USDT", "1m", LiveClock())
        StreamCandleFeed(chosen, "BTC/USDT:USDT", "1m", LiveClock())
        assert (default.ccxt.options["OHLCVLimit"], chosen.ccxt.options["OHLCVLimit"]) == (OHLCV_KEPT, 500)
    finally:
        await default.close()
        await chosen.close()
