"""Binance USD-M exits book their fee from the private stream, else from their trades: the order reply has none.

Real ccxt.pro against the loopback Binance venue, which pushes each fill as
ORDER_TRADE_UPDATE with its commission (`n`, in asset `N`) before the REST
reply leaves, as the venue does. Without the stream the exit's close waits
for its trades (`money.exit_fees`); here nothing else follows it, so it is
booked when the kernel stops taking input.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import anyio
import pytest

from tests.money.test_leverage_wire import binance
from twinstar.adapters.binance import BinanceUsdm
from twinstar.adapters.order_stream import OrderStream
from twinstar.bus.bus import Bus
from twinstar.bus.events import OrderIntent, OrderPlaced, PositionClosed, Side
from twinstar.clock import LiveClock
from twinstar.config import RiskConfig
from twinstar.handlers.position import PositionHandler
from twinstar.testing.venue import Venue, venue

pytestmark = pytest.mark.anyio
BTC = "BTC/USDT:USDT"


async def _until(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def _fill(adapter: BinanceUsdm, handler: PositionHandler, side: Side, intent: OrderIntent, cid: str) -> float:
    """Send a market order, hand its fill to the position handler; return the fee the reply was booked with."""
    placed = await adapter.place_market_order(BTC, side, 0.01, client_order_id=cid, reduce_only=intent == "close")
    assert placed.ok, placed
    await handler.on_order(
        OrderPlaced(
            ts_ns=1,
            client_order_id=placed.client_order_id,
            order_id=placed.order_id,
            exchange=adapter.name,
            symbol=BTC,
            side=side,
            intent=intent,
            requested_qty=0.01,
            filled_qty=placed.filled_qty,
            avg_price=placed.avg_price,
            fee=placed.fee,
            status=placed.status,
            attempts=1,
            partial=False,
        )
    )
    return placed.fee


async def _round_trip(v: Venue, *, stream: bool) -> tuple[float, list[PositionClosed]]:
    """Open and close 0.01 BTC; the exit's booked fee and what the handler published."""
    adapter = binance(v)
    handler = PositionHandler(adapter, LiveClock(), RiskConfig(), symbols=[BTC])
    closed: list[PositionClosed] = []

    async def collect(event: PositionClosed) -> None:
        closed.append(event)

    bus = Bus(LiveClock(), mode="replay")
    bus.subscribe(PositionClosed, collect)
    handler.attach(bus)
    orders = OrderStream(adapter, [BTC], LiveClock())
    try:
        async with anyio.create_task_group() as tasks:
            if stream:
                tasks.start_soon(orders.run)
                assert await _until(lambda: any(s.private for s in v.streams.values()))
            await _fill(adapter, handler, "buy", "open", "fee-open")
            exit_fee = await _fill(adapter, handler, "sell", "close", "fee-close")
            await handler.stop_intake()  # a close still waiting for its fee is booked before shutdown
            await orders.stop_intake()
            tasks.cancel_scope.cancel()
    finally:
        await adapter.close()
    return exit_fee, closed


async def test_an_exits_fee_paid_in_another_asset_comes_from_the_stream_in_quote() -> None:
    async with venue() as v:
        v.commission_asset, v.prices["ETHUSDT"], v.prices["BTCUSDT"] = "ETH", 2_000.0, 30_000.0
        v.price = 30_000.0
        exit_fee, closed = await _round_trip(v, stream=True)
    taker = round(0.01 * 30_000 * v.taker_fee, 9)  # 0.15 USDT, charged as 0.000075 ETH at 2,000
    assert round(exit_fee, 9) == taker
    assert [(c.reason, round(c.fees, 9)) for c in closed] == [("signal", round(2 * taker, 9))]  # entry + exit
    requests = [path for _, path in v.requests]
    # No trades read stood between the exit and what could follow it; only the entry's, after its stop.
    assert requests.count("/fapi/v1/userTrades") == 1
    assert requests.index("/fapi/v1/userTrades") > requests.index("/fapi/v1/algoOrder")


async def test_without_the_stream_the_exits_fee_comes_from_its_trades() -> None:
    async with venue() as v:
        v.price = 30_000.0
        exit_fee, closed = await _round_trip(v, stream=False)
    taker = round(0.01 * 30_000 * v.taker_fee, 9)
    assert exit_fee == 0.0  # Binance's reply alone carries no commission
    assert [(c.reason, round(c.fees, 9)) for c in closed] == [("signal", round(2 * taker, 9))]  # entry + exit
    requests = [path for _, path in v.requests]
    assert requests.count("/fapi/v1/userTrades") == 2  # the entry's, after its stop; the exit's, after the close


async def test_an_exit_waits_for_its_commission_streamed_after_the_reply_woken_by_the_stream() -> None:
    """The fill's frame comes 200 ms after the REST reply: the exit takes its fee from it, woken, not polling."""
    looks = 0
    wait_for_updates = BinanceUsdm._order_updates_or

    async def counted(self: BinanceUsdm, seconds: float) -> None:
        nonlocal looks
        looks += 1
        await wait_for_updates(self, seconds)

    async with venue() as v:
        v.price, v.private_push_delay_s = 30_000.0, 0.2
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(BinanceUsdm, "_order_updates_or", counted)
            exit_fee, closed = await _round_trip(v, stream=True)
    taker = round(0.01 * 30_000 * v.taker_fee, 9)
    assert round(exit_fee, 9) == taker  # from the stream: the reply had none
    assert [(c.reason, round(c.fees, 9)) for c in closed] == [("signal", round(2 * taker, 9))]
    assert 1 <= looks <= 3  # one wait per batch of stream updates; a 10 ms poll would have looked about 20 times
    assert [path for _, path in v.requests].count("/fapi/v1/userTrades") == 1  # the entry's only
