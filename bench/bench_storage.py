"""Storage vs the event loop: `python bench/bench_storage.py [--symbols 50] [--minutes 600] [--stored-days 14]`.

`--symbols` one-minute series stream through a real live-mode Kernel bus
into CandleStorage, one candle per symbol per simulated minute, with a short
quiet gap between minutes (the rest of a real minute). Each store starts
with `--stored-days` days of candles already in its month files, as a store
does mid-month. A probe task sleeps 1 ms again and again and records how late
it wakes up: the loop lag every other task (feeds, orders, stops) would see.
The same candles go, in the same run, through no storage (the probe's own
floor), the storage of `--old-rev` (one Parquet rewrite per month per flush,
loaded from git) and the current one (flush pieces, compaction in a child
process). It prints loop lag p50/p99/max, the time of each flush, the
compactions, and whether the old and the new store read back the same series.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import polars as pl
import uvloop

sys.path.insert(0, str(Path(__file__).parents[1]))

from bench.common import random_walk
from twinstar.bus.events import CandleClosed
from twinstar.config import Config
from twinstar.handlers.storage import SCHEMA, CandleStorage
from twinstar.kernel import Kernel

MINUTE_MS = 60_000
EXCHANGE = "binanceusdm"
REPO = Path(__file__).parents[1]


@dataclass
class Outcome:
    """One variant's figures."""

    name: str
    lags_ms: list[float] = field(default_factory=list)
    flushes_ms: list[float] = field(default_factory=list)
    compactions: int = 0
    compaction_s: list[float] = field(default_factory=list)
    stream_s: float = 0.0
    stop_s: float = 0.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else float("nan")


def symbols(n: int) -> list[str]:
    return [f"S{i:02d}/USDT:USDT" for i in range(n)]


def seed(root: Path, names: list[str], days: int) -> None:
    """Write `days` days of one-minute candles per symbol into its January 2024 month file."""
    if days <= 0:
        return
    walk = random_walk(days * 1_440)
    for symbol in names:
        frame = walk.select(
            pl.lit(EXCHANGE).alias("exchange"), pl.lit(symbol).alias("symbol"), pl.lit("1m").alias("interval"), pl.all()
        ).cast(SCHEMA)
        path = CandleStorage(root).path_for(EXCHANGE, symbol, "1m", "2024-01")
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path, compression="zstd", statistics=True)


def stream(names: list[str], first_minute: int, minutes: int) -> list[list[CandleClosed]]:
    """One list of candles per simulated minute, every symbol closing once."""
    walk = random_walk(first_minute + minutes, seed=7).tail(minutes)
    batches = []
    for open_ms, o, h, low, c, v in walk.iter_rows():
        batches.append(
            [
                CandleClosed(
                    ts_ns=(open_ms + MINUTE_MS) * 1_000_000, exchange=EXCHANGE, symbol=symbol, interval="1m",
                    open_time_ms=open_ms, open=o, high=h, low=low, close=c, volume=v,
                )
                for symbol in names
            ]
        )  # fmt: skip
    return batches


def load_old(rev: str) -> type | None:
    """Return the CandleStorage class of `rev`, or None if git cannot show it."""
    try:
        source = subprocess.run(
            ["git", "show", f"{rev}:src/twinstar/handlers/storage.py"], cwd=REPO, capture_output=True, check=True
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("twinstar_storage_old")
    module.__file__ = f"{rev}:src/twinstar/handlers/storage.py"
    sys.modules[module.__name__] = module  # dataclasses and typing look modules up by name
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    cls: type = module.CandleStorage
    return cls


async def run(name: str, storage: Any, batches: list[list[CandleClosed]], gap_s: float) -> Outcome:
    """Stream `batches` through a live kernel with `storage` (or none) while probing the loop."""
    outcome = Outcome(name)
    if storage is not None:
        outcome = _instrument(storage, outcome)
    probing = True

    async def probe() -> None:
        while probing:
            asked = time.perf_counter()
            await anyio.sleep(0.001)
            outcome.lags_ms.append((time.perf_counter() - asked - 0.001) * 1e3)

    components = [storage] if storage is not None else []
    kernel = Kernel(Config(), components=components, mode="live")
    async with anyio.create_task_group() as tg:
        async with kernel:
            tg.start_soon(probe)
            began = time.perf_counter()
            for batch in batches:
                for candle in batch:
                    await kernel.publish(candle)
                await anyio.sleep(gap_s)
            await kernel.bus.idle()
            outcome.stream_s = time.perf_counter() - began
            probing = False
            stopping = time.perf_counter()
        outcome.stop_s = time.perf_counter() - stopping  # the final flush (and, new, the final compaction)
    if storage is not None:
        outcome.compactions = getattr(storage, "compactions", 0)
    return outcome


def _instrument(storage: Any, outcome: Outcome) -> Outcome:
    flush: Callable[[], int] = storage.flush

    def timed_flush() -> int:
        began = time.perf_counter()
        try:
            return flush()
        finally:
            outcome.flushes_ms.append((time.perf_counter() - began) * 1e3)

    storage.flush = timed_flush  # handle() calls self.flush(): the instance attribute wins
    compact = getattr(storage, "compact", None)
    if compact is not None:

        async def timed_compact() -> Any:
            began = time.perf_counter()
            try:
                return await compact()
            finally:
                outcome.compaction_s.append(time.perf_counter() - began)

        storage.compact = timed_compact
    return outcome


def same_series(old_root: Path, new_root: Path, names: list[str]) -> bool:
    """Whether the old store, read by the new code, equals the new store, symbol by symbol."""
    old, new = CandleStorage(old_root), CandleStorage(new_root)
    return all(old.load(EXCHANGE, s, "1m").equals(new.load(EXCHANGE, s, "1m")) for s in names)


async def main(args: argparse.Namespace) -> None:
    names = symbols(args.symbols)
    first_minute = args.stored_days * 1_440
    batches = stream(names, first_minute, args.minutes)
    old_cls = load_old(args.old_rev)
    with tempfile.TemporaryDirectory() as tmp:
        roots = {name: Path(tmp) / name for name in ("old", "new")}
        for root in roots.values():
            seed(root, names, args.stored_days)
        results = [await run("no storage", None, batches, args.gap_ms / 1e3)]
        if old_cls is not None:
            old = old_cls(roots["old"], flush_every=args.flush_every)
            results.append(await run(f"old ({args.old_rev})", old, batches, args.gap_ms / 1e3))
        new = CandleStorage(roots["new"], flush_every=args.flush_every, compact_every=args.compact_every)
        results.append(await run("new (pieces)", new, batches, args.gap_ms / 1e3))
        identical = same_series(roots["old"], roots["new"], names) if old_cls is not None else None
        pieces_left = len(list((roots["new"] / "_pieces").iterdir()))

    candles = args.symbols * args.minutes
    print(
        f"storage under load: {args.symbols} symbols x {args.minutes} one-minute candles ({candles:,}), "
        f"{args.stored_days} days already stored per symbol, flush_every={args.flush_every}, "
        f"compact_every={args.compact_every} pieces, {args.gap_ms} ms quiet between minutes, live bus, uvloop"
    )
    print(
        f"{'storage':<18} {'lag p50':>8} {'p99':>7} {'max':>8}  {'flushes':>7} {'flush p50':>9} {'p99':>7} "
        f"{'max':>7}  {'compactions':>11} {'stream s':>8} {'stop s':>7}"
    )
    for r in results:
        flushes = (
            f"{len(r.flushes_ms):>7} {percentile(r.flushes_ms, 50):>9.2f} {percentile(r.flushes_ms, 99):>7.2f} "
            f"{max(r.flushes_ms):>7.2f}"
            if r.flushes_ms
            else f"{'-':>7} {'-':>9} {'-':>7} {'-':>7}"
        )
        print(
            f"{r.name:<18} {percentile(r.lags_ms, 50):>8.3f} {percentile(r.lags_ms, 99):>7.3f} {max(r.lags_ms):>8.3f}"
            f"  {flushes}  {r.compactions:>11} {r.stream_s:>8.2f} {r.stop_s:>7.2f}"
        )
    print("(loop lag = how late a 1 ms sleep wakes, ms; flush = loop time inside one flush, ms)")
    compaction_s = results[-1].compaction_s
    if compaction_s:
        print(
            f"new: {len(compaction_s)} compactions (the last one in stop), child wall time "
            f"p50 {percentile(compaction_s, 50):.2f} s, max {max(compaction_s):.2f} s "
            f"(off the loop: the loop only polls the child's exit); pieces left after stop: {pieces_left}"
        )
    if identical is not None:
        print(f"old and new store read back the same {args.symbols} series: {identical}")
    else:
        print(f"old storage: git cannot show {args.old_rev}; only the new one was measured")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--minutes", type=int, default=600)
    parser.add_argument("--stored-days", type=int, default=14)
    parser.add_argument("--flush-every", type=int, default=500)
    parser.add_argument("--compact-every", type=int, default=32)
    parser.add_argument("--gap-ms", type=float, default=5.0, help="quiet time between simulated minutes")
    parser.add_argument("--old-rev", default="e12bf77", help="git revision of the storage to compare against")
    uvloop.run(main(parser.parse_args()))
