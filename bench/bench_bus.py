"""Bus throughput and latency: `python bench/bench_bus.py [--events N]`.

Prints events/s for publish to 1 and 3 async subscribers in replay
(run-to-completion) and live (concurrent mailboxes) modes, and live
publish-to-handler latency percentiles, on uvloop as the CLI runs.
"""

from __future__ import annotations

import argparse
import time

import anyio
import uvloop

from twinstar.bus.bus import Bus, BusMode
from twinstar.bus.events import CandleClosed
from twinstar.clock import SimClock


def _candles(n: int) -> list[CandleClosed]:
    return [
        CandleClosed(
            ts_ns=i,
            exchange="bench",
            symbol="BTC/USDT",
            interval="1m",
            open_time_ms=i * 60_000,
            open=1.0,
            high=1.0,
            low=1.0,
            close=1.0,
            volume=1.0,
        )
        for i in range(n)
    ]


async def throughput(mode: BusMode, subscribers: int, events: list[CandleClosed]) -> float:
    """Return events/s published (each delivered to every subscriber)."""
    bus = Bus(SimClock(), mode=mode, mailbox_size=4096)
    delivered = 0

    async def handler(event: CandleClosed) -> None:
        nonlocal delivered
        delivered += 1

    for _ in range(subscribers):
        bus.subscribe(CandleClosed, handler)
    async with anyio.create_task_group() as tg:
        bus.start(tg)
        publish = bus.publish
        started = time.perf_counter()
        for event in events:
            await publish(event)
        await bus.idle()
        elapsed = time.perf_counter() - started
        tg.cancel_scope.cancel()
    assert delivered == len(events) * subscribers
    return len(events) / elapsed


async def live_latency(samples: int) -> list[float]:
    """Publish one event at a time; return publish-to-handler latencies in microseconds."""
    bus = Bus(SimClock(), mode="live")
    latencies: list[float] = []
    published_at = 0

    async def handler(event: CandleClosed) -> None:
        latencies.append((time.perf_counter_ns() - published_at) / 1000)

    bus.subscribe(CandleClosed, handler)
    events = _candles(samples)
    async with anyio.create_task_group() as tg:
        bus.start(tg)
        for event in events:
            published_at = time.perf_counter_ns()
            await bus.publish(event)
            await bus.idle()
        tg.cancel_scope.cancel()
    return latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def main(n: int) -> None:
    events = _candles(n)
    print(f"bus throughput, {n:,} events per run (best of 3), uvloop")
    print(f"{'mode':<8} {'subscribers':>11} {'events/s':>14}")
    for mode in ("replay", "live"):
        for subscribers in (1, 3):
            best = max([await throughput(mode, subscribers, events) for _ in range(3)])  # type: ignore[arg-type]
            print(f"{mode:<8} {subscribers:>11} {best:>14,.0f}")
    lat = await live_latency(20_000)
    print("live publish->handler latency (one event in flight), microseconds:")
    print("  " + "  ".join(f"p{q}={percentile(lat, q):.1f}" for q in (50, 90, 99, 99.9)))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    uvloop.run(main(parser.parse_args().events))
