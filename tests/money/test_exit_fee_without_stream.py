"""A reversal on Binance USD-M without the order stream: the exit's fee is exact, and the new stop goes first.

Real ccxt against the loopback Binance venue, the real execution and position
handlers on a replay bus, no private stream (`order_stream = false`). The
close's reply has no commission, so its `PositionClosed` waits until the new
entry's stop rests, then goes out with the fee read from the close's trades
(`/fapi/v1/userTrades`), ahead of the new position's events.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import anyio
import pytest

from tests.adapters.test_adapters_wire import _config
from tests.pipeline.harness import Tap
from twinstar.adapters.binance import BinanceUsdm
from twinstar.bus.bus import Bus
from twinstar.bus.events import EntriesPaused, Event, PositionClosed, PositionOpened, Side, SignalFired, SLUpdated
from twinstar.clock import Clock, LiveClock, SimClock
from twinstar.config import ExecutionConfig, RiskConfig
from twinstar.handlers.execution import ExecutionHandler
from twinstar.handlers.journal import Journal
from twinstar.handlers.position import PositionHandler
from twinstar.kernel import Kernel
from twinstar.testing.venue import Venue, venue

pytestmark = pytest.mark.anyio
BTC = "BTC/USDT:USDT"
START_NS = 1_700_000_000_000 * 1_000_000


def _signal(clock: Clock, side: Side, minute: int) -> SignalFired:
    return SignalFired(
        ts_ns=clock.now_ns(),
        strategy="t",
        exchange="binanceusdm",
        symbol=BTC,
        side=side,
        price=30_000.0,
        stop_price=0.0,
        reason="test",
        candle_open_time_ms=START_NS // 1_000_000 + minute * 60_000,
    )


async def test_a_reversals_exit_fee_is_read_after_the_new_stop_and_booked_before_the_new_position() -> None:
    async with venue() as v:
        clock = SimClock(START_NS, autojump=True)
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
        v.point(adapter.ccxt)
        bus = Bus(clock, mode="replay")
        tap = Tap()
        tap.attach(bus)
        risk = RiskConfig(order_qty=0.01, trailing_stop=False)
        journal = Journal()
        PositionHandler(adapter, clock, risk, journal=journal, symbols=[BTC]).attach(bus)
        ExecutionHandler(adapter, clock, ExecutionConfig(), risk, journal=journal).attach(bus)
        try:
            await adapter.ccxt.load_markets()
            await bus.publish(_signal(clock, "buy", 0))
            await v.move_price(30_300.0)
            start = len(v.requests)
            await bus.publish(_signal(clock, "sell", 1))  # close the long at 30,300, open a short
        finally:
            await adapter.close()
    taker = 0.01 * 30_000 * v.taker_fee, 0.01 * 30_300 * v.taker_fee  # 0.15 and 0.1515 USDT
    [closed] = tap.of(PositionClosed)
    assert (closed.reason, closed.exit_price) == ("signal", 30_300.0)  # type: ignore[attr-defined]
    assert round(closed.fees, 9) == round(taker[0] + taker[1], 9)  # type: ignore[attr-defined]  # not entry only
    assert round(closed.pnl, 9) == round(0.01 * 300 - taker[0] - taker[1], 9)  # type: ignore[attr-defined]
    # Every reader sees the close before the position the reversal opened, and that one's stop after it.
    kinds = [
        (type(e).__name__, getattr(e, "side", ""))
        for e in tap.events
        if isinstance(e, (PositionOpened, PositionClosed, SLUpdated))
    ]
    assert kinds == [
        ("PositionOpened", "long"),
        ("SLUpdated", ""),
        ("PositionClosed", "long"),
        ("PositionOpened", "short"),
        ("SLUpdated", ""),
    ]
    reversal = [f"{m} {p}" for m, p in v.requests[start:] if p.startswith("/fapi/v1/")]
    close_at, stop_at = reversal.index("POST /fapi/v1/order"), reversal.index("POST /fapi/v1/algoOrder")
    trades = [i for i, r in enumerate(reversal) if r == "GET /fapi/v1/userTrades"]
    assert close_at < stop_at < trades[0]  # no trades read between the close and the new entry's stop
    assert len(trades) == 2  # the exit's, then the new entry's


async def _until(tap: Tap, done: Callable[[list[Event]], bool]) -> None:
    with anyio.move_on_after(20):  # bounds the wait, asserts nothing about time
        while not done(tap.events):  # noqa: ASYNC110 (the tap is polled, it has no event)
            await asyncio.sleep(0.02)


async def _live(v: Venue, *, pause_before_reversal: bool) -> Tap:
    """A live kernel (mailboxes, maintenance loop): open long, then a sell signal; optionally no entry after it."""
    clock = LiveClock()
    adapter = BinanceUsdm(config=_config("binanceusdm"), clock=clock)
    v.point(adapter.ccxt)
    await adapter.ccxt.load_markets()
    risk = RiskConfig(order_qty=0.01, trailing_stop=False)
    journal = Journal()
    positions = PositionHandler(adapter, clock, risk, journal=journal, symbols=[BTC])
    execution = ExecutionHandler(adapter, clock, ExecutionConfig(), risk, journal=journal, symbols=[BTC])
    tap = Tap()
    try:
        async with Kernel(clock=clock, components=[tap, positions, execution]) as kernel:
            await kernel.publish(_signal(clock, "buy", 0))
            await _until(tap, lambda events: any(isinstance(e, SLUpdated) for e in events))
            await v.move_price(30_300.0)
            if pause_before_reversal:
                await kernel.publish(EntriesPaused(ts_ns=clock.now_ns(), reason="test"))
            await kernel.publish(_signal(clock, "sell", 1))
            # Booked while running: by the new entry's stop, or once the bus is idle; never left to the shutdown.
            await _until(tap, lambda events: any(isinstance(e, PositionClosed) for e in events))
            closed_before_stop = len(tap.of(PositionClosed))
            await kernel.stop("test done")
    finally:
        await adapter.close()
    assert closed_before_stop == 1
    return tap


@pytest.mark.parametrize("pause_before_reversal", [False, True])
async def test_live_the_exit_fee_is_exact_with_or_without_an_entry_after_it(pause_before_reversal: bool) -> None:
    async with venue() as v:
        tap = await _live(v, pause_before_reversal=pause_before_reversal)
    taker = 0.01 * 30_000 * v.taker_fee, 0.01 * 30_300 * v.taker_fee
    [closed] = tap.of(PositionClosed)
    assert (closed.reason, closed.exit_price) == ("signal", 30_300.0)  # type: ignore[attr-defined]
    assert round(closed.fees, 9) == round(taker[0] + taker[1], 9)  # type: ignore[attr-defined]
    opened = [
        (type(e).__name__, getattr(e, "side", ""))
        for e in tap.events
        if isinstance(e, (PositionOpened, PositionClosed))
    ]
    expected = [("PositionOpened", "long"), ("PositionClosed", "long")]
    assert opened == (expected if pause_before_reversal else [*expected, ("PositionOpened", "short")])
