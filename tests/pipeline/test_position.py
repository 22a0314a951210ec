from __future__ import annotations

import pytest

from tests.pipeline.harness import config, rig
from twinstar.adapters.sim import SimFault
from twinstar.bus.events import EmergencyExit, PositionClosed, SLUpdated, SLUpdateFailed

pytestmark = pytest.mark.anyio


async def test_a_stop_triggers_on_the_low_and_fills_at_the_stop() -> None:
    async with rig() as r:
        await r.candle(100.0)
        await r.signal("buy", stop=95.0)
        await r.candle(97.0, low=94.0)
        [closed] = r.tap.of(PositionClosed)
        # entry fee 0.1 + exit fee 0.095: PnL is after both
        assert closed == PositionClosed(
            ts_ns=r.clock.now_ns(),
            exchange="sim",
            symbol="BTC/USD",
            side="long",
            qty=1.0,
            entry_price=100.0,
            exit_price=95.0,
            pnl=pytest.approx(-5.0 - 0.1 - 0.095),
            fees=pytest.approx(0.195),  # type: ignore[arg-type]
            reason="stop_loss",
        )
        assert r.sim.cash == pytest.approx(1_000 - 5.195)


async def test_a_gap_through_the_stop_fills_at_the_open() -> None:
    async with rig() as r:
        await r.candle(100.0)
        await r.signal("sell", stop=105.0)
        await r.candle(112.0, open_=110.0, high=113.0, low=109.0)
        [closed] = r.tap.of(PositionClosed)
        assert (closed.exit_price, closed.reason) == (110.0, "stop_loss")  # type: ignore[attr-defined]


async def test_the_stop_trails_only_in_the_favourable_direction() -> None:
    async with rig(config(trailing_stop=True, stop_loss_pct=5.0)) as r:
        await r.candle(100.0)
        await r.signal("buy")  # default stop: 5% under the fill
        for close in (110.0, 105.0, 120.0):
            await r.candle(close)
        stops = [e.stop_price for e in r.tap.of(SLUpdated)]  # type: ignore[attr-defined]
        assert stops == [95.0, pytest.approx(104.5), pytest.approx(114.0)]


async def test_a_failing_stop_update_retries_1_2_3_seconds_then_reports_and_keeps_the_old_stop() -> None:
    async with rig(config(trailing_stop=True, stop_loss_pct=5.0)) as r:
        await r.candle(100.0)
        await r.signal("buy")
        r.sim.inject(SimFault.REJECT_STOP, count=4)
        await r.candle(110.0)  # closes at minute 3; the trail to 104.5 is refused four times
        assert r.clock.now_ns() == 180_000_000_000 + 6_000_000_000  # waited 1 + 2 + 3 s between tries
        [failed] = r.tap.of(SLUpdateFailed)
        assert failed == SLUpdateFailed(
            ts_ns=r.clock.now_ns(),
            exchange="sim",
            symbol="BTC/USD",
            stop_price=pytest.approx(104.5),  # type: ignore[arg-type]
            attempts=4,
            error_kind="invalid_order",
            message="stop order rejected (injected)",
        )
        await r.candle(96.0, low=94.9)  # the old stop at 95 is still in force on the exchange
        [closed] = r.tap.of(PositionClosed)
        assert (closed.exit_price, closed.reason) == (95.0, "stop_loss")  # type: ignore[attr-defined]


async def test_a_stop_that_recovers_within_the_retries_is_placed() -> None:
    async with rig() as r:
        await r.candle(100.0)
        r.sim.inject(SimFault.REJECT_STOP, count=2)
        await r.signal("buy", stop=90.0)
        assert r.tap.of(SLUpdateFailed) == []
        assert [e.stop_price for e in r.tap.of(SLUpdated)] == [90.0]  # type: ignore[attr-defined]


async def test_a_position_that_gets_no_stop_at_all_is_closed_at_market() -> None:
    async with rig() as r:
        await r.candle(100.0)
        r.sim.inject(SimFault.REJECT_STOP, count=10)
        await r.signal("buy", stop=90.0)
        [exit_event] = r.tap.of(EmergencyExit)
        assert exit_event == EmergencyExit(
            ts_ns=r.clock.now_ns(), exchange="sim", symbol="BTC/USD", qty=1.0, reason="no stop-loss could be placed"
        )
        [closed] = r.tap.of(PositionClosed)
        assert closed.reason == "emergency_exit"  # type: ignore[attr-defined]
        assert await r.sim.fetch_position("BTC/USD") is None


async def test_pnl_of_a_round_trip_includes_both_fees() -> None:
    async with rig() as r:
        await r.candle(100.0)
        await r.signal("buy", stop=90.0)
        await r.candle(120.0)
        await r.signal("sell", stop=130.0, price=120.0)
        closed = r.tap.of(PositionClosed)[0]
        assert (closed.pnl, closed.fees, closed.reason) == (  # type: ignore[attr-defined]
            pytest.approx(20.0 - 0.1 - 0.12),
            pytest.approx(0.22),
            "signal",
        )
