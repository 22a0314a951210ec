"""Record a real live session on the loopback Binance USD-M venue (real ccxt over 127.0.0.1) in which live
is not what the simulator would make of it.

One-second klines zigzag, so `sma_cross(2, 3)` reverses every third candle. The venue's candle lows reach
every stop the kernel places 2% away, but only a trigger price the venue itself reaches fires a stop: the
simulator stops out what live reverses by signal. Besides, the venue fills opening orders only in part
(`fill_ratio`), charges its own taker fee, once fires the stop of an open long itself (`move_price`),
which live learns of from the private order stream or its next check, and, once the wallet is all but
empty, refuses an entry the simulator would fill.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import msgspec

from tests.pipeline.harness import Tap
from twinstar import Config, Kernel
from twinstar.adapters.feeds import PollingCandleFeed
from twinstar.bus.events import OrderFailed, OrderPlaced, PositionClosed, PositionOpened, SLUpdated
from twinstar.clock import LiveClock
from twinstar.live import live_components
from twinstar.testing.venue import venue

#: Below every stop a long at the zigzag's top gets (2% under about 30,300).
STOP_HIT = 29_000.0


def live_config(base_url: str, state: Path, *, fast: int = 2) -> Config:
    """The session's config: Binance USD-M on `base_url`, sma_cross, 2% stops, no trailing."""
    config = Config.from_toml(
        'symbols = ["BTC/USDT:USDT"]\ninterval = "1s"\n'
        f'[exchange]\nid = "binanceusdm"\napi_key_env = "TW_REPLAY_KEY"\napi_secret_env = "TW_REPLAY_SECRET"\n'
        f'api_base_url = "{base_url}"\ncandle_feed = "poll"\noptions = {{ fetchCurrencies = false }}\n'
        f'[strategy]\nname = "sma_cross"\nparams = {{ fast = {fast}, slow = 3 }}\n'
        "[risk]\nposition_fraction = 0.05\nstop_loss_pct = 2.0\ntrailing_stop = false\n"
    )
    return msgspec.structs.replace(
        config,
        kernel=msgspec.structs.replace(config.kernel, drain_timeout_s=5),
        journal=msgspec.structs.replace(config.journal, dir=str(state)),
    )


async def record_live_session(run_dir: Path) -> Path:
    """Trade live until the venue has stopped out a long and then refused an entry; return the stream."""
    os.environ["TW_REPLAY_KEY"], os.environ["TW_REPLAY_SECRET"] = "replay-key", "replay-secret"
    async with venue() as v:
        v.live_klines_ms = 1_000
        v.fill_ratio = 0.6
        config = live_config(v.base, run_dir / "state")
        clock = LiveClock()
        parts = live_components(config, clock, run_dir=run_dir)
        for part in parts:
            if isinstance(part, PollingCandleFeed):
                part.settle_s = 0.05
        tap = Tap()
        fired = False
        async with Kernel(config, clock=clock, components=[tap, *parts]) as kernel:
            for _ in range(400):  # up to 40 s of real time
                await asyncio.sleep(0.1)
                opened = tap.of(PositionOpened)
                closes = tap.of(PositionClosed)
                protected = len(tap.of(SLUpdated)) >= len(opened)
                holding_long = opened and len(opened) > len(closes) and opened[-1].side == "long"  # type: ignore[attr-defined]
                if not fired and holding_long and protected:
                    await v.move_price(STOP_HIT)  # the venue fires the long's stop itself
                    fired = True
                stopped = [c for c in closes if c.reason == "stop_loss"]  # type: ignore[attr-defined]
                if stopped and any(o.ts_ns > stopped[0].ts_ns for o in tap.of(OrderPlaced)):
                    v.balance = 1.0  # the next entry is refused: too small to trade
                if tap.of(OrderFailed):
                    break
            await kernel.stop("recorded")
    return run_dir / "events.tws"
