"""A retry never doubles an order: the real execution handler and Binance adapter over loopback HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.adapters.test_adapters_wire import _config
from tests.pipeline.harness import Tap
from twinstar.adapters.binance import BinanceUsdm
from twinstar.bus.bus import Bus
from twinstar.bus.events import OrderFailed, OrderPlaced, SignalFired
from twinstar.clock import LiveClock, SimClock
from twinstar.config import ExecutionConfig, RiskConfig
from twinstar.handlers.execution import ExecutionHandler, client_order_id
from twinstar.handlers.journal import Journal
from twinstar.testing import Failure, Venue, venue

pytestmark = pytest.mark.anyio
SIGNAL = SignalFired(
    ts_ns=1,
    strategy="t",
    exchange="binanceusdm",
    symbol="BTC/USDT:USDT",
    side="buy",
    price=30_000.0,
    stop_price=0.0,
    reason="test",
    candle_open_time_ms=1_700_000_000_000,
)
CID = client_order_id("t", "BTC/USDT:USDT", 1_700_000_000_000, "open")


async def _signal_through_execution(failure: Failure | None) -> tuple[list[object], dict[str, object], int]:
    async with venue() as v:
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=SimClock(0, autojump=True))
        v.point(adapter.ccxt)
        adapter.ccxt.timeout = (
            1_000  # ms: the delayed replies below arrive after the client gave up; loaded CI stays under it
        )
        bus = Bus(SimClock(0, autojump=True), mode="replay")
        tap = Tap()
        tap.attach(bus)
        handler = ExecutionHandler(adapter, bus.clock, ExecutionConfig(), RiskConfig(order_qty=0.01))
        handler.attach(bus)
        try:
            await adapter.ccxt.load_markets()
            if failure is not None:
                v.failures.append(failure)
            await bus.publish(SIGNAL)
        finally:
            await adapter.close()
        posts = sum(1 for method, path in v.requests if method == "POST" and path == "/fapi/v1/order")
        return tap.events, dict(v.orders), posts


async def test_a_timeout_after_the_order_reached_the_book_is_found_not_resent() -> None:
    events, orders, posts = await _signal_through_execution(Failure(delay_s=2.0, executes=True, path="/fapi/v1/order"))
    placed = [e for e in events if isinstance(e, OrderPlaced)]
    assert [(p.client_order_id, p.filled_qty, p.attempts) for p in placed] == [(CID, 0.01, 1)]
    assert list(orders) == [CID]  # one order on the book
    assert posts == 1  # and only one was ever sent


async def test_a_timeout_before_the_book_is_resent_once_with_the_same_id() -> None:
    events, orders, posts = await _signal_through_execution(
        Failure(status=504, body={"code": -1007, "msg": "Timeout"}, delay_s=2.0, path="/fapi/v1/order")
    )
    placed = [e for e in events if isinstance(e, OrderPlaced)]
    assert [(p.client_order_id, p.attempts) for p in placed] == [(CID, 2)]
    assert list(orders) == [CID]
    assert posts == 2


async def test_a_definitive_rejection_over_the_wire_is_final() -> None:
    events, orders, posts = await _signal_through_execution(
        Failure(status=400, body={"code": -2010, "msg": "Account has insufficient balance"}, path="/fapi/v1/order")
    )
    failed = [e for e in events if isinstance(e, OrderFailed)]
    assert [(f.error_kind, f.attempts) for f in failed] == [("invalid_order", 1)]
    assert orders == {}
    assert posts == 1


async def _late_request(delay_s: float) -> tuple[list[object], Venue]:
    """The order request itself reaches the venue `delay_s` late, long after the client gave up on it.

    Real time throughout (the receive window is the venue's clock against the
    request's stamp): a 1 s recvWindow, a 0.5 s client timeout.
    """
    async with venue() as v:
        clock = LiveClock()
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        adapter.ccxt.timeout = 500
        adapter.ccxt.options["recvWindow"] = 1_000
        bus = Bus(clock, mode="replay")
        tap = Tap()
        tap.attach(bus)
        ExecutionHandler(adapter, clock, ExecutionConfig(), RiskConfig(order_qty=0.01)).attach(bus)
        try:
            await adapter.ccxt.load_markets()
            v.failures.append(Failure(arrives_late=True, delay_s=delay_s, path="/fapi/v1/order"))
            await bus.publish(SIGNAL)
            await asyncio.sleep(max(0.0, delay_s - 1.5) + 0.3)  # until the held request has surely arrived
        finally:
            await adapter.close()
        return tap.events, v


async def test_a_request_arriving_late_inside_its_window_is_found_and_never_sent_again() -> None:
    # It reaches the book 0.8 s after it was sent: after the client's timeout and its first lookup ("not
    # found"), inside its receive window. Execution waits for the window to close, looks again, finds it.
    events, v = await _late_request(0.8)
    placed = [e for e in events if isinstance(e, OrderPlaced)]
    assert [(p.client_order_id, p.filled_qty, p.attempts) for p in placed] == [(CID, 0.01, 1)]
    assert v.requests.count(("POST", "/fapi/v1/order")) == 1
    assert [o["clientOrderId"] for o in v.orders_by_id.values()] == [CID]  # one order ever executed
    assert v.positions["BTCUSDT"] == 0.01


async def test_a_request_arriving_after_its_window_is_refused_and_the_resend_executes_once() -> None:
    # Held 2.5 s: the window (1 s, plus 1 s of clock tolerance) has closed, so the resend goes out at 2 s;
    # the held request arrives after it and is refused (-1021): one order, not two.
    events, v = await _late_request(2.5)
    placed = [e for e in events if isinstance(e, OrderPlaced)]
    assert [(p.client_order_id, p.filled_qty, p.attempts) for p in placed] == [(CID, 0.01, 2)]
    assert v.requests.count(("POST", "/fapi/v1/order")) == 2  # the held one did arrive, and was refused
    assert [o["clientOrderId"] for o in v.orders_by_id.values()] == [CID]
    assert v.positions["BTCUSDT"] == 0.01


async def test_a_restarted_kernel_re_deciding_a_traded_candle_sends_nothing(tmp_path: Path) -> None:
    # The first kernel entered and its stop filled (the position is gone); a restart within two intervals
    # sees the same candle and the same signal again. Binance would take the filled order's id again.
    async with venue() as v:
        posts: list[int] = []
        for _ in range(2):  # the first kernel, then the restarted one, on the same journal file
            adapter = BinanceUsdm(config=_config("binanceusdm"), clock=SimClock(0, autojump=True))
            v.point(adapter.ccxt)
            bus = Bus(SimClock(0, autojump=True), mode="replay")
            journal = Journal(tmp_path / "binanceusdm.journal")
            ExecutionHandler(adapter, bus.clock, ExecutionConfig(), RiskConfig(order_qty=0.01), journal=journal).attach(
                bus
            )
            try:
                await bus.publish(SIGNAL)
            finally:
                journal.close()
                await adapter.close()
            posts.append(v.requests.count(("POST", "/fapi/v1/order")))
            v.positions["BTCUSDT"] = 0.0  # stopped out between the two runs
    assert posts == [1, 1]
    assert [o["clientOrderId"] for o in v.orders_by_id.values()] == [CID]
