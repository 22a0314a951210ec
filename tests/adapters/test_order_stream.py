"""A stop the exchange fills is booked from the private order stream, not at the next routine check.

Real handlers, real ccxt.pro and the loopback Binance USD-M venue: the venue
triggers the resting stop, fills it and pushes ALGO_UPDATE / ORDER_TRADE_UPDATE
on the user-data stream. Routine checks and the reconcile timer are pushed out
of reach, so only the stream can tell the kernel; the control without the
stream shows that nothing else would have, within the same wait.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

import pytest

from tests.adapters.test_bybit_wire import bybit_config
from tests.pipeline.harness import Tap
from twinstar import Config, Kernel
from twinstar.adapters import make_exchange
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.adapters.order_stream import ORDERS_KEPT, OrderStream, streams_orders
from twinstar.bus.events import CandleClosed, FeedConnected, FeedDisconnected, OrderUpdated, PositionClosed, SLUpdated
from twinstar.clock import LiveClock
from twinstar.config import ExchangeConfig, RiskConfig
from twinstar.handlers import build_pipeline
from twinstar.handlers.position import PositionHandler
from twinstar.testing import bybit_venue
from twinstar.testing.venue import Venue, venue

pytestmark = pytest.mark.anyio
BTC = "BTC/USDT:USDT"
SECOND_MS = 1_000
# sma_cross 2/3 buys on the 4th close: a long at 102,000 with its stop 2% below (99,960).
CLOSES = [100_000.0, 100_000.0, 99_000.0, 102_000.0]


async def _until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def _config(v: Venue) -> Config:
    os.environ["TW_STREAM_KEY"], os.environ["TW_STREAM_SECRET"] = "stream-key", "stream-secret"
    return Config.from_toml(
        f'symbols = ["{BTC}"]\ninterval = "1s"\n'
        '[exchange]\nid = "binanceusdm"\napi_key_env = "TW_STREAM_KEY"\napi_secret_env = "TW_STREAM_SECRET"\n'
        f'api_base_url = "{v.base}"\noptions = {{ fetchCurrencies = false }}\n'
        '[strategy]\nname = "sma_cross"\nparams = { fast = 2, slow = 3 }\n'
        # No routine check and no timer within the test: only the stream can report the stop's fill.
        "[risk]\norder_qty = 0.01\nstop_loss_pct = 2.0\nreconcile_every = 1000\nreconcile_interval_s = 3600\n"
    )


async def _open_long(kernel: Kernel, clock: LiveClock, v: Venue, tap: Tap) -> None:
    start_ms = clock.now_ms() // SECOND_MS * SECOND_MS
    for i, close in enumerate(CLOSES):
        open_ms = start_ms + i * SECOND_MS
        clock.set_offset_ms(clock.offset_ms + (open_ms + SECOND_MS + 50 - clock.now_ms()))  # the candle just closed
        v.offset_ms = round(clock.offset_ms)
        v.price = close
        await kernel.publish(
            CandleClosed(
                ts_ns=clock.now_ns(),
                exchange="binanceusdm",
                symbol=BTC,
                interval="1s",
                open_time_ms=open_ms,
                open=close,
                high=close,
                low=close,
                close=close,
                volume=1.0,
            )
        )
        await kernel.bus.idle()
    assert await _until(lambda: bool(tap.of(SLUpdated))), "the entry got no stop"


async def _stop_fills(*, stream: bool) -> tuple[Tap, Venue]:
    async with venue() as v:
        config = _config(v)
        clock = LiveClock()
        exchange = make_exchange(config.exchange, clock)
        assert isinstance(exchange, CcxtExchange) and streams_orders(exchange)
        tap = Tap()
        parts = [tap, *build_pipeline(config, clock, exchange)]
        if stream:
            parts.append(OrderStream(exchange, config.symbols, clock))
        async with Kernel(config, clock=clock, components=parts) as kernel:
            if stream:  # the user-data stream is open before anything happens on the account
                assert await _until(lambda: any(s.private for s in v.streams.values()))
            await _open_long(kernel, clock, v, tap)
            filled = await v.move_price(99_500.0)  # through the stop: the venue fills it at 99,500
            assert [o["clientOrderId"] for o in filled] == [next(iter(v.algo_orders.values()))["clientAlgoId"]]
            await _until(lambda: bool(tap.of(PositionClosed)), seconds=5.0)
            await kernel.stop("test done")
        await exchange.close()
    return tap, v


async def test_a_stop_the_exchange_fills_is_booked_from_the_private_stream() -> None:
    tap, _ = await _stop_fills(stream=True)
    closed = tap.of(PositionClosed)
    assert [(c.reason, c.exit_price, c.qty) for c in closed] == [("stop_loss", 99_500.0, 0.01)]  # type: ignore[attr-defined]
    stop_updates = [u for u in tap.of(OrderUpdated) if u.is_stop and u.status == "closed"]  # type: ignore[attr-defined]
    assert stop_updates and all(u.filled_qty == 0.01 for u in stop_updates)  # type: ignore[attr-defined]


async def test_without_the_stream_the_same_fill_goes_unnoticed_for_the_same_wait() -> None:
    tap, v = await _stop_fills(stream=False)
    assert tap.of(PositionClosed) == []  # the control: nothing but the stream reports it this soon
    assert v.positions == {"BTCUSDT": 0}  # although the exchange is flat


async def test_a_broken_stream_comes_back_and_asks_for_a_reconciliation() -> None:
    async with venue() as v:
        config = _config(v)
        clock = LiveClock()
        exchange = make_exchange(config.exchange, clock)
        assert isinstance(exchange, CcxtExchange)
        stream = OrderStream(exchange, config.symbols, clock, backoff_s=(0.1,))
        tap = Tap()
        async with Kernel(config, clock=clock, components=[tap, *build_pipeline(config, clock, exchange), stream]):
            assert await _until(lambda: any(s.private for s in v.streams.values()))
            await v.drop_sockets()
            assert await _until(lambda: bool(tap.of(FeedConnected)))
            await v.move_price(101_000.0)
        await exchange.close()
    (broke,) = tap.of(FeedDisconnected)
    assert (broke.symbol, broke.interval, broke.attempt) == ("*", "orders", 1)  # type: ignore[attr-defined]


@pytest.mark.parametrize("exchange_id", ["binanceusdm", "bybit"])
async def test_an_adopted_position_stopped_out_on_the_exchange_is_booked_from_the_stream(exchange_id: str) -> None:
    # Held before the kernel started: adopted and protected at start (29,400); then the venue fills that stop.
    async with venue() if exchange_id == "binanceusdm" else bybit_venue() as v:
        v.positions["BTCUSDT"], v.entry_prices["BTCUSDT"] = 0.01, 30_000.0
        clock = LiveClock()
        config = bybit_config() if exchange_id == "bybit" else _config(v).exchange
        exchange = make_exchange(config, clock)
        assert isinstance(exchange, CcxtExchange)
        v.point(exchange.ccxt)
        risk = RiskConfig(stop_loss_pct=2.0, reconcile_every=1000, reconcile_interval_s=3600)
        handler = PositionHandler(exchange, clock, risk, symbols=[BTC])
        tap = Tap()
        async with Kernel(clock=clock, components=[tap, handler, OrderStream(exchange, [BTC], clock)]) as kernel:
            # Binance pushes to the listen key's socket unasked; Bybit after the socket subscribed to "order".
            assert await _until(
                lambda: (
                    any(s.private for s in v.streams.values())
                    and (exchange_id == "binanceusdm" or "order" in v.subscriptions)
                )
            )
            assert handler.positions[BTC].stop_price == 29_400.0
            await v.move_price(29_300.0)
            await _until(lambda: bool(tap.of(PositionClosed)), seconds=5.0)
            await kernel.stop("test done")
        await exchange.close()
    assert [(c.reason, c.exit_price) for c in tap.of(PositionClosed)] == [("stop_loss", 29_300.0)]  # type: ignore[attr-defined]
    assert v.positions["BTCUSDT"] == 0


async def test_futures_cancelled_by_a_closed_shared_client_are_a_reconnect_not_the_end_of_the_stream() -> None:
    async with venue() as v:
        config = _config(v)
        clock = LiveClock()
        exchange = make_exchange(config.exchange, clock)
        assert isinstance(exchange, CcxtExchange)
        stream = OrderStream(exchange, config.symbols, clock, backoff_s=(0.1,))
        tap = Tap()
        async with Kernel(config, clock=clock, components=[tap, stream]):
            assert await _until(lambda: any(s.private for s in v.streams.values()))
            for client in exchange.ccxt.clients.values():  # what ccxt.pro does to a client somebody closes
                for future in list(client.futures.values()):
                    future.cancel()
            assert await _until(lambda: bool(tap.of(FeedConnected)))  # back, and the kernel lives
        await exchange.close()
    assert [(e.interval, e.reason) for e in tap.of(FeedDisconnected)] == [
        ("orders", "socket closed under the watch (ccxt.pro cancelled it)")
    ]  # type: ignore[attr-defined]


async def test_ccxt_pro_keeps_only_the_newest_orders_unless_the_user_says_otherwise() -> None:
    exchanges = [
        make_exchange(ExchangeConfig(id="binanceusdm", options=options), LiveClock())
        for options in ({}, {"ordersLimit": 500})
    ]
    try:
        assert exchanges[0].ccxt.options.get("ordersLimit", 1000) == 1000  # ccxt's own, grown into over a long run
        for exchange in exchanges:
            OrderStream(exchange, ["BTC/USDT:USDT"], LiveClock())
        assert [e.ccxt.options["ordersLimit"] for e in exchanges] == [ORDERS_KEPT, 500]
        assert exchanges[0].ccxt.options["tradesLimit"] == ORDERS_KEPT  # the account's fills, likewise
    finally:
        for exchange in exchanges:
            await exchange.close()
