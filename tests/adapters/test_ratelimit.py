"""The shared weight budget: several adapters, one key, one limiter; no 429 from a strict venue."""

from __future__ import annotations

import asyncio
import os

import pytest

from twinstar.adapters.binance import BinanceUsdm
from twinstar.clock import LiveClock, SimClock
from twinstar.config import ExchangeConfig
from twinstar.ratelimit import WeightLimiter, shared_limiter
from twinstar.testing.venue import venue

pytestmark = pytest.mark.anyio


async def test_a_burst_of_2000_requests_from_four_adapters_gets_no_429() -> None:
    os.environ["TW_RL_KEY"], os.environ["TW_RL_SECRET"] = "rate-limit-test-key", "rate-limit-test-secret"
    # The venue allows 400 weight per 1 s window (Binance: 2,400 per minute), scaled so the test takes seconds;
    # we budget 380 to leave room for requests in flight across a window edge.
    config = ExchangeConfig(
        id="binanceusdm",
        api_key_env="TW_RL_KEY",
        api_secret_env="TW_RL_SECRET",
        options={"weight_per_window": 380, "weight_window_s": 1.0, "fetchCurrencies": False},
    )
    clock = LiveClock()
    async with venue() as v:
        v.weight_limit, v.weight_window_s = 400, 1.0
        adapters = [BinanceUsdm(config=config, clock=clock) for _ in range(4)]
        for adapter in adapters:
            v.point(adapter.ccxt)
        assert len({id(a.limiter) for a in adapters}) == 1  # one budget for the key, shared

        async def burst(adapter: BinanceUsdm) -> None:
            for _ in range(500):
                await adapter.server_time()

        try:
            await asyncio.wait_for(asyncio.gather(*(burst(a) for a in adapters)), timeout=40)
        finally:
            for adapter in adapters:
                await adapter.close()
    assert v.rejected_429 == 0
    assert sum(1 for _, path in v.requests if path == "/fapi/v1/time") == 2_000
    assert adapters[0].limiter.waits > 0  # it really had to hold requests back


async def test_retry_after_pauses_everyone_and_reported_weight_is_respected() -> None:
    clock = SimClock(0, autojump=True)
    limiter = WeightLimiter(10, 60.0, clock)
    limiter.pause(30)
    await limiter.acquire(1)
    assert clock.now_ns() == 30_000_000_000
    limiter.observe_used(10)  # the venue says another client used the whole window
    await limiter.acquire(1)
    assert clock.now_ns() == 90_000_000_000  # waited for that weight to leave the window


def test_the_registry_hashes_keys_and_separates_accounts() -> None:
    clock = SimClock()
    a = shared_limiter("bybit", "key-a", 100, 5, clock)
    assert shared_limiter("bybit", "key-a", 100, 5, clock) is a
    assert shared_limiter("bybit", "key-b", 100, 5, clock) is not a
    assert shared_limiter("okx", "key-a", 100, 5, clock) is not a
    from twinstar import ratelimit

    assert all("key-a" not in str(k) for k in ratelimit._LIMITERS)
