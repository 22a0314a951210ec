"""A recorded two-venue stream replays with one simulated exchange per venue, none trading the other's candles."""

from __future__ import annotations

from pathlib import Path

import pytest

from twinstar import Config, Kernel
from twinstar.bus.events import CandleClosed, OrderPlaced, PositionOpened
from twinstar.bus.record import Recorder, read_stream
from twinstar.clock import SimClock
from twinstar.replay import replay
from twinstar.session import sim_components

pytestmark = pytest.mark.anyio
BTC = "BTC/USDT:USDT"
MINUTE_MS = 60_000
T0_MS = 1_700_000_040_000
# sma_cross 2/3: "a" buys on the 4th close and reverses on the 6th; "b" sells on the 4th and stays short.
CLOSES = {"a": [100.0, 100.0, 99.0, 102.0, 102.0, 101.0], "b": [100.0, 100.0, 101.0, 98.0, 98.0, 98.0]}
CONFIG = (
    'interval = "1m"\nsymbols = ["BTC/USDT:USDT"]\n'
    '[[exchanges]]\nid = "binanceusdm"\nname = "a"\n[[exchanges]]\nid = "bybit"\nname = "b"\n'
    '[strategy]\nname = "sma_cross"\nparams = { fast = 2, slow = 3 }\n[risk]\norder_qty = 1.0\ntrailing_stop = false\n'
)


async def _record(path: Path, config: Config) -> None:
    """Write what a live kernel on both venues would have recorded as its input: each venue's candles."""
    clock = SimClock(T0_MS * 1_000_000)
    recorder = Recorder(path, config=config.to_dict(), meta={"kind": "live"})
    async with Kernel(config, clock=clock, components=[recorder], mode="replay") as kernel:
        for i in range(6):
            open_ms = T0_MS + i * MINUTE_MS
            clock.set_ns((open_ms + MINUTE_MS) * 1_000_000)
            for name, closes in CLOSES.items():
                price = closes[i]
                await kernel.publish(
                    CandleClosed(
                        ts_ns=clock.now_ns(),
                        exchange=name,
                        symbol=BTC,
                        interval="1m",
                        open_time_ms=open_ms,
                        open=price,
                        high=price,
                        low=price,
                        close=price,
                        volume=1.0,
                    )
                )


async def test_each_venue_is_replayed_on_its_own_simulator(tmp_path: Path) -> None:
    config = Config.from_toml(CONFIG)
    await _record(tmp_path / "live.tws", config)
    await replay(tmp_path / "live.tws", output=tmp_path / "replayed.tws", components=sim_components, simulate=True)
    events = list(read_stream(tmp_path / "replayed.tws"))
    placed = [(e.exchange, e.side, e.intent, e.avg_price) for e in events if isinstance(e, OrderPlaced)]
    assert placed == [
        ("a", "buy", "open", 102.0),
        ("b", "sell", "open", 98.0),
        ("a", "sell", "close", 101.0),
        ("a", "sell", "open", 101.0),
    ]
    opened = [(e.exchange, e.side, e.entry_price) for e in events if isinstance(e, PositionOpened)]
    assert opened == [("a", "long", 102.0), ("b", "short", 98.0), ("a", "short", 101.0)]
