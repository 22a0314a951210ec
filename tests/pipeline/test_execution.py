from __future__ import annotations

import pytest

from tests.pipeline.harness import Rig, config, rig
from twinstar.adapters.sim import SimFault
from twinstar.bus.events import OrderFailed, OrderPlaced, PositionClosed, PositionOpened, SLUpdated
from twinstar.handlers.execution import ExecutionHandler, client_order_id

pytestmark = pytest.mark.anyio
CID = client_order_id("test", "BTC/USD", 60_000, "open")


async def test_a_signal_opens_a_position_with_a_stop_for_the_filled_quantity() -> None:
    async with rig() as r:
        await r.candle(100.0)
        await r.signal("buy", stop=95.0)
        t = r.clock.now_ns()
        assert r.tap.of(OrderPlaced) == [
            OrderPlaced(
                ts_ns=t,
                client_order_id=CID,
                order_id="sim-1",
                exchange="sim",
                symbol="BTC/USD",
                side="buy",
                intent="open",
                requested_qty=1.0,
                filled_qty=1.0,
                avg_price=100.0,
                fee=0.1,
                status="filled",
                attempts=1,
                partial=False,
            )
        ]
        assert r.tap.of(PositionOpened) == [
            PositionOpened(ts_ns=t, exchange="sim", symbol="BTC/USD", side="long", qty=1.0, entry_price=100.0, fee=0.1)
        ]
        assert r.tap.of(SLUpdated) == [SLUpdated(ts_ns=t, exchange="sim", symbol="BTC/USD", stop_price=95.0, qty=1.0)]


async def test_rate_limits_back_off_5_10_15_seconds_on_the_clock() -> None:
    async with rig() as r:
        await r.candle(100.0)
        r.sim.inject(SimFault.RATE_LIMIT, count=3)
        start = r.clock.now_ns()
        await r.signal("buy")
        assert r.clock.now_ns() - start == 30_000_000_000  # 5 + 10 + 15 s of simulated waiting
        [placed] = r.tap.of(OrderPlaced)
        assert (placed.attempts, placed.filled_qty) == (4, 1.0)  # type: ignore[attr-defined]


async def test_rate_limits_beyond_the_backoff_schedule_fail_clearly() -> None:
    async with rig() as r:
        await r.candle(100.0)
        r.sim.inject(SimFault.RATE_LIMIT, count=4)
        await r.signal("buy")
        [failed] = r.tap.of(OrderFailed)
        assert (failed.error_kind, failed.attempts) == ("rate_limit", 4)  # type: ignore[attr-defined]
        assert r.tap.of(OrderPlaced) == []


async def test_a_timeout_after_the_order_reached_the_book_never_sends_it_twice() -> None:
    async with rig() as r:
        await r.candle(100.0)
        r.sim.inject(SimFault.TIMEOUT_AFTER_BOOK)
        await r.signal("buy")
        [placed] = r.tap.of(OrderPlaced)
        assert (placed.client_order_id, placed.filled_qty, placed.attempts) == (CID, 1.0, 1)  # type: ignore[attr-defined]
        position = await r.sim.fetch_position("BTC/USD")
        assert position is not None and position.qty == 1.0  # one order on the book, not two


async def test_a_timeout_before_the_book_is_resent_once_with_the_same_id() -> None:
    async with rig() as r:
        await r.candle(100.0)
        r.sim.inject(SimFault.TIMEOUT_BEFORE_BOOK)
        start = r.clock.now_ns()
        await r.signal("buy")
        [placed] = r.tap.of(OrderPlaced)
        assert (placed.client_order_id, placed.attempts) == (CID, 2)  # type: ignore[attr-defined]
        assert r.clock.now_ns() - start == 1_000_000_000  # the first network backoff
        position = await r.sim.fetch_position("BTC/USD")
        assert position is not None and position.qty == 1.0


async def test_insufficient_funds_fails_at_once_without_retry() -> None:
    async with rig(config(order_qty=50.0)) as r:  # 50 x 100 = 5,000 > 1,000 balance
        await r.candle(100.0)
        start = r.clock.now_ns()
        await r.signal("buy")
        [failed] = r.tap.of(OrderFailed)
        assert failed == OrderFailed(
            ts_ns=start,
            client_order_id=CID,
            exchange="sim",
            symbol="BTC/USD",
            side="buy",
            intent="open",
            error_kind="insufficient_funds",
            message="insufficient margin: need 5005.00, free 1000.00",
            attempts=1,
        )
        assert r.clock.now_ns() == start


async def test_a_partial_fill_is_flagged_and_the_stop_covers_only_what_filled() -> None:
    async with rig() as r:
        await r.candle(100.0)
        r.sim.inject(SimFault.PARTIAL_FILL, ratio=0.4)
        await r.signal("buy", stop=90.0)
        [placed] = r.tap.of(OrderPlaced)
        assert (placed.filled_qty, placed.partial, placed.status) == (0.4, True, "partial")  # type: ignore[attr-defined]
        [sl] = r.tap.of(SLUpdated)
        assert sl.qty == 0.4  # type: ignore[attr-defined]


async def test_a_repeated_signal_does_not_add_and_an_opposite_one_reverses() -> None:
    async with rig() as r:
        await r.candle(100.0)
        await r.signal("buy", stop=90.0)
        await r.candle(101.0)
        await r.signal("buy", stop=90.0)
        await r.candle(102.0)
        await r.signal("sell", stop=110.0, price=102.0)
        intents = [(e.intent, e.side, e.filled_qty) for e in r.tap.of(OrderPlaced)]  # type: ignore[attr-defined]
        assert intents == [("open", "buy", 1.0), ("close", "sell", 1.0), ("open", "sell", 1.0)]
        position = await r.sim.fetch_position("BTC/USD")
        assert position is not None and (position.side, position.qty) == ("short", 1.0)


async def test_a_reused_client_order_id_is_rejected_and_lookup_returns_the_first() -> None:
    async with rig() as r:
        await r.candle(100.0)
        first = await r.sim.place_market_order("BTC/USD", "buy", 1.0, client_order_id="abc")
        again = await r.sim.place_market_order("BTC/USD", "buy", 2.0, client_order_id="abc")
        assert first.ok and not again.ok
        assert again.message == "duplicate client order id abc"
        assert await r.sim.fetch_order("BTC/USD", "abc") == first


def _execution(r: Rig) -> ExecutionHandler:
    [handler] = [c for c in r.kernel.components if isinstance(c, ExecutionHandler)]
    return handler


async def test_the_exchange_is_asked_once_then_our_own_fills_tell_the_position() -> None:
    async with rig() as r:
        for side in ("buy", "sell", "buy", "buy"):
            await r.candle(100.0)
            await r.signal(side)
        assert _execution(r).position_reads == 1
        opened = [(e.side, e.intent, e.filled_qty) for e in r.tap.of(OrderPlaced)]  # type: ignore[attr-defined]
        assert opened == [
            ("buy", "open", 1.0),
            ("sell", "close", 1.0),
            ("sell", "open", 1.0),
            ("buy", "close", 1.0),
            ("buy", "open", 1.0),
        ]  # the repeated buy adds nothing
        position = await r.sim.fetch_position("BTC/USD")
        assert position is not None and (position.side, position.qty) == ("long", 1.0)


async def test_a_stop_fill_makes_execution_ask_the_exchange_again() -> None:
    async with rig() as r:
        await r.candle(100.0)
        await r.signal("buy", stop=95.0)
        await r.candle(96.0, low=94.0)  # the stop fills; the position handler books it
        assert [e.reason for e in r.tap.of(PositionClosed)] == ["stop_loss"]  # type: ignore[attr-defined]
        await r.signal("sell", price=96.0)
        assert _execution(r).position_reads == 2
        assert [e.intent for e in r.tap.of(OrderPlaced)] == ["open", "open"]  # type: ignore[attr-defined]
        assert r.tap.of(OrderFailed) == []


async def test_a_stale_view_costs_one_refused_close_then_the_exchange_is_asked() -> None:
    async with rig() as r:
        await r.candle(100.0)
        await r.signal("buy")
        # The position goes away on the exchange with no event yet (a stop that filled moments ago).
        await r.sim.close_position("BTC/USD", client_order_id="elsewhere-1")
        await r.candle(100.0)
        await r.signal("sell")
        [refused] = r.tap.of(OrderFailed)
        assert (refused.intent, refused.error_kind) == ("close", "invalid_order")  # type: ignore[attr-defined]
        assert _execution(r).position_reads == 2
        assert [(e.side, e.intent) for e in r.tap.of(OrderPlaced)] == [("buy", "open"), ("sell", "open")]  # type: ignore[attr-defined]
        position = await r.sim.fetch_position("BTC/USD")
        assert position is not None and (position.side, position.qty) == ("short", 1.0)
