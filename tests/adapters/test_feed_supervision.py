"""Each feed supervised on its own: real ccxt.pro against the loopback Binance USD-M venue.

Many symbols share one ccxt.pro client (one socket, subscriptions
multiplexed). Dropping that socket again and again, failing a REST call in
the middle of a backfill, a symbol the venue does not list, futures cancelled
under a feed's feet, frames without one usable row: each is the feed's own
trouble, said as an event, and every other feed's candles all arrive, once
each, in order, while the kernel lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable

import pytest

from tests.adapters.test_adapters_wire import _config
from tests.adapters.test_trade_feed import _push, _trade
from tests.pipeline.harness import Tap
from twinstar.adapters.binance import BinanceUsdm
from twinstar.adapters.feeds import StreamCandleFeed, TradeCandleFeed
from twinstar.adapters.feeds import watched as feed_module
from twinstar.bus.events import (
    CandleClosed,
    CandleRejected,
    EmergencyExit,
    FeedConnected,
    FeedDegraded,
    FeedDisconnected,
    FeedStopped,
    HandlerFailed,
)
from twinstar.clock import LiveClock
from twinstar.config import FeedConfig, RiskConfig
from twinstar.handlers.position import PositionHandler
from twinstar.kernel import Kernel
from twinstar.testing import Failure
from twinstar.testing.venue import INFO, Venue, venue

pytestmark = pytest.mark.anyio
SECOND = 1_000
FAST = FeedConfig(backoff_initial_s=0.05, backoff_max_s=0.2)


def _listing(count: int) -> str:
    """The recorded exchangeInfo with `count` perpetuals cloned from BTCUSDT (S0USDT, S1USDT, ...)."""
    info = json.loads(INFO)
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    info["symbols"] = [{**btc, "symbol": f"S{i}USDT", "pair": f"S{i}USDT", "baseAsset": f"S{i}"} for i in range(count)]
    return json.dumps(info)


async def _until(check: Callable[[], bool], seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def _pushing(v: Venue, ids: list[str]) -> AsyncIterator[None]:
    """Keep the venue's kline stream going for `ids`: the current second's candle, every 0.1 s."""

    async def push() -> None:
        last_open = 0
        while True:
            open_ms = int(time.time() * 1000) // SECOND * SECOND
            for symbol_id in ids:
                if last_open and open_ms > last_open:  # as Binance does: the closing update, marked final
                    await v.push_kline(symbol_id, "1s", last_open, SECOND, 30_000.0, final=True)
                await v.push_kline(symbol_id, "1s", open_ms, SECOND, 30_000.0)
            last_open = open_ms
            await asyncio.sleep(0.1)

    task = asyncio.ensure_future(push())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _opens(tap: Tap, symbol: str) -> list[int]:
    return [e.open_time_ms for e in tap.of(CandleClosed) if e.symbol == symbol]  # type: ignore[attr-defined]


def _contiguous(opens: list[int]) -> bool:
    return all(b - a == SECOND for a, b in itertools.pairwise(opens))


@pytest.mark.parametrize("count", [2, 20])
async def test_every_feeds_candles_arrive_once_in_order_while_the_shared_socket_drops_again_and_again(
    count: int,
) -> None:
    async with venue() as v:
        v.exchange_info = _listing(count)
        v.live_klines_ms = SECOND  # REST serves one-second candles up to now: what every backfill reads
        clock = LiveClock()
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        symbols = [f"S{i}/USDT:USDT" for i in range(count)]
        feeds = [StreamCandleFeed(adapter, s, "1s", clock, settings=FAST) for s in symbols]
        tap = Tap()
        try:
            async with (
                Kernel(clock=clock, components=[tap, *feeds]) as kernel,
                _pushing(v, [f"S{i}USDT" for i in range(count)]),
            ):
                await _until(lambda: len(set(v.subscriptions)) == count)
                for _ in range(5):  # the one socket every feed shares, dropped from the venue's side
                    before = len(tap.of(FeedConnected))
                    await v.drop_sockets()
                    await _until(lambda: len(tap.of(FeedDisconnected)) >= 1)
                    await asyncio.sleep(0.3)
                    await _until(lambda: len(tap.of(FeedConnected)) > before)  # noqa: B023
                await asyncio.sleep(1.5)
                for symbol in symbols:  # one more candle for everyone after the last drop, over REST
                    feed = next(f for f in feeds if f.symbol == symbol)
                    await feed.rest.poll_once()
                await kernel.stop("test done")
        finally:
            await adapter.close()
    assert tap.of(HandlerFailed) == []
    ends = set()
    for symbol in symbols:
        opens = _opens(tap, symbol)
        assert opens and _contiguous(opens), f"{symbol}: a candle lost or doubled in {opens}"
        ends.add(opens[-1])
    assert len(ends) <= 2  # every feed reached the present (a second boundary may fall between two of them)
    assert {e.symbol for e in tap.of(FeedDisconnected)} == set(symbols)  # type: ignore[attr-defined]


async def test_a_rest_failure_in_the_middle_of_a_trade_feeds_backfill_is_that_feeds_alone() -> None:
    clock = LiveClock()
    async with venue() as v:
        v.live_klines_ms = SECOND
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        trades = TradeCandleFeed(adapter, "BTC/USDT:USDT", "1s", clock, settle_s=0.2, settings=FAST)
        sibling = StreamCandleFeed(adapter, "ETH/USDT:USDT", "1s", clock, settings=FAST)
        tap = Tap()
        try:
            async with Kernel(clock=clock, components=[tap, trades, sibling]) as kernel, _pushing(v, ["ETHUSDT"]):
                await _until(lambda: "btcusdt@trade" in v.subscriptions and len(_opens(tap, "ETH/USDT:USDT")) > 0)
                s0 = clock.now_ms() // SECOND * SECOND
                await _push(v, [_trade(s0 + 1, 30_000.0, 1.0, 1)])  # this second began before: REST's to fill
                v.failures.append(Failure(status=503, text="Service Unavailable", path="/fapi/v1/klines"))
                # A trade three seconds on: the feed backfills the seconds between over REST, which fails.
                await _push(v, [_trade(s0 + 3_001, 30_010.0, 1.0, 2)])
                await _until(lambda: bool(tap.of(FeedDisconnected)))
                for trade_id in range(3, 100):  # trades keep coming: the feed says it is back with the next one
                    if len(tap.of(FeedConnected)) >= 3:
                        break
                    await _push(v, [_trade(clock.now_ms(), 30_020.0, 1.0, trade_id)])
                    await asyncio.sleep(0.2)
                btc_before = len(_opens(tap, "BTC/USDT:USDT"))
                eth_before = len(_opens(tap, "ETH/USDT:USDT"))
                await asyncio.sleep(1.2)
                await trades.rest.poll_once()
                await sibling.rest.poll_once()
                await kernel.stop("test done")
        finally:
            await adapter.close()
    assert tap.of(HandlerFailed) == []
    [down] = tap.of(FeedDisconnected)
    assert (down.symbol, down.attempt) == ("BTC/USDT:USDT", 1)  # type: ignore[attr-defined]
    assert "503" in down.reason or "Unavailable" in down.reason  # type: ignore[attr-defined]
    for symbol, before in (("BTC/USDT:USDT", btc_before), ("ETH/USDT:USDT", eth_before)):
        opens = _opens(tap, symbol)
        assert len(opens) > before and _contiguous(opens), f"{symbol}: {opens}"


async def test_a_feed_that_keeps_failing_stops_for_good_and_the_others_run_on() -> None:
    async with venue() as v:
        v.live_klines_ms = SECOND
        clock = LiveClock()
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        bounded = FeedConfig(backoff_initial_s=0.05, backoff_max_s=0.05, max_attempts=2)
        unlisted = StreamCandleFeed(adapter, "DOGE/USDT:USDT", "1s", clock, settings=bounded)  # not on the venue
        listed = StreamCandleFeed(adapter, "BTC/USDT:USDT", "1s", clock, settings=bounded)
        tap = Tap()
        try:
            async with Kernel(clock=clock, components=[tap, unlisted, listed]) as kernel, _pushing(v, ["BTCUSDT"]):
                await _until(lambda: bool(tap.of(FeedStopped)))
                before = len(_opens(tap, "BTC/USDT:USDT"))
                await asyncio.sleep(1.2)
                await listed.rest.poll_once()
                await kernel.stop("test done")
        finally:
            await adapter.close()
    stopped = [e for e in tap.of(FeedStopped) if e.reason != "shutdown"]  # type: ignore[attr-defined]
    assert [(e.symbol, e.reason.split(";")[0]) for e in stopped] == [("DOGE/USDT:USDT", "2 retries failed")]  # type: ignore[attr-defined]
    assert [e.attempt for e in tap.of(FeedDisconnected)] == [1, 2]  # type: ignore[attr-defined]
    assert len(_opens(tap, "BTC/USDT:USDT")) > before
    assert tap.of(HandlerFailed) == []


async def test_a_shared_client_torn_down_under_the_feeds_is_a_reconnect_not_the_end() -> None:
    async with venue() as v:
        v.live_klines_ms = SECOND
        clock = LiveClock()
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        feeds = [StreamCandleFeed(adapter, s, "1s", clock, settings=FAST) for s in ("BTC/USDT:USDT", "ETH/USDT:USDT")]
        tap = Tap()
        try:
            async with Kernel(clock=clock, components=[tap, *feeds]) as kernel, _pushing(v, ["BTCUSDT", "ETHUSDT"]):
                await _until(lambda: len(tap.of(FeedConnected)) == 2)  # both watching, each with a frame seen
                assert all(feed._sockets for feed in feeds)  # subscribed: frames are pushed, no watch per frame
                clients = list(adapter.ccxt.clients.values())
                for client in clients:  # as ccxt.pro does to a client it tears down: its futures first
                    for future in list(client.futures.values()):
                        future.cancel()
                before = len(tap.of(CandleClosed))
                await _until(lambda: len(tap.of(CandleClosed)) >= before + 2)  # no future was ours: candles go on
                for client in clients:  # then the socket itself
                    await client.close()
                await _until(lambda: len(tap.of(FeedDisconnected)) == 2)
                await _until(lambda: len(tap.of(FeedConnected)) >= 4)
                await kernel.stop("test done")
        finally:
            await adapter.close()
    assert {e.reason.split(":")[0] for e in tap.of(FeedDisconnected)} == {"NetworkError"}  # type: ignore[attr-defined]
    assert tap.of(HandlerFailed) == []


async def test_a_candle_the_live_stream_never_closed_comes_from_rest_within_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(feed_module, "OVERDUE_GRACE_S", 0.3)
    async with venue() as v:
        v.live_klines_ms = SECOND
        clock = LiveClock()
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        quiet = StreamCandleFeed(adapter, "BTC/USDT:USDT", "1s", clock, settings=FAST)
        busy = StreamCandleFeed(adapter, "ETH/USDT:USDT", "1s", clock, settings=FAST)
        tap = Tap()
        try:
            # The socket stays up (ETH klines keep coming) but no BTC kline ever does: REST must fill in.
            async with Kernel(clock=clock, components=[tap, quiet, busy]) as kernel, _pushing(v, ["ETHUSDT"]):
                await _until(lambda: bool(_opens(tap, "BTC/USDT:USDT")))
                first = _opens(tap, "BTC/USDT:USDT")[-1]
                await asyncio.sleep(3.0)
                await kernel.stop("test done")
        finally:
            await adapter.close()
    later = [e for e in tap.of(CandleClosed) if e.symbol == "BTC/USDT:USDT" and e.open_time_ms > first]  # type: ignore[attr-defined]
    assert len(later) >= 2 and _contiguous([first, *(e.open_time_ms for e in later)])  # type: ignore[attr-defined]
    assert not any(e.late for e in later)  # type: ignore[attr-defined]  # found 0.3 s after its due close
    assert tap.of(FeedDisconnected) == []  # nothing was dead: no reconnect, only REST


async def test_frames_with_nothing_usable_are_said_and_the_feed_lives() -> None:
    async with venue() as v:
        clock = LiveClock()
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        settings = FeedConfig(unusable_s=0.5, backoff_initial_s=0.05, backoff_max_s=0.2)
        feed = TradeCandleFeed(adapter, "BTC/USDT:USDT", "1m", clock, settings=settings)
        tap = Tap()
        try:
            async with Kernel(clock=clock, components=[tap, feed]) as kernel:
                await _until(lambda: bool(v.subscriptions))
                for i in range(12):  # trades at a price of 0: ccxt hands them over, none is usable
                    await _push(v, [_trade(clock.now_ms(), 0.0, 1.0, i + 1)])
                    await asyncio.sleep(0.1)
                await _until(lambda: bool(tap.of(FeedDegraded)))
                await _push(v, [_trade(clock.now_ms(), 30_000.0, 1.0, 100)])  # a good one: the feed goes on
                await _until(lambda: feed.candles.accepted == 1)
                await kernel.stop("test done")
        finally:
            await adapter.close()
    [said] = tap.of(FeedDegraded)
    assert said.reason == "frames arrive but none usable for 0.5s"  # type: ignore[attr-defined]
    assert tap.of(HandlerFailed) == [] and tap.of(CandleRejected) == []


@pytest.mark.parametrize("on_stopped", ["protect", "close"])
async def test_when_a_feed_stops_for_good_its_position_keeps_its_stop_or_is_closed(on_stopped: str) -> None:
    async with venue() as v:
        v.positions["BTCUSDT"], v.entry_prices["BTCUSDT"] = 0.01, 30_000.0  # held, adopted and protected at start
        for _ in range(10):
            v.failures.append(Failure(status=503, text="Service Unavailable", path="/fapi/v1/klines"))
        clock = LiveClock()
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        bounded = FeedConfig(backoff_initial_s=0.05, backoff_max_s=0.05, max_attempts=2)
        feed = StreamCandleFeed(adapter, "BTC/USDT:USDT", "1m", clock, settings=bounded)
        handler = PositionHandler(
            adapter, clock, RiskConfig(emergency_retry_s=[0.1]), symbols=["BTC/USDT:USDT"], on_feed_stopped=on_stopped
        )
        tap = Tap()
        try:
            async with Kernel(clock=clock, components=[tap, handler, feed]) as kernel:
                await _until(lambda: any(e.reason != "shutdown" for e in tap.of(FeedStopped)))  # type: ignore[attr-defined]
                await kernel.bus.idle()
                await kernel.stop("test done")
        finally:
            await adapter.close()
    resting = [a for a in v.algo_orders.values() if a["algoStatus"] == "NEW"]
    if on_stopped == "protect":
        assert (v.positions["BTCUSDT"], len(resting), tap.of(EmergencyExit)) == (0.01, 1, [])
    else:
        assert (v.positions["BTCUSDT"], resting) == (0, [])
        [exit_] = tap.of(EmergencyExit)
        assert exit_.reason.startswith("its feed stopped: 2 retries failed; last: ")  # type: ignore[attr-defined]


async def test_a_candle_whose_final_update_was_lost_is_published_as_rest_has_it() -> None:
    t0 = (int(time.time() * 1000) // 60_000 - 10) * 60_000  # minutes long closed
    minute = 60_000
    async with venue() as v:
        # REST's truth: t0 closed at 100 with volume 1 (the stream's last update of it said 105, not final).
        truth = [[t0, "100", "101", "99", "100", "1", t0 + minute - 1, "0", 1, "0", "0", "0"]]
        clock = LiveClock()
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        feed = StreamCandleFeed(adapter, "BTC/USDT:USDT", "1m", clock, settings=FAST)
        tap = Tap()
        try:
            async with Kernel(clock=clock, components=[tap, feed]) as kernel:
                await _until(lambda: bool(v.subscriptions))  # the first poll found no history
                v.klines = truth
                await v.push_kline("BTCUSDT", "1m", t0, minute, 105.0)  # t0's final update never comes
                await v.push_kline("BTCUSDT", "1m", t0 + minute, minute, 106.0)
                await v.push_kline("BTCUSDT", "1m", t0 + minute, minute, 107.0, final=True)
                await v.push_kline("BTCUSDT", "1m", t0 + 2 * minute, minute, 108.0)
                await _until(lambda: len(_opens(tap, "BTC/USDT:USDT")) == 2)
                await kernel.stop("test done")
        finally:
            await adapter.close()
    closes = [(e.open_time_ms, e.close) for e in tap.of(CandleClosed)]  # type: ignore[attr-defined]
    assert closes == [(t0, 100.0), (t0 + minute, 107.0)]  # REST's close for t0; the stream's final for t0+1
    assert feed.confirmed_over_rest == 1
