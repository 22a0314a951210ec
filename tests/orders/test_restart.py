"""Resting orders across a restart: the start reconciliation finds ours; entries are cancelled or adopted by rule.

Two kernels, one after the other, trade the same simulated account (the
exchange outlives the process, as a venue does) with one journal on disk.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
import pytest

from tests.pipeline.harness import MINUTE_NS, Tap, config
from twinstar import Config, Kernel
from twinstar.adapters.sim import SimExchange
from twinstar.bus.events import CandleClosed, PositionClosed, PositionOpened, PositionReconciled, SignalFired
from twinstar.clock import SimClock
from twinstar.handlers import build_pipeline
from twinstar.handlers.journal import Journal

pytestmark = pytest.mark.anyio
BTC = "BTC/USD"


class Account:
    """The venue side that survives restarts: the simulator, its clock, the candle count."""

    def __init__(self) -> None:
        self.clock = SimClock(MINUTE_NS, autojump=True)
        self.cfg = config()
        self.sim = SimExchange(self.clock, self.cfg.sim)
        self.minute = 0

    def candle(self, close: float, *, low: float | None = None, high: float | None = None) -> CandleClosed:
        self.minute += 1
        ts = (self.minute + 1) * MINUTE_NS
        self.clock.set_ns(ts)
        low, high = low if low is not None else close, high if high is not None else close
        return CandleClosed(
            ts_ns=ts,
            exchange="sim",
            symbol=BTC,
            interval="1m",
            open_time_ms=self.minute * 60_000,
            open=close,
            high=high,
            low=low,
            close=close,
            volume=1.0,
        )

    def signal(self, **entry: float | str) -> SignalFired:
        return SignalFired(
            ts_ns=self.clock.now_ns(),
            strategy="test",
            exchange="sim",
            symbol=BTC,
            side="buy",
            price=100.0,
            stop_price=95.0,
            reason="test",
            candle_open_time_ms=self.minute * 60_000,
            **entry,  # type: ignore[arg-type]
        )

    @asynccontextmanager
    async def kernel(self, journal: Path, cfg: Config | None = None) -> AsyncIterator[tuple[Kernel, Tap]]:
        parts = build_pipeline(cfg or self.cfg, self.clock, self.sim, journal=Journal(journal))
        parts = [p for p in parts if type(p).__name__ != "StrategyHandler"]
        tap = Tap()
        async with Kernel(cfg or self.cfg, clock=self.clock, components=[tap, *parts], mode="replay") as kernel:
            yield kernel, tap


async def _rest_an_entry(account: Account, journal: Path) -> None:
    async with account.kernel(journal) as (kernel, _):
        await kernel.publish(account.candle(100.0))
        await kernel.publish(account.signal(order_type="limit", limit_price=98.0, take_profit_price=105.0))
    [resting] = await account.sim.fetch_open_orders(BTC)
    assert resting.price == 98.0
    recorded = Journal(journal)
    try:  # settled as resting: never sent again, and not left pending for the reconciler to chase
        assert (recorded.known("sim", BTC, resting.client_order_id), recorded.pending_for("sim", BTC)) == (True, [])
    finally:
        recorded.close()


def _found(tap: Tap) -> list[tuple[str, str]]:
    return [(e.action, e.detail[:4]) for e in tap.of(PositionReconciled)]  # type: ignore[attr-defined]


async def test_a_resting_entry_from_before_the_restart_is_cancelled_by_default(tmp_path: Path) -> None:
    account = Account()
    await _rest_an_entry(account, tmp_path / "journal")
    async with account.kernel(tmp_path / "journal") as (kernel, tap):
        await kernel.publish(account.candle(97.0, low=96.0))
    assert _found(tap) == [("resting_found", "two-"), ("resting_cancelled", "two-")]
    assert await account.sim.fetch_open_orders(BTC) == []
    assert tap.of(PositionOpened) == []


async def test_adopted_it_fills_as_the_entry_and_gets_its_signals_exits(tmp_path: Path) -> None:
    account = Account()
    await _rest_an_entry(account, tmp_path / "journal")
    adopt = msgspec.structs.replace(
        account.cfg, orders=msgspec.structs.replace(account.cfg.orders, resting_on_restart="adopt")
    )
    async with account.kernel(tmp_path / "journal", adopt) as (kernel, tap):
        await kernel.publish(account.candle(97.0, low=96.0))
        exits = [(o.stop_price, o.take_profit) for o in await account.sim.fetch_open_orders(BTC)]
    assert _found(tap)[:2] == [("resting_found", "two-"), ("resting_adopted", "two-")]
    # The candle opened below the limit: a gap fills at the open.
    assert [(p.qty, p.entry_price) for p in tap.of(PositionOpened)] == [(1.0, 97.0)]  # type: ignore[attr-defined]
    assert exits == [(95.0, False), (105.0, True)]  # the signal's own exits, journaled with the resting entry


async def test_a_take_profit_of_an_open_position_is_adopted_and_still_closes_it(tmp_path: Path) -> None:
    account = Account()
    async with account.kernel(tmp_path / "journal") as (kernel, _):
        await kernel.publish(account.candle(100.0))
        await kernel.publish(account.signal(take_profit_price=105.0))
    async with account.kernel(tmp_path / "journal") as (kernel, tap):
        await kernel.publish(account.candle(106.0, high=106.0))
        left = await account.sim.fetch_open_orders(BTC)
    assert ("take_profit_found", "twt-") in _found(tap)
    assert [(c.reason, c.exit_price) for c in tap.of(PositionClosed)] == [("take_profit", 106.0)]  # type: ignore[attr-defined]
    assert left == []
