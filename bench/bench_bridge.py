"""The NATS bridge on loopback: `python bench/bench_bridge.py [--events 20000] [--samples 2000] [--kills 300]`.

1. Throughput: one kernel publishes `--events` candles as fast as it can;
   events/s until JetStream confirmed them all (stored and synced: the
   server syncs every message before confirming), and until a recorder
   consuming the stream had written them all.
2. Latency: a second kernel consumes `SignalFired` from the first (remote
   signals); the time from the publishing kernel's `ts_ns` to the remote
   handler, p50/p99, at `--rate` signals a second.
3. Faults: `--kills` SIGKILLs of the publishing kernel, the consuming kernel,
   the recorder and the nats-server at random instants (twinstar.bridge.faults),
   then the end-to-end audit: counts and ids, lost = 0, duplicate orders = 0.
Exits 1 if the audit found anything.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

import anyio
import msgspec

from twinstar.bridge.components import bridge_components
from twinstar.bridge.faults import FaultRun
from twinstar.bridge.publisher import Bridge
from twinstar.bridge.recorder import NatsRecorder
from twinstar.bridge.server import NatsServer
from twinstar.bus.bus import Bus
from twinstar.bus.events import CandleClosed, SignalFired
from twinstar.clock import LiveClock
from twinstar.config import BridgeConfig, Config
from twinstar.kernel import Kernel
from twinstar.testing import venue


def _config(url: str, workdir: Path, source: str, **settings: object) -> Config:
    bridge = BridgeConfig(url=url, source=source, outbox_dir=str(workdir / source), reconnect_s=0.1, **settings)  # type: ignore[arg-type]
    return msgspec.structs.replace(Config(), bridge=bridge)


async def _until(check: object, limit_s: float = 300.0) -> None:
    assert callable(check)
    with anyio.fail_after(limit_s):
        while not check():
            await anyio.sleep(0.005)


async def throughput(url: str, workdir: Path, events: int) -> tuple[float, float]:
    """Events/s confirmed by JetStream, and events/s written by a recorder, for `events` candles."""
    config = _config(url, workdir, "throughput", publish=["candle_closed"])
    recorder = NatsRecorder(url, workdir / "recorded.tws", config=config.to_dict(), durable="bench")
    parts = bridge_components(config)
    bridge = parts[0]
    assert isinstance(bridge, Bridge)
    async with anyio.create_task_group() as tasks, Kernel(config, clock=LiveClock(), components=parts) as kernel:
        await _until(lambda: bridge.connected)
        tasks.start_soon(recorder.run)
        started = time.perf_counter()
        for index in range(events):
            await kernel.publish(
                CandleClosed(
                    ts_ns=index,
                    exchange="binanceusdm",
                    symbol="BTC/USDT:USDT",
                    interval="1m",
                    open_time_ms=index * 60_000,
                    open=1.0,
                    high=2.0,
                    low=0.5,
                    close=1.5,
                    volume=3.0,
                )
            )
        await _until(lambda: bridge.confirmed >= events)
        confirmed_s = time.perf_counter() - started
        await _until(lambda: recorder.events_written >= events)
        recorded_s = time.perf_counter() - started
        recorder.request_stop()
    return events / confirmed_s, events / recorded_s


class _Latency:
    """The remote handler: how long each signal took from its publisher's clock to here."""

    def __init__(self, clock: LiveClock) -> None:
        self.clock = clock
        self.samples_ns: list[int] = []

    def attach(self, bus: Bus) -> None:
        bus.subscribe(SignalFired, self.handle)

    def handle(self, event: SignalFired) -> None:
        self.samples_ns.append(self.clock.now_ns() - event.ts_ns)


async def latency(url: str, workdir: Path, samples: int, rate: float) -> list[int]:
    """Publish-to-remote-handler latencies (ns) of `samples` signals sent at `rate` a second."""
    clock = LiveClock()  # one clock for both kernels: the difference is the bridge's alone
    sender = _config(url, workdir, "strategy", publish=["signal_fired"])
    receiver = _config(url, workdir, "account", consume=["signal_fired"], publish=["order_placed"])
    probe = _Latency(clock)
    async with (
        Kernel(receiver, clock=clock, components=[probe, *bridge_components(receiver)]),
        Kernel(sender, clock=clock, components=bridge_components(sender)) as strategy,
    ):
        await anyio.sleep(1.0)  # both connected, the consumer created
        for index in range(samples):
            await strategy.publish(
                SignalFired(
                    ts_ns=clock.now_ns(),
                    strategy="bench",
                    exchange="sim",  # the receiving kernel's venue (Config's default)
                    symbol="BTC/USDT:USDT",
                    side="buy",
                    price=1.0,
                    stop_price=0.0,
                    reason="latency",
                    candle_open_time_ms=index,
                )
            )
            await asyncio.sleep(1 / rate)
        await _until(lambda: len(probe.samples_ns) >= samples, 60.0)
    return sorted(probe.samples_ns)


async def faults(server: NatsServer, workdir: Path, kills: int, seed: int) -> int:
    """The fault run; print its figures; return the number of problems."""
    async with venue() as v:
        run = FaultRun(v, server, workdir, random.Random(seed))
        try:
            await run.start_all()
            await run.rounds(run.random_roles(kills))
            figures = await run.finish()
        finally:
            await run.abort()
    print(f"faults: {kills} SIGKILLs ({', '.join(f'{role} {n}' for role, n in sorted(figures.kills.items()))})")
    print(
        f"  events: published {figures.published}, in the stream {figures.in_stream}, recorded {figures.recorded}; "
        f"lost {figures.lost}, duplicated {figures.duplicate_events}"
    )
    print(f"  signals {figures.signals} -> orders {figures.orders}; duplicate orders {figures.duplicate_orders}")
    for problem in figures.problems:
        print(f"  PROBLEM: {problem}", file=sys.stderr)
    return len(figures.problems)


async def main_async(args: argparse.Namespace, workdir: Path) -> int:
    """Run the three parts, each against a nats-server of its own."""
    if args.events:
        for sync_always, how in ((True, "each message synced to disk"), (False, "nats-server's default sync")):
            async with NatsServer(workdir / f"nats-sync-{sync_always}", sync_always=sync_always) as server:
                confirmed_rate, recorded_rate = await throughput(
                    server.url, workdir / f"sync-{sync_always}", args.events
                )
            print(
                f"throughput ({how}): {args.events} events, {confirmed_rate:,.0f} events/s confirmed by JetStream, "
                f"{recorded_rate:,.0f} events/s end to end into a recorder"
            )
    if args.samples:
        async with NatsServer(workdir / "nats-latency") as server:
            found = await latency(server.url, workdir, args.samples, args.rate)
        p50, p99 = found[len(found) // 2], found[min(len(found) - 1, len(found) * 99 // 100)]
        print(
            f"latency: publish -> remote handler, {len(found)} signals at {args.rate:g}/s: "
            f"p50 {p50 / 1e6:.2f} ms, p99 {p99 / 1e6:.2f} ms, max {found[-1] / 1e6:.2f} ms"
        )
    if not args.kills:
        return 0
    async with NatsServer(workdir / "nats-faults") as server:  # a stream of its own: the audit counts all of it
        return await faults(server, workdir / "faults", args.kills, args.seed)


def main() -> int:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="candles for the throughput figure (0: skip)")
    parser.add_argument("--samples", type=int, default=2_000, help="signals for the latency figure (0: skip)")
    parser.add_argument("--rate", type=float, default=200.0, help="signals a second in the latency part")
    parser.add_argument("--kills", type=int, default=300, help="SIGKILLs in the fault run (0: skip)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", help="keep the logs, outboxes, journal and recording here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL + 1)  # outages are the point here: their warnings are noise
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="twinstar-bridge-") as scratch:
        workdir = Path(args.workdir or scratch)
        (workdir / "faults").mkdir(parents=True, exist_ok=True)
        problems = asyncio.run(main_async(args, workdir))
    print(f"{time.perf_counter() - started:.0f}s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
