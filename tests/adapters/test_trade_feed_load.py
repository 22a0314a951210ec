"""A trade feed under load, over the wire: real ccxt.pro `watch_trades` against the loopback Binance USD-M venue.

A burst as large as ccxt.pro's store loses nothing; more trades between two
reads than the store keeps is said (log line, `FeedGapDetected`) and the
candles they fall in are left to REST; trades that arrive late make the feed
say how far behind it is. No timing is asserted: every wait is a bound on
work, generous enough for a loaded machine.
"""

from __future__ import annotations

import json
import logging

import pytest

from tests.adapters.test_adapters_wire import _config
from tests.adapters.test_trade_feed import MIN, _trade, _until
from tests.pipeline.harness import Tap
from twinstar.adapters.binance import BinanceUsdm
from twinstar.adapters.feeds import LAG_WARN_MS, TradeCandleFeed
from twinstar.bus.events import CandleClosed, FeedGapDetected, FeedLagging
from twinstar.clock import LiveClock
from twinstar.kernel import Kernel
from twinstar.testing import Failure
from twinstar.testing.venue import Venue, venue

pytestmark = pytest.mark.anyio


def _folded(feed: TradeCandleFeed) -> int:
    c = feed.candles
    return c.accepted + c.duplicates + c.stale + c.rejected


async def _send_at_once(v: Venue, frames: list[str]) -> None:
    """Write frames to the trade socket back to back, never yielding: the kernel reads them as one burst."""
    stream = next(s for s in v.streams.values() if "btcusdt@trade" in s.topics)
    for text in frames:
        await stream.ws.send_str(
            json.dumps({"stream": "btcusdt@trade", "data": json.loads(text)}) if stream.combined else text
        )


async def test_a_burst_of_50000_trades_loses_none() -> None:
    clock = LiveClock()
    async with venue() as v:
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        feed = TradeCandleFeed(adapter, "BTC/USDT:USDT", "1m", clock)
        try:
            async with Kernel(clock=clock, components=[feed]) as kernel:
                await _until(lambda: bool(v.subscriptions))
                now = clock.now_ms()
                await _send_at_once(v, [json.dumps(_trade(now, 100.0 + k % 7, 0.01, k)) for k in range(1, 50_001)])
                await _until(lambda: _folded(feed) == 50_000, seconds=300)
                await kernel.stop("done")
        finally:
            await adapter.close()
    assert (feed.overruns, feed.candles.duplicates, feed.candles.rejected) == (0, 0, 0)
    assert feed.candles.accepted + feed.candles.stale == 50_000  # stale only if a minute ended meanwhile


async def test_more_trades_than_the_store_keeps_between_two_reads_is_said_and_left_to_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = LiveClock()
    m = clock.now_ms() // MIN * MIN - 2 * MIN
    async with venue() as v:
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        feed = TradeCandleFeed(adapter, "BTC/USDT:USDT", "1m", clock)
        adapter.ccxt.options["tradesLimit"] = 100  # a small store, before its first trade creates it
        tap = Tap()
        try:
            async with Kernel(clock=clock, components=[tap, feed]) as kernel:
                await _until(lambda: bool(v.subscriptions))
                # The feed's next REST call (the backfill before minute m+1 is published) is held back
                # while 300 trades arrive: the store keeps the last 100 of them.
                v.failures.append(Failure(path="/fapi/v1/klines", delay_s=1.0, executes=True))
                await _send_at_once(v, [json.dumps(_trade(m + k * MIN + 1, 100.0, 1.0, k)) for k in range(3)])
                await _until(lambda: v.held == 1)
                await _send_at_once(
                    v, [json.dumps(_trade(m + 2 * MIN + 2 + k, 101.0, 1.0, 10 + k)) for k in range(300)]
                )
                await _until(lambda: feed.overruns == 1)
                await _send_at_once(v, [json.dumps(_trade(m + 3 * MIN + 1, 102.0, 1.0, 1_000))])
                await _until(lambda: feed.candles.accepted == 101)  # the 100 kept, folded afresh, and the next minute's
                await kernel.stop("done")
        finally:
            await adapter.close()
    assert [(e.from_ms, e.to_ms) for e in tap.of(FeedGapDetected)][-1] == (m + 2 * MIN, m + 2 * MIN)  # type: ignore[attr-defined]
    # Minute m+2 lost trades: it is never published from the 100 it kept (REST has no kline for it here).
    assert m + 2 * MIN not in [e.open_time_ms for e in tap.of(CandleClosed)]  # type: ignore[attr-defined]
    lost = [r.getMessage() for r in caplog.records if "than ccxt.pro keeps" in r.getMessage()]
    assert lost == [
        "binanceusdm BTC/USDT:USDT 1m: more trades arrived between two reads than ccxt.pro keeps (tradesLimit 100); "
        "the candles they fall in are fetched over REST"
    ]


async def test_trades_that_arrive_late_are_said_with_the_lag_and_so_is_catching_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="twinstar.feed")
    clock = LiveClock()
    async with venue() as v:
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        feed = TradeCandleFeed(adapter, "BTC/USDT:USDT", "1m", clock)
        tap = Tap()
        try:
            async with Kernel(clock=clock, components=[tap, feed]) as kernel:
                await _until(lambda: bool(v.subscriptions))
                await _send_at_once(v, [json.dumps(_trade(clock.now_ms() - 5_000, 100.0, 1.0, 1))])
                await _until(lambda: _folded(feed) == 1)
                late = feed.lag_ms
                await _send_at_once(v, [json.dumps(_trade(clock.now_ms(), 100.0, 1.0, 2))])
                await _until(lambda: _folded(feed) == 2)
                await kernel.stop("done")
        finally:
            await adapter.close()
    assert 5_000 <= late < 5_000 + 60_000  # at least how late it was sent; the bound only guards the unit
    assert feed.lag_ms < LAG_WARN_MS // 2
    assert feed.lag_max_ms == late
    said = [r.getMessage() for r in caplog.records if "behind" in r.getMessage()]
    assert said == [
        f"binanceusdm BTC/USDT:USDT 1m: trades folded {late} ms behind the market",
        f"binanceusdm BTC/USDT:USDT 1m: trades caught up ({feed.lag_ms} ms behind)",
    ]
    lagging = [(e.lag_ms, e.behind) for e in tap.of(FeedLagging)]  # type: ignore[attr-defined]
    assert lagging == [(late, True), (feed.lag_ms, False)]
