"""Write data/stream_v1.tws: a format-1 stream kept to prove old files stay readable.

Run once (`python -m tests.kernel.make_stream_fixture`) when the format was
introduced; never regenerate it, or the test loses its point.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.kernel.helpers import candle, signal
from twinstar import Config, Kernel
from twinstar.bus.record import Recorder
from twinstar.clock import SimClock

FIXTURE = Path(__file__).parent / "data" / "stream_v1.tws"


async def main() -> None:
    recorder = Recorder(FIXTURE, config=Config().to_dict(), meta={"made_by": "make_stream_fixture"})
    async with Kernel(clock=SimClock(0), components=[recorder], mode="replay") as kernel:
        for i in range(3):
            await kernel.publish(candle(i, close=100.0 + i))
        await kernel.publish(signal(2))


if __name__ == "__main__":
    asyncio.run(main())
