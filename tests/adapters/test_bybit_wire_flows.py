"""Bybit over the wire with the real handlers: no double orders, stops always, the kline stream."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.adapters.test_bybit_wire import bybit_config
from tests.adapters.test_stream_feed import _until
from tests.pipeline.harness import Tap
from twinstar.adapters.bybit import Bybit
from twinstar.adapters.feeds import StreamCandleFeed
from twinstar.bus.bus import Bus
from twinstar.bus.events import (
    CandleClosed,
    EmergencyExit,
    FeedConnected,
    FeedDisconnected,
    OrderFailed,
    OrderPlaced,
    SignalFired,
    SLUpdated,
    SLUpdateFailed,
)
from twinstar.clock import LiveClock, SimClock
from twinstar.config import ExecutionConfig, FeedConfig, RiskConfig
from twinstar.handlers.execution import ExecutionHandler, client_order_id
from twinstar.handlers.position import PositionHandler
from twinstar.kernel import Kernel
from twinstar.testing import BybitVenue, Failure, bybit_venue

pytestmark = pytest.mark.anyio
FAST = FeedConfig(silence_s=0.5, backoff_initial_s=0.1, backoff_max_s=0.1)  # a dead socket found in 0.5 s
BTC = "BTC/USDT:USDT"
CREATE = "/v5/order/create"
MIN = 60_000


def _signal(stop_price: float) -> SignalFired:
    return SignalFired(
        ts_ns=1,
        strategy="t",
        exchange="bybit",
        symbol=BTC,
        side="buy",
        price=30_000.0,
        stop_price=stop_price,
        reason="test",
        candle_open_time_ms=1_700_000_000_000,
    )


CID = client_order_id("t", BTC, 1_700_000_000_000, "open")


async def _trade(v: BybitVenue, signal: SignalFired, *, qty: float, stops: bool) -> Tap:
    clock = SimClock(0, autojump=True)  # retries and backoffs take no real time
    adapter = Bybit(config=bybit_config(), clock=clock)
    v.point(adapter.ccxt)
    adapter.ccxt.timeout = 400  # ms: the delayed replies below arrive after the client gave up
    bus = Bus(clock, mode="replay")
    tap = Tap()
    tap.attach(bus)
    if stops:
        PositionHandler(adapter, clock, RiskConfig(order_qty=qty)).attach(bus)
    ExecutionHandler(adapter, clock, ExecutionConfig(), RiskConfig(order_qty=qty)).attach(bus)
    try:
        await adapter.ccxt.load_markets()
        await bus.publish(signal)
    finally:
        await adapter.close()
    return tap


def _creates(v: BybitVenue) -> int:
    return sum(1 for method, path in v.requests if (method, path) == ("POST", CREATE))


async def test_a_timeout_after_the_order_reached_the_book_is_found_by_link_id_not_resent() -> None:
    async with bybit_venue() as v:
        v.failures.append(Failure(delay_s=1.0, executes=True, path=CREATE))
        tap = await _trade(v, _signal(0.0), qty=0.01, stops=False)
    placed = tap.of(OrderPlaced)
    assert [(p.client_order_id, p.filled_qty, p.attempts) for p in placed] == [(CID, 0.01, 1)]  # type: ignore[attr-defined]
    assert _plain(v) == [CID]  # one order on the book (besides the stop it carried)
    assert _creates(v) == 1  # and only one was ever sent
    assert ("GET", "/v5/order/realtime") in v.requests


async def test_a_timeout_before_the_book_is_resent_once_with_the_same_link_id() -> None:
    async with bybit_venue() as v:
        v.failures.append(Failure(504, text="<html>504 Gateway Time-out</html>", delay_s=1.0, path=CREATE))
        tap = await _trade(v, _signal(0.0), qty=0.01, stops=False)
    placed = tap.of(OrderPlaced)
    assert [(p.client_order_id, p.attempts) for p in placed] == [(CID, 2)]  # type: ignore[attr-defined]
    assert _plain(v) == [CID]
    assert [body["orderLinkId"] for body in v.created] == [CID]  # the first never reached the venue's book
    assert _creates(v) == 2


async def test_rate_limited_by_retcode_10006_is_retried_after_a_backoff() -> None:
    async with bybit_venue() as v:
        v.failures.append(Failure(200, {"retCode": 10006, "retMsg": "Too many visits!"}, path=CREATE))
        tap = await _trade(v, _signal(0.0), qty=0.01, stops=False)
    assert [(p.client_order_id, p.attempts) for p in tap.of(OrderPlaced)] == [(CID, 2)]  # type: ignore[attr-defined]
    assert _plain(v) == [CID]


async def test_insufficient_margin_is_final() -> None:
    async with bybit_venue() as v:
        v.balance = 10.0
        tap = await _trade(v, _signal(0.0), qty=0.01, stops=False)
    assert [(f.error_kind, f.attempts) for f in tap.of(OrderFailed)] == [("insufficient_funds", 1)]  # type: ignore[attr-defined]
    assert v.orders == {}
    assert _creates(v) == 1


async def test_a_partial_fill_is_protected_by_the_stop_it_carried_for_exactly_what_filled() -> None:
    async with bybit_venue() as v:
        v.fill_ratio = 0.4
        tap = await _trade(v, _signal(29_000.0), qty=0.1, stops=True)
    [placed] = tap.of(OrderPlaced)
    assert (placed.requested_qty, placed.filled_qty, placed.partial) == (0.1, 0.04, True)  # type: ignore[attr-defined]
    assert v.orders[CID]["orderStatus"] == "PartiallyFilledCanceled"
    [stop] = [o for o in v.orders.values() if o["stopOrderType"]]
    assert (stop["side"], stop["qty"], stop["triggerPrice"], stop["triggerDirection"], stop["reduceOnly"]) == (
        "Sell",
        "0.04",
        "29000",
        2,
        True,
    )
    assert (stop["orderStatus"], stop["stopOrderType"]) == ("Untriggered", "StopLoss")  # the position's own stop
    assert [e.qty for e in tap.of(SLUpdated)] == [0.04]  # type: ignore[attr-defined]
    assert v.positions == {"BTCUSDT": 0.04}


async def test_an_entry_whose_stop_the_venue_refuses_is_refused_whole_never_left_unprotected() -> None:
    async with bybit_venue() as v:
        # A long's stop above the market would fire at once: Bybit refuses the entry that carries it.
        tap = await _trade(v, _signal(30_500.0), qty=0.1, stops=True)
    [failed] = tap.of(OrderFailed)
    assert (failed.error_kind, failed.attempts) == ("invalid_order", 1)  # type: ignore[attr-defined]
    assert "should lower than base_price" in failed.message  # type: ignore[attr-defined]
    assert tap.of(SLUpdateFailed) == [] and tap.of(EmergencyExit) == []
    assert v.orders == {} and v.positions.get("BTCUSDT", 0.0) == 0.0
    assert [body.get("stopLoss") for body in v.created] == ["30500"]


def _plain(v: BybitVenue) -> list[str]:
    """The link ids of the orders on the book that are not stops."""
    return [link for link, o in v.orders.items() if not o["stopOrderType"]]


def _history(v: BybitVenue, opens: list[int]) -> None:
    v.klines = [[t, "100", "101", "99", "100", "1", "100"] for t in opens]


async def test_the_kline_stream_publishes_closed_candles_once_and_backfills_after_a_drop() -> None:
    t0 = (int(time.time() * 1000) // MIN - 10) * MIN  # candles from ten minutes ago: all long closed
    async with bybit_venue() as v:
        _history(v, [t0 - 2 * MIN, t0 - MIN])
        clock = LiveClock()
        adapter = Bybit(config=bybit_config(), clock=clock)
        v.point(adapter.ccxt)
        feed = StreamCandleFeed(adapter, BTC, "1m", clock)
        tap = Tap()
        closes = lambda: [e.open_time_ms for e in tap.of(CandleClosed)]  # type: ignore[attr-defined]  # noqa: E731
        try:
            async with Kernel(clock=clock, components=[tap, feed]) as kernel:
                await _until(lambda: len(closes()) == 2 and bool(v.sockets) and bool(v.subscriptions))
                assert v.subscriptions == ["kline.1.BTCUSDT"]
                await v.push_kline("BTCUSDT", "1", t0, MIN, 105.0)  # open candle
                await asyncio.sleep(0.2)
                assert closes() == [t0 - 2 * MIN, t0 - MIN]  # t0 is still being traded
                await v.push_kline("BTCUSDT", "1", t0, MIN, 106.0, confirm=True)  # the same candle, closed
                await _until(lambda: len(closes()) == 3)  # on its final frame, not at the next candle's first
                assert tap.of(CandleClosed)[-1].close == 106.0  # type: ignore[attr-defined]
                await v.push_kline("BTCUSDT", "1", t0 + MIN, MIN, 107.0)
                await asyncio.sleep(0.2)
                assert closes() == [t0 - 2 * MIN, t0 - MIN, t0]  # the next candle's frame publishes t0 once only
                # The venue drops the socket; two candles pass while we are away.
                _history(v, [t0, t0 + MIN, t0 + 2 * MIN])
                await v.drop_sockets()
                await _until(lambda: len(tap.of(FeedDisconnected)) == 1)
                # resubscribed too: the venue sends a kline only to sockets subscribed to it
                await _until(lambda: len(closes()) == 5 and v.subscriptions.count("kline.1.BTCUSDT") == 2, seconds=15)
                await v.push_kline("BTCUSDT", "1", t0 + 3 * MIN, MIN, 108.0)
                await v.push_kline("BTCUSDT", "1", t0 + 4 * MIN, MIN, 109.0)
                await _until(lambda: len(closes()) == 6)
                await kernel.stop("done")
        finally:
            await adapter.close()
    assert closes() == [t0 + k * MIN for k in range(-2, 4)]  # every candle once, in order
    assert len(tap.of(FeedConnected)) == 2
    assert ("GET", "/v5/market/kline") in v.requests


async def test_a_silent_kline_socket_is_detected_and_reopened() -> None:
    t0 = (int(time.time() * 1000) // MIN - 10) * MIN
    async with bybit_venue() as v:
        _history(v, [t0])
        v.silent = True  # the socket opens, then the venue says nothing: no ack, no pong, no data
        clock = LiveClock()
        adapter = Bybit(config=bybit_config(), clock=clock)
        v.point(adapter.ccxt)
        feed = StreamCandleFeed(adapter, BTC, "1m", clock, settings=FAST)
        tap = Tap()
        silent = lambda: [e for e in tap.of(FeedDisconnected) if e.reason == "stream silent"]  # type: ignore[attr-defined]  # noqa: E731
        try:
            async with Kernel(clock=clock, components=[tap, feed]) as kernel:
                await _until(lambda: bool(silent()) and len(v.subscriptions) == 0 and bool(v.sockets))
                await _until(lambda: len(silent()) >= 2)  # reopened, and silent again
                await kernel.stop("done")
        finally:
            await adapter.close()
    assert [e.open_time_ms for e in tap.of(CandleClosed)] == [t0]  # type: ignore[attr-defined]
    assert sum(1 for _, path in v.requests if path == "/v5/public/linear") >= 2
