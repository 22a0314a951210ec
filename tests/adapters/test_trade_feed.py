"""Candles from trades over the wire: real ccxt.pro `watch_trades` against the loopback Binance USD-M venue.

The venue serves REST klines and WebSocket subscriptions; the test pushes trade
frames into its open sockets. Binance has a kline stream, but its trade stream
is the one real recorded trade feed we have, and the feed only needs
`watch_trades`, which every venue shares.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.adapters.test_adapters_wire import _config
from tests.pipeline.harness import Tap
from twinstar.adapters import make_exchange
from twinstar.adapters.binance import BinanceUsdm
from twinstar.adapters.feeds import PollingCandleFeed, StreamCandleFeed, TradeCandleFeed, choose_feed
from twinstar.adapters.sim import SimExchange
from twinstar.bus.events import CandleClosed, FeedBackfilled, FeedConnected, FeedGapDetected
from twinstar.clock import LiveClock
from twinstar.config import Config
from twinstar.kernel import Kernel
from twinstar.testing.venue import Venue, venue

pytestmark = pytest.mark.anyio
MIN = 60_000
DATA = Path(__file__).parent / "data"


async def _until(check: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def _push(v: Venue, frames: list[dict[str, Any]]) -> None:
    """Send frames to every open socket as Binance's raw `/ws` stream does (no envelope)."""
    for frame in frames:
        for ws in list(v.sockets):
            await ws.send_json(frame)


def _closes(tap: Tap) -> list[tuple[int, float, float, float, float, float]]:
    return [
        (e.open_time_ms, e.open, e.high, e.low, e.close, e.volume)  # type: ignore[attr-defined]
        for e in tap.of(CandleClosed)
    ]


def _trade(t_ms: int, price: float, qty: float, trade_id: int) -> dict[str, Any]:
    """A USD-M `@trade` event in the real shape (see the recorded frames)."""
    return {
        "e": "trade",
        "E": t_ms,
        "T": t_ms,
        "s": "BTCUSDT",
        "t": trade_id,
        "p": f"{price}",
        "q": f"{qty}",
        "X": "MARKET",
        "m": False,
    }


async def test_recorded_trades_become_candles_with_the_partial_first_minute_from_rest() -> None:
    with gzip.open(DATA / "binance_usdm_btcusdt_trades.txt.gz", "rt") as lines:
        frames = [json.loads(line.partition(" ")[2])["data"] for line in lines]
    first_ms = frames[0]["T"]  # 2024-08-08 23:54:55 UTC
    m54 = first_ms // MIN * MIN
    # Kernel time starts with the recording; the frames then arrive faster than real time.
    clock = LiveClock(offset_ms=first_ms - time.time() * 1000)
    async with venue() as v:
        rest = [(m54 + k * MIN, 61_000.0 + k) for k in range(-4, 1)]  # REST history up to 23:54
        v.klines = [
            [t, f"{c}", f"{c + 5}", f"{c - 5}", f"{c}", "10", t + MIN - 1, "0", 1, "0", "0", "0"] for t, c in rest
        ]
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        feed = TradeCandleFeed(adapter, "BTC/USDT:USDT", "1m", clock)
        tap = Tap()
        try:
            async with Kernel(clock=clock, components=[tap, feed]) as kernel:
                await _until(lambda: len(tap.of(CandleClosed)) == 4 and bool(v.subscriptions))
                assert v.subscriptions == ["btcusdt@trade"]
                await _push(v, frames)
                await _until(lambda: len(tap.of(CandleClosed)) == 7)
                await asyncio.sleep(0.2)  # nothing else may follow: 23:57 is still open
                await kernel.stop("done")
        finally:
            await adapter.close()
    # Independent reference: the raw frames grouped by minute.
    expected_trades = []
    for start in (m54 + MIN, m54 + 2 * MIN):
        rows = [(f["T"], float(f["p"]), float(f["q"])) for f in frames if start <= f["T"] < start + MIN]
        prices = [p for _, p, _ in sorted(rows, key=lambda r: r[0])]
        expected_trades.append((start, prices[0], max(prices), min(prices), prices[-1], sum(q for *_, q in rows)))
    closes = _closes(tap)
    assert [c[0] for c in closes] == [t for t, _ in rest] + [m54 + MIN, m54 + 2 * MIN]
    assert closes[4] == (m54, 61_000.0, 61_005.0, 60_995.0, 61_000.0, 10.0)  # 23:54 began before we subscribed
    assert [c[:5] for c in closes[5:]] == [e[:5] for e in expected_trades]
    assert [c[5] for c in closes[5:]] == pytest.approx([e[5] for e in expected_trades], rel=1e-12)
    assert [e.count for e in tap.of(FeedBackfilled)] == [1]  # type: ignore[attr-defined]
    assert len(tap.of(FeedConnected)) == 1
    assert feed.candles.accepted == len(frames)
    assert feed.candles.current is not None and feed.candles.current.open_time_ms == m54 + 3 * MIN
    assert repr(feed).startswith("TradeCandleFeed(binanceusdm BTC/USDT:USDT 1m, frames=")


async def test_a_quiet_candle_closes_by_time_and_a_late_trade_never_changes_it() -> None:
    clock = LiveClock()
    async with venue() as v:
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        feed = TradeCandleFeed(adapter, "BTC/USDT:USDT", "1s", clock, settle_s=0.2)
        tap = Tap()
        try:
            async with Kernel(clock=clock, components=[tap, feed]) as kernel:
                await _until(lambda: bool(v.subscriptions))
                s0 = clock.now_ms() // 1000 * 1000
                await _push(v, [_trade(s0 + 1, 100.0, 1.0, 1)])  # second s0 began before we subscribed
                await _push(v, [_trade(s0 + 1_000, 101.0, 0.5, 2), _trade(s0 + 1_400, 103.0, 0.25, 3)])
                await _push(v, [_trade(s0 + 1_200, 99.0, 0.25, 4), _trade(s0 + 1_200, 99.0, 0.25, 4)])  # replayed
                await _until(lambda: len(tap.of(CandleClosed)) == 1)  # no later trade: closed by time
                await _push(v, [_trade(s0 + 1_999, 120.0, 9.0, 5)])  # arrives after the close
                await _until(lambda: feed.candles.stale == 1)
                # Second s0+2 has no trade; s0+3 has one and is closed by a trade of s0+4.
                await _push(v, [_trade(s0 + 3_001, 104.0, 1.0, 6), _trade(s0 + 4_001, 105.0, 1.0, 7)])
                await _until(lambda: len(tap.of(CandleClosed)) == 2)
                await kernel.stop("done")
        finally:
            await adapter.close()
    assert _closes(tap) == [(s0 + 1_000, 101.0, 103.0, 99.0, 103.0, 1.0), (s0 + 3_000, 104.0, 104.0, 104.0, 104.0, 1.0)]
    assert (feed.candles.duplicates, feed.candles.accepted) == (1, 6)
    # The venue has no kline for the empty second either (REST was asked): a gap is reported, nothing invented.
    assert [(e.from_ms, e.to_ms) for e in tap.of(FeedGapDetected)] == [(s0 + 2_000, s0 + 2_000)]  # type: ignore[attr-defined]
    assert [path for _, path in v.requests].count("/fapi/v1/klines") == 3  # warm-up, then one backfill per gap


def test_the_feed_follows_what_ccxt_pro_can_stream() -> None:
    def feed_for(exchange_id: str, mode: str = "auto", interval: str = "1m") -> type:
        config = Config.from_toml(f'symbols = ["BTC/KRW"]\n[exchange]\nid = "{exchange_id}"\ncandle_feed = "{mode}"\n')
        clock = LiveClock()
        return type(choose_feed(make_exchange(config.exchange, clock), "BTC/KRW", interval, clock, mode=mode))

    assert feed_for("binanceusdm") is StreamCandleFeed
    assert feed_for("upbit", interval="1s") is StreamCandleFeed  # ccxt.pro streams Upbit's 1s candles only
    assert feed_for("upbit") is TradeCandleFeed  # its minutes are built from trades
    assert feed_for("bithumb") is TradeCandleFeed  # trades, no klines, in ccxt.pro 4.5.90
    assert feed_for("lighter") is TradeCandleFeed
    assert feed_for("bithumb", "poll") is PollingCandleFeed
    clock = LiveClock()
    assert type(choose_feed(SimExchange(clock), "BTC/USD", "1h", clock, mode="stream")) is PollingCandleFeed  # no ccxt
