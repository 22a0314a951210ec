"""Child process for the crash test: flushes growing batches of candles forever.

Prints the committed row count after each flush, so the parent knows which
counts a reader may legitimately see.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from twinstar.bus.events import CandleClosed
from twinstar.handlers.storage import CandleStorage


async def main(root: Path, start: int) -> None:
    storage = CandleStorage(root, flush_every=50)
    await storage.start()
    minute = start
    while True:
        for _ in range(50):
            await storage.handle(
                CandleClosed(
                    ts_ns=0,
                    exchange="sim",
                    symbol="BTC/USD",
                    interval="1m",
                    open_time_ms=1_700_000_000_000 // 86_400_000 * 86_400_000 + (minute % 40_000) * 60_000,
                    open=1.0,
                    high=2.0,
                    low=0.5,
                    close=1.5,
                    volume=1.0,
                )
            )
            minute += 1
        print(minute - start, flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
