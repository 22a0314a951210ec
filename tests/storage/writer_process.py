"""Child process of the SIGKILL test: writes and flushes candles until it is killed.

Usage: ``python writer_process.py ROOT SRC_DIR BATCH COMPACT_EVERY``, then
FIRST on stdin. Each round hands the real `CandleStorage` BATCH new
one-second candles (open times FIRST, FIRST+1, ... seconds into 2024-01, so
every compaction rewrites the same month file) plus the last 10 it already
stored again (duplicates the merge must drop), flushes (one piece), and
prints the committed row count; every COMPACT_EVERY rounds it also compacts
(a child process of its own). Before the first round it prints ``ready``
once `start()` has cleaned up after the previous kill.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import types
from pathlib import Path

JAN_2024_MS = 1_704_067_200_000


def _import_storage(src: Path) -> type:
    # The package __init__ files import every adapter (ccxt): 0.6 s per start.
    # Stubbing the two packages loads the very same storage module in 0.15 s,
    # which is what lets the test kill 40 writers in a few seconds.
    for name in ("twinstar", "twinstar.handlers"):
        module = types.ModuleType(name)
        module.__path__ = [str(src / name.replace(".", "/"))]
        sys.modules[name] = module
    from twinstar.handlers.storage import CandleStorage

    return CandleStorage


async def main(root: Path, src: Path, batch: int, compact_every: int) -> None:
    storage_type = _import_storage(src)
    from twinstar.bus.events import CandleClosed

    # Started ahead of time so its imports overlap the previous writer's run;
    # the parent sends the committed row count once the previous one is dead.
    first = int(sys.stdin.readline())
    storage = storage_type(root, flush_every=10**9)
    await storage.start()
    print("ready", flush=True)
    stored = first
    for round_ in itertools.count(1):
        for second in range(max(0, stored - 10), stored + batch):
            price = 100.0 + second % 97
            storage.handle(
                CandleClosed(
                    ts_ns=0,
                    exchange="sim",
                    symbol="BTC/USD",
                    interval="1s",
                    open_time_ms=JAN_2024_MS + second * 1_000,
                    open=price,
                    high=price + 1,
                    low=price - 1,
                    close=price,
                    volume=1.0,
                )
            )
        storage.flush()
        stored += batch
        print(stored, flush=True)
        if round_ % compact_every == 0:
            await storage.compact()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])))
