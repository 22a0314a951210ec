"""A kernel process for the bridge's fault run: ``python -m twinstar.bridge.fault_kernel ROLE CONFIG``.

``strategy``: publishes a `SignalFired` every `TICK_S` (alternating sides,
each for a fresh candle time, so each one means orders) through the bridge.
``account``: the kernel owning the account: consumes those signals from NATS
and executes them on the venue of its config, with its journal on disk.
SIGTERM stops it cleanly; the fault run SIGKILLs it.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from typing import Final

import anyio
import uvloop

from twinstar.adapters.venues import make_exchange
from twinstar.bridge.components import bridge_components
from twinstar.bus.bus import Bus
from twinstar.bus.events import SignalFired
from twinstar.clock import Clock, LiveClock
from twinstar.config import Config
from twinstar.handlers.execution import ExecutionHandler
from twinstar.handlers.journal import Journal
from twinstar.kernel import Component, Kernel
from twinstar.live import AdapterSession

STRATEGY: Final = "remote"
TICK_S: Final = 0.05


class Ticker:
    """Publishes signals for the config's first venue and symbol, one per tick, each for a new candle time."""

    def __init__(self, config: Config, clock: Clock) -> None:
        venue = config.venues()[0]
        self.exchange, self.symbol, self.clock = venue.name, venue.symbols[0], clock
        self._bus: Bus | None = None

    def attach(self, bus: Bus) -> None:
        """Keep the bus to publish on."""
        self._bus = bus

    async def run(self) -> None:
        """Publish until stopped; candle times are wall milliseconds, so a restart never repeats one."""
        assert self._bus is not None
        last_ms = 0
        while True:
            open_ms = max(last_ms + 1, time.time_ns() // 1_000_000)
            last_ms = open_ms
            await self._bus.publish(
                SignalFired(
                    ts_ns=self.clock.now_ns(),
                    strategy=STRATEGY,
                    exchange=self.exchange,
                    symbol=self.symbol,
                    side="buy" if open_ms % 2 else "sell",
                    price=30_000.0,
                    stop_price=0.0,
                    reason="fault run",
                    candle_open_time_ms=open_ms,
                )
            )
            await anyio.sleep(TICK_S)


def components(role: str, config: Config, clock: Clock) -> list[Component]:
    """The role's components, the bridge's included."""
    if role == "strategy":
        return [Ticker(config, clock), *bridge_components(config)]
    venue = config.venues()[0]
    exchange = make_exchange(venue, clock)
    journal = Journal(f"{config.journal.dir}/{exchange.name}.journal", fsync=config.journal.fsync)
    execution = ExecutionHandler(exchange, clock, config.execution, config.risk, journal=journal, symbols=venue.symbols)
    return [AdapterSession(exchange), execution, *bridge_components(config)]


async def main(role: str, config_path: str) -> int:
    """Run the role's kernel until SIGTERM."""
    config = Config.load(config_path)
    clock = LiveClock()
    async with Kernel(config, clock=clock, components=components(role, config, clock)) as kernel:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, kernel.request_stop)
        print("ready", flush=True)
        await kernel.run_until_stopped()
    return 0


if __name__ == "__main__":
    sys.exit(uvloop.run(main(sys.argv[1], sys.argv[2])))
