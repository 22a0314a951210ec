"""A live session end to end: real ccxt over HTTP to a loopback Binance USD-M venue.

Feed polls one-second klines, the strategy signals, execution sends market
orders with client ids, the position handler places conditional stops on the
algo-order endpoint: every hop is the production code path.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import msgspec
import pytest

from tests.pipeline.harness import Tap
from twinstar import Config, Kernel
from twinstar.adapters.feeds import PollingCandleFeed
from twinstar.bus.events import ClockSynced, HandlerFailed, OrderFailed, OrderPlaced, PositionOpened, SLUpdated
from twinstar.bus.record import read_stream
from twinstar.clock import LiveClock
from twinstar.live import live_components
from twinstar.testing.venue import venue

pytestmark = pytest.mark.anyio


async def test_live_session_trades_through_the_adapter(tmp_path: Path) -> None:
    os.environ["TW_LIVE_KEY"], os.environ["TW_LIVE_SECRET"] = "live-session-key", "live-session-secret"
    async with venue() as v:
        v.live_klines_ms = 1_000
        config = Config.from_toml(
            'symbols = ["BTC/USDT:USDT"]\ninterval = "1s"\n'
            f'[exchange]\nid = "binanceusdm"\napi_key_env = "TW_LIVE_KEY"\napi_secret_env = "TW_LIVE_SECRET"\n'
            f'api_base_url = "{v.base}"\ncandle_feed = "poll"\noptions = {{ fetchCurrencies = false }}\n'
            '[strategy]\nname = "sma_cross"\nparams = { fast = 2, slow = 3 }\n'
            "[risk]\nposition_fraction = 0.05\nstop_loss_pct = 2.0\n"
        )
        config = msgspec.structs.replace(
            config,
            kernel=msgspec.structs.replace(config.kernel, drain_timeout_s=5),
            journal=msgspec.structs.replace(config.journal, dir=str(tmp_path / "state")),
        )
        clock = LiveClock()
        parts = live_components(config, clock, run_dir=tmp_path)
        for part in parts:
            if isinstance(part, PollingCandleFeed):
                part.settle_s = 0.05
        tap = Tap()
        async with Kernel(config, clock=clock, components=[tap, *parts]) as kernel:
            for _ in range(100):  # up to 10 s of real time
                await asyncio.sleep(0.1)
                if len(tap.of(SLUpdated)) >= 2 and len(tap.of(OrderPlaced)) >= 3:
                    break
            await kernel.stop("test done")
    assert tap.of(HandlerFailed) == []
    assert tap.of(OrderFailed) == []
    assert len(tap.of(ClockSynced)) >= 1
    placed = tap.of(OrderPlaced)
    assert placed and all(o.status == "filled" for o in placed)  # type: ignore[attr-defined]
    assert {o.client_order_id for o in placed} <= set(v.orders)  # type: ignore[attr-defined]
    assert tap.of(PositionOpened)
    assert v.algo_orders, "no conditional stop reached the venue"
    assert all(o["orderType"] == "STOP_MARKET" for o in v.algo_orders.values())
    recorded = [e for e in read_stream(tmp_path / "events.tws") if isinstance(e, OrderPlaced)]
    assert recorded == placed
