"""A kernel that starts again after a crash: reconciliation against the exchange, with the journal on disk.

The simulated exchange plays the venue that outlives the kernel: each "life" is
a fresh kernel with fresh handlers over the same exchange and the same journal
file, as after a SIGKILL and a restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.pipeline.harness import MINUTE_NS, Rig, Tap, config
from twinstar import Config, Kernel
from twinstar.adapters.sim import SimExchange, SimFault
from twinstar.bus.events import (
    CandleClosed,
    EmergencyExit,
    OrderPlaced,
    PositionClosed,
    PositionReconciled,
    ReconciliationCompleted,
    SLUpdated,
)
from twinstar.clock import SimClock
from twinstar.handlers import build_pipeline
from twinstar.handlers.execution import client_order_id
from twinstar.handlers.journal import Journal, Sent
from twinstar.handlers.position import PositionHandler

pytestmark = pytest.mark.anyio


def _candle(minute: int, close: float) -> CandleClosed:
    return CandleClosed(
        ts_ns=(minute + 1) * MINUTE_NS,
        exchange="sim",
        symbol="BTC/USD",
        interval="1m",
        open_time_ms=minute * 60_000,
        open=close,
        high=close,
        low=close,
        close=close,
        volume=1.0,
    )


@asynccontextmanager
async def life(sim: SimExchange, clock: SimClock, journal: Path, cfg: Config | None = None) -> AsyncIterator[Rig]:
    """One life of a kernel: fresh handlers, the same exchange and the same journal file."""
    cfg = cfg or config()
    parts = [
        p for p in build_pipeline(cfg, clock, sim, journal=Journal(journal)) if type(p).__name__ != "StrategyHandler"
    ]
    tap = Tap()
    async with Kernel(cfg, clock=clock, components=[tap, *parts], mode="replay") as kernel:
        yield Rig(kernel, clock, sim, tap, minute=clock.now_ns() // MINUTE_NS)


def _exchange(cfg: Config) -> tuple[SimExchange, SimClock]:
    clock = SimClock(MINUTE_NS, autojump=True)
    sim = SimExchange(clock, cfg.sim)
    sim.on_candle(_candle(0, 100.0))
    return sim, clock


def _actions(tap: Tap) -> list[tuple[str, float, float]]:
    return [(e.action, e.before, e.after) for e in tap.of(PositionReconciled)]  # type: ignore[attr-defined]


async def test_a_restart_adopts_the_position_and_its_own_stop_and_places_nothing(tmp_path: Path) -> None:
    sim, clock = _exchange(config())
    journal = tmp_path / "sim.journal"
    async with life(sim, clock, journal) as first:
        await first.signal("buy", stop=95.0)
    stop_before = await sim.fetch_open_orders("BTC/USD")
    async with life(sim, clock, journal) as second:
        handler = next(p for p in second.kernel.components if isinstance(p, PositionHandler))
        assert _actions(second.tap) == [("adopted", 0.0, 1.0), ("stop_adopted", 1.0, 1.0)]
        assert (handler.positions["BTC/USD"].stop_price, handler.positions["BTC/USD"].stop_cid) == (
            95.0,
            stop_before[0].client_order_id,
        )
        assert second.tap.of(SLUpdated) == []  # no new stop: the one resting is ours
        await second.candle(96.0, low=94.0)  # the adopted stop is watched like any other
        [closed] = second.tap.of(PositionClosed)
        assert (closed.reason, closed.exit_price) == ("stop_loss", 95.0)  # type: ignore[attr-defined]
    assert await sim.fetch_open_orders("BTC/USD") == stop_before[:0]


async def test_a_position_without_a_stop_is_protected_at_once(tmp_path: Path) -> None:
    sim, clock = _exchange(config())
    await sim.place_market_order("BTC/USD", "sell", 1.0, client_order_id="manual-1")  # opened by hand
    async with life(sim, clock, tmp_path / "j") as r:
        assert _actions(r.tap) == [("adopted", 0.0, 1.0), ("protected", 1.0, 1.0)]
        [stop] = await sim.fetch_open_orders("BTC/USD")
        assert (stop.side, stop.stop_price, stop.qty) == ("buy", 102.0, 1.0)  # 2% above the short's entry
        [done] = r.tap.of(ReconciliationCompleted)
        assert (done.trigger, done.repairs, done.failures) == ("start", 2, 0)  # type: ignore[attr-defined]


async def test_on_unprotected_close_closes_instead(tmp_path: Path) -> None:
    cfg = config(on_unprotected="close")
    sim, clock = _exchange(cfg)
    await sim.place_market_order("BTC/USD", "buy", 1.0, client_order_id="manual-1")
    async with life(sim, clock, tmp_path / "j", cfg) as r:
        assert _actions(r.tap) == [("adopted", 0.0, 1.0), ("closed", 1.0, 1.0)]
        assert [e.reason for e in r.tap.of(PositionClosed)] == ["emergency_exit"]  # type: ignore[attr-defined]
    assert await sim.fetch_position("BTC/USD") is None


async def test_a_stop_of_ours_with_no_position_is_cancelled(tmp_path: Path) -> None:
    sim, clock = _exchange(config())
    await sim.update_stop_loss("BTC/USD", "long", 1.0, 90.0, client_order_id="tws-btcusd-1-1")
    await sim.update_stop_loss("ETH/USD", "long", 1.0, 90.0, client_order_id="someone-elses")
    async with life(sim, clock, tmp_path / "j") as r:
        assert _actions(r.tap) == [("orphan_cancelled", 1.0, 0.0)]
    assert await sim.fetch_open_orders("BTC/USD") == []
    assert len(await sim.fetch_open_orders("ETH/USD")) == 1  # not ours, not touched


async def test_an_entry_the_crash_left_pending_is_looked_up_never_resent(tmp_path: Path) -> None:
    sim, clock = _exchange(config())
    path = tmp_path / "j"
    cid = client_order_id("test", "BTC/USD", 0, "open")
    Journal(path).sent(
        Sent(
            cid=cid, exchange="sim", symbol="BTC/USD", side="buy", qty=1.0, intent="open", reduce_only=False, sent_ms=0
        )
    )
    await sim.place_market_order("BTC/USD", "buy", 1.0, client_order_id=cid)  # it reached the book; the reply did not
    orders_before = len(sim._orders)
    async with life(sim, clock, path) as r:
        actions = _actions(r.tap)
        assert actions == [("pending_resolved", 0.0, 1.0), ("adopted", 0.0, 1.0), ("protected", 1.0, 1.0)]
        assert r.tap.of(OrderPlaced) == []  # looked up, not sent again
    assert len(sim._orders) == orders_before + 1  # only the stop was placed
    assert Journal(path).state.pending == {}


async def test_an_entry_that_never_arrived_is_settled_without_an_order(tmp_path: Path) -> None:
    sim, clock = _exchange(config())
    path = tmp_path / "j"
    Journal(path).sent(
        Sent(
            cid="two-x",
            exchange="sim",
            symbol="BTC/USD",
            side="buy",
            qty=1.0,
            intent="open",
            reduce_only=False,
            sent_ms=0,
        )
    )
    async with life(sim, clock, path) as r:
        [found] = r.tap.of(PositionReconciled)
        assert (found.action, found.detail) == (  # type: ignore[attr-defined]
            "pending_resolved",
            "two-x (open) never reached the exchange; not resent",
        )
    assert sim._orders == {} and await sim.fetch_position("BTC/USD") is None


async def test_a_position_stopped_out_while_the_kernel_was_down_is_booked(tmp_path: Path) -> None:
    sim, clock = _exchange(config())
    path = tmp_path / "j"
    async with life(sim, clock, path) as first:
        await first.signal("buy", stop=95.0)
    clock.set_ns(3 * MINUTE_NS)
    sim.on_candle(_candle(2, 94.0))  # the venue fills the stop while no kernel runs
    async with life(sim, clock, path) as second:
        assert _actions(second.tap) == [("closed_outside", 1.0, 0.0)]
        [closed] = second.tap.of(PositionClosed)
        # The venue's own fill: the candle opened at 94, through the stop, so it filled there.
        assert (closed.reason, closed.exit_price, closed.qty) == ("stop_loss", 94.0, 1.0)  # type: ignore[attr-defined]
        assert closed.pnl == pytest.approx(-6.0 - 0.1 - 0.094)  # type: ignore[attr-defined]
    assert Journal(path).state.stops == {}


async def test_a_failed_emergency_close_is_retried_until_flat(tmp_path: Path) -> None:
    sim, clock = _exchange(config())
    async with life(sim, clock, tmp_path / "j") as r:
        sim.inject(SimFault.REJECT_STOP, count=20)  # no stop can be placed at all
        sim.inject(SimFault.NETWORK_DOWN, count=3)  # and the first closes do not get through
        await r.signal("buy", stop=95.0)
        assert [e.reason for e in r.tap.of(EmergencyExit)] == ["no stop-loss could be placed"]  # type: ignore[attr-defined]
        assert [e.reason for e in r.tap.of(PositionClosed)] == ["emergency_exit"]  # type: ignore[attr-defined]
    assert await sim.fetch_position("BTC/USD") is None


async def test_a_short_whose_stop_is_zero_is_protected_from_its_entry(tmp_path: Path) -> None:
    sim, clock = _exchange(config())
    async with life(sim, clock, tmp_path / "j") as r:
        await r.signal("sell")  # no stop in the signal: the default distance
        handler = next(p for p in r.kernel.components if isinstance(p, PositionHandler))
        position = handler.positions["BTC/USD"]
        assert position.stop_price == 102.0
        await handler.protect(position, 0.0)  # a zero stop: never a price, the default instead
        assert position.stop_price == 102.0
        await r.candle(101.0)  # below the stop: a 0 would have "crossed" on every candle
        assert r.tap.of(PositionClosed) == []
