"""Risk limits and the kill switch: each limit breaches on the bus, blocks entries, and flattens if asked."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
import pytest

from tests.control.helpers import live_session
from tests.pipeline.harness import Tap
from twinstar import Config, Kernel
from twinstar.bus.events import (
    CandleClosed,
    EntriesResumed,
    FlattenRequested,
    HandlerFailed,
    OrderPlaced,
    PositionClosed,
    PositionOpened,
    RiskLimitBreached,
    SLUpdated,
    SLUpdateFailed,
)
from twinstar.bus.record import read_stream
from twinstar.candles import load_candles
from twinstar.clock import SimClock
from twinstar.config import RiskConfig
from twinstar.control.risk import RiskMonitor
from twinstar.data import bundled_candles_path
from twinstar.replay import replay
from twinstar.session import run_paper, sim_components

pytestmark = pytest.mark.anyio
DECISIONS = (OrderPlaced, PositionOpened, PositionClosed, SLUpdated)
T0 = 1_700_000_000 * 1_000_000_000
S = 1_000_000_000


@asynccontextmanager
async def monitored(**limits: float) -> AsyncIterator[tuple[Kernel, Tap, SimClock]]:
    clock = SimClock(T0)
    tap = Tap()
    async with Kernel(clock=clock, components=[RiskMonitor(RiskConfig(**limits), clock), tap], mode="replay") as kernel:  # type: ignore[arg-type]
        yield kernel, tap, clock


def _order(ts_ns: int, n: int) -> OrderPlaced:
    return OrderPlaced(
        ts_ns=ts_ns,
        client_order_id=f"c{n}",
        order_id=str(n),
        exchange="v",
        symbol="X",
        side="buy",
        intent="open",
        requested_qty=1.0,
        filled_qty=1.0,
        avg_price=100.0,
        fee=0.0,
        status="filled",
        attempts=1,
        partial=False,
    )


def _candle(ts_ns: int, close: float) -> CandleClosed:
    return CandleClosed(
        ts_ns=ts_ns,
        exchange="v",
        symbol="X",
        interval="1m",
        open_time_ms=ts_ns // 1_000_000 - 60_000,
        open=close,
        high=close,
        low=close,
        close=close,
        volume=1.0,
    )


def _breaches(tap: Tap) -> list[tuple[str, float, float, str]]:
    return [(e.limit, e.value, e.threshold, e.symbol) for e in tap.of(RiskLimitBreached)]  # type: ignore[attr-defined]


async def test_orders_per_minute_counts_a_sliding_minute() -> None:
    async with monitored(max_orders_per_minute=2) as (kernel, tap, _):
        for n, at in enumerate((0, 20, 59)):  # three within one minute: the third breaches
            await kernel.publish(_order(T0 + at * S, n))
        await kernel.publish(_order(T0 + 61 * S, 3))  # breached already: not again until resumed
        await kernel.publish(EntriesResumed(ts_ns=T0 + 62 * S))
        await kernel.publish(_order(T0 + 130 * S, 4))  # the minute before holds only this one
    assert _breaches(tap) == [("orders_per_minute", 3.0, 2.0, "")]


async def test_consecutive_stop_failures_breach_and_a_success_resets_them() -> None:
    def failed(ts: int) -> SLUpdateFailed:
        return SLUpdateFailed(
            ts_ns=ts, exchange="v", symbol="X", stop_price=99.0, attempts=3, error_kind="network", message="down"
        )

    async with monitored(max_sl_update_failures=2) as (kernel, tap, _):
        await kernel.publish(failed(T0))
        await kernel.publish(SLUpdated(ts_ns=T0 + S, exchange="v", symbol="X", stop_price=99.0, qty=1.0))
        await kernel.publish(failed(T0 + 2 * S))
        assert tap.of(RiskLimitBreached) == []
        await kernel.publish(failed(T0 + 3 * S))
    assert _breaches(tap) == [("sl_update_failures", 2.0, 2.0, "X")]


async def test_notional_and_daily_loss_follow_the_mark_price() -> None:
    async with monitored(max_notional_per_symbol=1_050.0, max_daily_loss=60.0) as (kernel, tap, _):
        opened = PositionOpened(ts_ns=T0, exchange="v", symbol="X", side="long", qty=10.0, entry_price=100.0, fee=0.0)
        await kernel.publish(opened)
        await kernel.publish(_candle(T0 + S, 104.0))  # 1,040 of 1,050: fine
        assert tap.of(RiskLimitBreached) == []
        await kernel.publish(_candle(T0 + 2 * S, 106.0))  # 1,060
        await kernel.publish(_candle(T0 + 3 * S, 93.0))  # open loss 70 of 60 allowed
    assert _breaches(tap) == [("notional_per_symbol", 1_060.0, 1_050.0, "X"), ("daily_loss", 70.0, 60.0, "")]
    [breach, *_] = tap.of(RiskLimitBreached)
    assert breach.exchange == "v"  # type: ignore[attr-defined]
    assert tap.of(FlattenRequested) == []  # flatten_on_breach is off


async def test_realised_loss_counts_only_for_its_utc_day() -> None:
    day = 86_400 * S
    start = T0 - T0 % day

    def closed(ts: int, pnl: float) -> PositionClosed:
        return PositionClosed(
            ts_ns=ts,
            exchange="v",
            symbol="X",
            side="long",
            qty=1.0,
            entry_price=100.0,
            exit_price=50.0,
            pnl=pnl,
            fees=0.0,
            reason="signal",
        )

    async with monitored(max_daily_loss=100.0) as (kernel, tap, _):
        await kernel.publish(closed(start + day - S, -80.0))
        await kernel.publish(closed(start + day + S, -80.0))  # a new day: 80, not 160
        assert tap.of(RiskLimitBreached) == []
        await kernel.publish(closed(start + day + 2 * S, -30.0))
    assert _breaches(tap) == [("daily_loss", 110.0, 100.0, "")]


async def test_the_kill_switch_on_the_loopback_venue_blocks_entries_and_flattens(tmp_path: Path) -> None:
    def kill_switch(config: Config) -> Config:
        risk = msgspec.structs.replace(config.risk, max_orders_per_minute=1, flatten_on_breach=True)
        return msgspec.structs.replace(config, risk=risk)

    async with live_session(tmp_path, kill_switch) as s:
        await s.until(lambda: bool(s.tap.of(RiskLimitBreached)), "breach", tries=300)
        await s.until(lambda: bool(s.tap.of(FlattenRequested)), "flatten")
        await s.until(lambda: s.venue.positions.get("BTCUSDT", 0.0) == 0.0, "flat on the venue")
        await asyncio.sleep(0.5)  # an entry already on its way when the breach came is flattened too
        await s.until(lambda: s.venue.positions.get("BTCUSDT", 0.0) == 0.0, "flat on the venue")
        placed = len(s.tap.of(OrderPlaced))
        await asyncio.sleep(3)  # three more candles: no order goes out while breached
        assert len(s.tap.of(OrderPlaced)) == placed
        assert s.venue.positions.get("BTCUSDT", 0.0) == 0.0
        status = await s.get_json("/api/status")
        assert status["entries"] == "blocked" and str(status["entries_reason"]).startswith("orders_per_minute: 2")
    [breach] = s.tap.of(RiskLimitBreached)
    assert (breach.limit, breach.value, breach.threshold) == ("orders_per_minute", 2.0, 1.0)  # type: ignore[attr-defined]
    assert all(getattr(e, "source", "") == "risk" for e in s.tap.of(FlattenRequested))
    assert s.tap.of(HandlerFailed) == []


async def test_a_paper_run_breaches_and_its_replay_does_the_same_without_the_monitor(tmp_path: Path) -> None:
    base = Config()
    config = msgspec.structs.replace(
        base, risk=msgspec.structs.replace(base.risk, max_orders_per_minute=1, flatten_on_breach=True)
    )
    candles = load_candles(bundled_candles_path()).frame.head(1_500)
    result = await run_paper(config, candles, tmp_path / "run")
    await replay(result.stream, output=tmp_path / "replayed.tws", components=sim_components)
    original = [e for e in read_stream(result.stream) if isinstance(e, DECISIONS)]
    replayed = [e for e in read_stream(tmp_path / "replayed.tws") if isinstance(e, DECISIONS)]
    [breach] = [e for e in read_stream(result.stream) if isinstance(e, RiskLimitBreached)]
    assert (breach.limit, breach.value) == ("orders_per_minute", 2.0)  # the first reversal: a close and an open
    opens = [e for e in original if isinstance(e, OrderPlaced) and e.intent == "open"]
    # The reversal's open was already under way when its close breached: it went out, and was flattened.
    assert len(opens) == 3 and all(e.ts_ns <= breach.ts_ns for e in opens)  # none after the breach
    closes = [e.reason for e in original if isinstance(e, PositionClosed)]
    assert closes == ["stop_loss", "signal", "flatten"]  # and then flat to the end: nothing opens again
    assert len([e for e in original if isinstance(e, PositionOpened)]) == len(closes)
    assert replayed == original
