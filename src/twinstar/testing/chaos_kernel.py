"""A live kernel for the chaos run: `python -m twinstar.testing.chaos_kernel CONFIG RUN_DIR`.

The production live session (`live_components`, the same journal, reconciler
and adapter) with two test settings: the `chaos_cycle` strategy, whose
signals are a pure function of the candle's time (so a restarted kernel
wants exactly what the killed one wanted), and candles polled 50 ms after
their close instead of 2 s, so one-second candles trade every second.
SIGTERM stops it cleanly; the chaos harness mostly sends SIGKILL.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

from twinstar.adapters.feeds import PollingCandleFeed
from twinstar.bus.events import CandleClosed
from twinstar.clock import LiveClock
from twinstar.config import Config
from twinstar.handlers.strategy import STRATEGIES, Signal
from twinstar.intervals import interval_ms
from twinstar.kernel import Kernel
from twinstar.live import live_components

SETTLE_S = 0.05


class Cycle:
    """Long for `hold` candles, then short for `hold`, by the candle's index in time: restarts agree."""

    name = "chaos_cycle"

    def __init__(self, hold: int = 4) -> None:
        self.hold = max(1, int(hold))

    def on_candle(self, candle: CandleClosed) -> Signal | None:
        """Signal at the first candle of each block of `hold`; its side alternates block by block."""
        index = candle.open_time_ms // interval_ms(candle.interval)
        if index % self.hold:
            return None
        return Signal("buy" if index // self.hold % 2 == 0 else "sell", 0.0, "chaos cycle")


async def run(config_path: str, run_dir: str) -> int:
    """Trade live until SIGTERM."""
    STRATEGIES.setdefault(Cycle.name, Cycle)
    config = Config.load(config_path)
    clock = LiveClock()
    parts = live_components(config, clock, run_dir=Path(run_dir))
    for part in parts:
        if isinstance(part, PollingCandleFeed):
            part.settle_s = SETTLE_S
    async with Kernel(config, clock=clock, components=parts) as kernel:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, kernel.request_stop)
        await kernel.run_until_stopped()
    return 0


def main() -> int:
    """Entry point of the child process."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(sys.argv[1], sys.argv[2]))


if __name__ == "__main__":
    sys.exit(main())
