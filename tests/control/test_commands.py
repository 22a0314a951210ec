"""Pause, resume and flatten reach the handlers as events, and a replay of the stream does them again."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipeline.harness import config, rig
from twinstar import Config
from twinstar.bus.bus import Bus
from twinstar.bus.events import (
    INPUT_EVENT_TYPES,
    CandleClosed,
    EntriesPaused,
    EntriesResumed,
    FlattenRequested,
    OrderPlaced,
    PositionClosed,
    PositionOpened,
    RiskLimitBreached,
    SignalFired,
    SLUpdated,
)
from twinstar.bus.record import read_stream
from twinstar.candles import load_candles
from twinstar.data import bundled_candles_path
from twinstar.replay import replay
from twinstar.session import run_paper, sim_components

pytestmark = pytest.mark.anyio
DECISIONS = (SignalFired, OrderPlaced, PositionOpened, PositionClosed, SLUpdated)


def test_commands_enter_from_outside() -> None:
    assert {EntriesPaused, EntriesResumed, FlattenRequested, RiskLimitBreached} <= set(INPUT_EVENT_TYPES)


async def test_a_pause_blocks_entries_until_resumed_and_closes_still_go() -> None:
    async with rig() as r:
        await r.candle(100.0)
        await r.kernel.publish(EntriesPaused(ts_ns=r.clock.now_ns(), reason="operator away"))
        await r.signal("buy")
        assert r.tap.of(OrderPlaced) == []
        await r.kernel.publish(EntriesResumed(ts_ns=r.clock.now_ns()))
        await r.candle(100.0)
        await r.signal("buy")
        [opened] = r.tap.of(PositionOpened)
        assert (opened.side, opened.qty) == ("long", 1.0)  # type: ignore[attr-defined]
        await r.kernel.publish(EntriesPaused(ts_ns=r.clock.now_ns(), reason="again"))
        await r.candle(101.0)
        await r.signal("sell", price=101.0)  # the long is closed; no short is opened while paused
        [closed] = r.tap.of(PositionClosed)
        assert closed.reason == "signal"  # type: ignore[attr-defined]
        assert [o.intent for o in r.tap.of(OrderPlaced)] == ["open", "close"]  # type: ignore[attr-defined]
        assert await r.sim.fetch_position("BTC/USD") is None


async def test_a_breached_limit_blocks_entries_like_a_pause() -> None:
    async with rig() as r:
        await r.candle(100.0)
        await r.kernel.publish(
            RiskLimitBreached(ts_ns=r.clock.now_ns(), limit="daily_loss", value=120.0, threshold=100.0)
        )
        await r.signal("buy")
        assert r.tap.of(OrderPlaced) == []


async def test_flatten_closes_at_market_and_removes_the_stop() -> None:
    async with rig() as r:
        await r.candle(100.0)
        await r.signal("buy")
        assert await r.sim.fetch_position("BTC/USD") is not None
        assert [o.is_stop for o in await r.sim.fetch_open_orders("BTC/USD")] == [True]
        await r.kernel.publish(FlattenRequested(ts_ns=r.clock.now_ns(), reason="test", symbol="ETH/USD"))
        await r.kernel.publish(FlattenRequested(ts_ns=r.clock.now_ns(), reason="test", exchange="other"))
        assert r.tap.of(PositionClosed) == []  # another symbol, another venue: nothing to do here
        await r.kernel.publish(FlattenRequested(ts_ns=r.clock.now_ns(), reason="test"))
        [closed] = r.tap.of(PositionClosed)
        assert (closed.reason, closed.qty) == ("flatten", 1.0)  # type: ignore[attr-defined]
        assert await r.sim.fetch_position("BTC/USD") is None
        assert await r.sim.fetch_open_orders("BTC/USD") == []


class _Operator:
    """Plays a person at the control page during a paper run: pause, resume, flatten at fixed candles."""

    def __init__(self) -> None:
        self.candles = 0
        self._bus: Bus | None = None

    def attach(self, bus: Bus) -> None:
        self._bus = bus
        bus.subscribe(CandleClosed, self.on_candle)

    async def on_candle(self, candle: CandleClosed) -> None:
        assert self._bus is not None
        self.candles += 1
        command = {
            400: EntriesPaused(ts_ns=candle.ts_ns, reason="scheduled"),
            900: EntriesResumed(ts_ns=candle.ts_ns),
            1_300: FlattenRequested(ts_ns=candle.ts_ns, reason="scheduled"),
            1_700: FlattenRequested(ts_ns=candle.ts_ns, reason="scheduled"),
        }.get(self.candles)
        if command is not None:
            await self._bus.publish(command)


async def test_replay_reproduces_what_the_commands_did(tmp_path: Path) -> None:
    candles = load_candles(bundled_candles_path()).frame.head(2_000)
    plain = await run_paper(Config(), candles, tmp_path / "plain")
    steered = await run_paper(Config(), candles, tmp_path / "run", extra_components=[_Operator()])
    original = [e for e in read_stream(steered.stream) if isinstance(e, DECISIONS)]
    untouched = [e for e in read_stream(plain.stream) if isinstance(e, DECISIONS)]
    assert original != untouched  # the commands changed what the run did
    flattened = [e for e in original if isinstance(e, PositionClosed) and e.reason == "flatten"]
    assert flattened  # at least one of the two flattens found a position
    await replay(steered.stream, output=tmp_path / "replayed.tws", components=sim_components)
    replayed = [e for e in read_stream(tmp_path / "replayed.tws") if isinstance(e, DECISIONS)]
    assert replayed == original


async def test_an_entry_is_capped_at_the_notional_limit_per_symbol() -> None:
    async with rig(config(max_notional_per_symbol=40.0)) as r:
        await r.candle(100.0)
        await r.signal("buy")  # order_qty 1 at 100 would be 100 of notional
        [opened] = r.tap.of(PositionOpened)
        assert opened.qty == pytest.approx(0.4)  # type: ignore[attr-defined]
