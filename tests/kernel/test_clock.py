from __future__ import annotations

import asyncio
import time

import anyio
import pytest

from twinstar.clock import Clock, LiveClock, SimClock

pytestmark = pytest.mark.anyio


async def test_sim_clock_sleep_returns_only_when_time_reaches_the_deadline() -> None:
    clock = SimClock(1_000)
    woke: list[tuple[str, int]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.now_ns()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper, "late", 5.0)
        tg.start_soon(sleeper, "early", 2.0)
        await asyncio.sleep(0)
        await clock.advance(1.0)
        assert woke == []
        await clock.advance(1.5)
        assert woke == [("early", 2_000_001_000)]
        await clock.advance(10)
    assert woke == [("early", 2_000_001_000), ("late", 5_000_001_000)]
    assert clock.now_ns() == 12_500_001_000


async def test_autojump_sim_clock_moves_to_the_deadline_at_once() -> None:
    clock = SimClock(0, autojump=True)
    started = time.perf_counter()
    for _ in range(3600):
        await clock.sleep(1.0)
    assert clock.now_ns() == 3600 * 1_000_000_000
    assert clock.now_ms() == 3_600_000
    assert time.perf_counter() - started < 5  # an hour of simulated waits, not real ones


def test_sim_clock_never_goes_backwards() -> None:
    clock = SimClock(500)
    clock.set_ns(100)
    assert clock.now_ns() == 500
    clock.set_ns(900)
    assert clock.now_ns() == 900


async def test_live_clock_applies_the_exchange_offset() -> None:
    clock = LiveClock()
    before = clock.now_ns()
    clock.set_offset_ms(1500.0)
    after = clock.now_ns()
    assert 1_500_000_000 <= after - before < 1_600_000_000
    assert clock.offset_ms == 1500.0
    assert abs(clock.now_ms() - (time.time_ns() // 1_000_000 + 1500)) < 100
    assert repr(clock) == "LiveClock(offset_ms=1500.000)"


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(SimClock(), Clock)
    assert isinstance(LiveClock(), Clock)
