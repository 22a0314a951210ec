"""Soak: a compressed day of many symbols on both loopback venues, under drops, silences and restarts.

One live kernel (the production `live_components`: adapters, clock sync,
order streams, execution, positions, storage) watches one-second candles of
`binance` symbols on the loopback Binance USD-M venue and `bybit` symbols on
the loopback Bybit venue, over real ccxt and real sockets. The venues run in
a child process (`python -m twinstar.testing.soak`), so the kernel's loop lag,
memory and latency are the kernel's own; the child pushes every symbol's
kline frames each second (the final update just after the candle's end,
then the next candle's first one and a middle one),
records what its REST endpoints serve (the truth), and injects faults at
random on each venue: socket drops, silences (half-open sockets: short ones
lose frames without a disconnect, long ones outlast `silence_s`) and venue
restarts (the server stopped and started again on the same port).

Time is compressed: a one-second candle stands for a minute (`duration_s`
seconds of wall time are `duration_s` minutes of a trading day; 1,440 s would
be the whole day).

Measured against the venues' own truth over the window [t0, t_end) of the
injections: candles expected, stored exactly once, lost, duplicated (on the
bus and in the storage files), stored with another close than the venue's;
the kernel's loop lag (a 1 ms probe), its resident memory at the window's
start and end, and the frame-to-order latency of `flip` symbols per venue
(a strategy that reverses on every candle: from the push of the final frame
of a candle to that symbol's first order request reaching the venue, one
monotonic clock across the two processes; a final frame that no socket took,
lost to a fault, is counted apart and not timed).

`run_soak` is what `bench/soak.py` and `tests/soak/` call.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import subprocess
import sys
import time
from array import array
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
import msgspec
import polars as pl
from aiohttp import web

from twinstar.bus.bus import Bus
from twinstar.bus.events import (
    CandleClosed,
    CandleRejected,
    EmergencyExit,
    FeedBackfilled,
    FeedConnected,
    FeedDegraded,
    FeedDisconnected,
    FeedGapDetected,
    FeedStopped,
    HandlerFailed,
    OrderFailed,
    OrderPlaced,
    Side,
)
from twinstar.bus.events import Event as BusEvent
from twinstar.handlers.strategy import STRATEGIES, Signal
from twinstar.heap import settle_heap

SECOND_MS: Final = 1_000
RSS_EVERY_S: Final = 30.0
INTERVAL: Final = "1s"
BINANCE: Final = "binanceusdm"
BYBIT: Final = "bybit"
VENUES: Final = (BINANCE, BYBIT)
# A symbol's order later than this after its closing frame is the next candle's (each flip trades every second).
LATENCY_WINDOW_NS: Final = 900_000_000
# Frame offsets within each second: the finals of the candle that just ended (in staggered batches, each
# ending with one flip symbol's final so its order is told apart), then the new candle's first updates,
# then a middle update.
FINAL_AT_S: Final = 0.005
BATCHES_SPAN_S: Final = 0.40
FIRST_AT_S: Final = 0.45
MIDDLE_AT_S: Final = 0.75
KINDS: Final = {"drop": 3, "short silence": 2, "long silence": 2, "restart": 2}  # fault -> weight


@dataclass(frozen=True)
class SoakPlan:
    """What a soak run does (defaults: the full bench)."""

    binance: int = 25  # symbols on the Binance USD-M venue (S0USDT, S1USDT, ...)
    bybit: int = 25  # symbols on the Bybit venue
    duration_s: float = 600.0  # injection window, wall seconds (= simulated minutes)
    injections: int = 120  # faults injected in the window, split over the two venues
    flip_per_venue: int = 2  # symbols per venue that trade on every candle (latency)
    silence_s: float = 3.0  # feed.silence_s: a socket quiet this long is dead
    settle_s: float = 15.0  # after the window: normal frames, so the tail closes by the feeds' own means
    flush_every: int = 500  # storage.flush_every
    seed: int = 1
    kinds: str = "drop,short silence,long silence,restart"  # the faults drawn from (weights 3, 2, 2, 2)
    # Where each flip symbol's closing frame goes in its batch: last (after a dozen other symbols' closes, as
    # at a minute boundary when all close at once) or first (the others' closes follow it).
    flip_first: bool = False


# -- the venues' side (child process) ---------------------------------------------------------------------------


class _Query:
    """What `Venue._live_klines` reads of a request: the REST `startTime`."""

    def __init__(self, start_ms: int) -> None:
        self.query = {"startTime": str(start_ms)}


def _binance_listing(count: int) -> str:
    from twinstar.testing.venue import INFO

    info = json.loads(INFO)
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    info["symbols"] = [{**btc, "symbol": f"S{i}USDT", "pair": f"S{i}USDT", "baseAsset": f"S{i}"} for i in range(count)]
    return json.dumps(info)


def _bybit_close(open_ms: int) -> float:
    step = open_ms // SECOND_MS
    return 30_000.0 + 250.0 * (1 if step % 8 < 4 else -1) + (step % 5) * 10.0


class _Server:
    """One venue's aiohttp server on 127.0.0.1, which can be stopped and started again on the same port."""

    def __init__(self, state: Any) -> None:
        self.state = state
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.state.handle)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.state.port, reuse_address=True)
        for attempt in range(50):  # the port of the last run may linger for a moment
            try:
                await site.start()
                break
            except OSError:
                if attempt == 49:
                    raise
                await asyncio.sleep(0.05)
        self.state.port = runner.addresses[0][1]
        self._runner = runner

    async def stop(self) -> None:
        """Stop as a crashing venue does: the listener goes, open connections are cut (no close frames)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


class _VenueSide:
    def __init__(self, plan: SoakPlan) -> None:
        from twinstar.testing.bybit_venue import INSTRUMENTS, KLINE_MINUTES, BybitVenue
        from twinstar.testing.venue import Venue

        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.binance = Venue()
        self.binance.exchange_info = _binance_listing(plan.binance)
        self.binance.live_klines_ms = SECOND_MS
        btc = INSTRUMENTS["BTCUSDT"]
        KLINE_MINUTES[INTERVAL] = 1 / 60  # Bybit has no one-second klines; the compressed day's loopback does
        INSTRUMENTS.clear()  # this process is the venues' alone
        INSTRUMENTS.update(
            {f"S{i}USDT": {**btc, "symbol": f"S{i}USDT", "baseCoin": f"S{i}"} for i in range(plan.bybit)}
        )
        self.bybit = BybitVenue()
        self.servers = {BINANCE: _Server(self.binance), BYBIT: _Server(self.bybit)}
        self.ids = {
            BINANCE: [f"S{i}USDT" for i in range(plan.binance)],
            BYBIT: [f"S{i}USDT" for i in range(plan.bybit)],
        }
        self.truth: dict[str, dict[int, float]] = {BINANCE: {}, BYBIT: {}}
        self.latency_us: dict[str, list[float]] = {BINANCE: [], BYBIT: []}
        self.latency_at_s: dict[str, list[float]] = {BINANCE: [], BYBIT: []}  # each sample's push, wall seconds
        self.missed: dict[str, int] = {BINANCE: 0, BYBIT: 0}
        self.undelivered: dict[str, int] = {BINANCE: 0, BYBIT: 0}  # flip finals no socket took (not timed)
        self.injected: list[tuple[float, str, str, float]] = []  # (seconds into the window, venue, kind, length)
        self.push_errors = 0
        self.phase = "warming"
        self.t0_ms = 0
        self.t_end_ms = 0
        self._pending: list[tuple[str, str, int, float]] = []  # (venue, symbol, push ns, push wall s)
        self._done = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._batches = self._plan_batches()

    def _plan_batches(self) -> list[tuple[float, list[tuple[str, str]], tuple[str, str] | None]]:
        flips = [(v, sid) for v in VENUES for sid in self.ids[v][: self.plan.flip_per_venue]]
        rest = [(v, sid) for v in VENUES for sid in self.ids[v] if (v, sid) not in flips]
        count = max(1, len(flips))
        batches: list[tuple[float, list[tuple[str, str]], tuple[str, str] | None]] = []
        for b in range(count):
            flip = flips[b] if b < len(flips) else None
            batches.append((FINAL_AT_S + b * BATCHES_SPAN_S / count, rest[b::count], flip))
        return batches

    def arrival(self, venue: str, sid: str, pushed_ns: int) -> int | None:
        """When `sid`'s first order request after `pushed_ns` reached `venue` (None: none within the window)."""
        arrivals: list[tuple[int, str]] = (self.binance if venue == BINANCE else self.bybit).order_arrivals
        found = None
        for arrived, symbol in reversed(arrivals):  # the newest first: the log drops its oldest half when full
            if arrived < pushed_ns:
                break
            if symbol == sid and arrived - pushed_ns <= LATENCY_WINDOW_NS:
                found = arrived
        return found

    async def push(self, venue: str, sid: str, open_ms: int, close: float, final: bool = False) -> bool:
        """Push one kline frame; whether a socket took it (not while silent, dropped or restarting)."""
        try:
            if venue == BINANCE:
                return await self.binance.push_kline(sid, INTERVAL, open_ms, SECOND_MS, close, final=final) > 0
            return await self.bybit.push_kline(sid, INTERVAL, open_ms, SECOND_MS, close, confirm=final) > 0
        except Exception:  # a socket cut by a restart under our feet: the frame is lost, as on the wire
            self.push_errors += 1
            return False

    def _record_truth(self, open_ms: int) -> dict[str, float]:
        """The candle opening now, as each venue's REST serves it (and will serve it once closed)."""
        rows = self.binance._live_klines(_Query(open_ms))  # type: ignore[arg-type]  # the REST answer itself
        row = next(r for r in rows if int(r[0]) == open_ms)
        closes = {BINANCE: float(row[4]), BYBIT: _bybit_close(open_ms)}
        c = closes[BYBIT]
        self.bybit.klines.append([open_ms, c, c + 1, c - 1, c, 0.329, round(0.329 * c, 4)])  # as push_kline sends
        del self.bybit.klines[:-1_500]  # the venue keeps the recent ones; the truth is kept here
        self.bybit.price = c
        for venue in VENUES:
            self.truth[venue][open_ms] = closes[venue]
        return closes

    def _resolve_latencies(self, now_ns: int) -> None:
        keep: list[tuple[str, str, int, float]] = []
        for venue, sid, pushed, wall in self._pending:
            if now_ns - pushed < LATENCY_WINDOW_NS:
                keep.append((venue, sid, pushed, wall))
                continue
            arrived = self.arrival(venue, sid, pushed)
            if arrived is not None:
                self.latency_us[venue].append((arrived - pushed) / 1000)
                self.latency_at_s[venue].append(wall)
            else:
                self.missed[venue] += 1
        self._pending = keep

    async def _sleep_until(self, wall_s: float) -> None:
        delay = wall_s - time.time()
        if delay > 0:
            await asyncio.sleep(delay)

    async def pushing(self) -> None:
        """Every second, every symbol: the candle's final update just after its end, the next's first, a middle one.

        The finals go out in staggered batches, each ending with one flip symbol's final: the frame that
        closes its candle (the venue marks it final), from whose push that symbol's order is timed. The
        next candle's first updates follow the last batch, so the venue (one Python loop) is not busy
        pushing them when an order reaches it: its arrival stamp would wait for them.
        """
        k = int(time.time()) + 1
        await self._sleep_until(k + FINAL_AT_S)
        closes = self._record_truth(k * SECOND_MS)
        await self._push_every(k * SECOND_MS, closes, 7)
        while not self._done.is_set():
            open_ms = k * SECOND_MS
            await self._sleep_until(k + MIDDLE_AT_S)
            await self._push_every(open_ms, closes, 3)
            k += 1  # fallen behind: the next candles' frames follow at once (every second has its candle)
            measuring = self.phase in ("injecting", "settling")
            await self._sleep_until(k + FINAL_AT_S)
            following = self._record_truth(k * SECOND_MS)
            for offset, batch, flip in self._batches:
                await self._sleep_until(k + offset)
                for venue, sid in [] if self.plan.flip_first else batch:
                    await self.push(venue, sid, open_ms, closes[venue], final=True)
                if flip is not None:
                    venue, sid = flip
                    pushed, wall = time.perf_counter_ns(), time.time()
                    delivered = await self.push(venue, sid, open_ms, closes[venue], final=True)
                    if measuring and delivered:  # a frame lost to a fault closes its candle by other means, later
                        self._pending.append((venue, sid, pushed, wall))
                    elif measuring:
                        self.undelivered[venue] += 1
                for venue, sid in batch if self.plan.flip_first else []:
                    await self.push(venue, sid, open_ms, closes[venue], final=True)
                self._resolve_latencies(time.perf_counter_ns())
            closes = following
            await self._sleep_until(k + FIRST_AT_S)
            await self._push_every(k * SECOND_MS, closes, 7)

    async def _push_every(self, open_ms: int, closes: dict[str, float], above: float) -> None:
        """An update of the candle opening at `open_ms` for every symbol, `above` its final close (not final)."""
        for venue in VENUES:
            for sid in self.ids[venue]:
                await self.push(venue, sid, open_ms, closes[venue] + above)

    async def _inject(self, venue: str, count: int, started: float) -> None:
        if count <= 0:
            return
        plan, rng, server = self.plan, self.rng, self.servers[venue]
        state: Any = self.binance if venue == BINANCE else self.bybit
        slot = plan.duration_s / count
        for i in range(count):
            await asyncio.sleep(max(0.0, started + i * slot + rng.uniform(0.0, 0.3 * slot) - time.monotonic()))
            kinds = [k for k in KINDS if k in plan.kinds.split(",")]
            kind = rng.choices(kinds, weights=[KINDS[k] for k in kinds])[0]
            at = time.monotonic() - started
            length = 0.0
            if kind == "drop":
                await state.drop_sockets()
            elif kind.endswith("silence"):
                short = kind == "short silence"
                length = rng.uniform(0.3, 0.9) if short else plan.silence_s + rng.uniform(0.5, 1.2)
                length = min(length, 0.65 * slot)
                state.silent = True
                await asyncio.sleep(length)
                state.silent = False
            else:
                length = rng.uniform(0.2, min(2.0, 0.5 * slot))
                await server.stop()
                await asyncio.sleep(length)
                await server.start()
            self.injected.append((round(at, 3), venue, kind, round(length, 3)))

    async def window(self) -> None:
        started = time.monotonic()
        first = self.plan.injections - self.plan.injections // 2
        await asyncio.gather(
            self._inject(BINANCE, first, started), self._inject(BYBIT, self.plan.injections // 2, started)
        )
        await asyncio.sleep(max(0.0, started + self.plan.duration_s - time.monotonic()))
        self.t_end_ms = math.ceil(time.time()) * SECOND_MS
        self.phase = "settling"
        await asyncio.sleep(self.plan.settle_s + (self.t_end_ms / 1000 - time.time()))
        self.phase = "settled"

    async def control(self, request: web.Request) -> web.Response:
        if request.path == "/go" and self.phase == "warming":
            self.t0_ms = math.ceil(time.time() + 0.05) * SECOND_MS
            await self._sleep_until(self.t0_ms / 1000)
            self.phase = "injecting"
            self._tasks.append(asyncio.ensure_future(self.window()))
        elif request.path == "/report":
            return web.json_response(self.report())
        elif request.path == "/exit":
            self._done.set()
        return web.json_response({"phase": self.phase, "t0_ms": self.t0_ms, "t_end_ms": self.t_end_ms})

    def report(self) -> dict[str, Any]:
        window = range(self.t0_ms, self.t_end_ms, SECOND_MS)
        return {
            "truth": {v: {str(t): self.truth[v][t] for t in window if t in self.truth[v]} for v in VENUES},
            "ids": self.ids,
            "latency_us": self.latency_us,
            "latency_at_s": self.latency_at_s,
            "missed": self.missed,
            "undelivered": self.undelivered,
            "injected": self.injected,
            "push_errors": self.push_errors,
            "t0_ms": self.t0_ms,
            "t_end_ms": self.t_end_ms,
        }

    async def main(self, ready: Path) -> None:
        for server in self.servers.values():
            await server.start()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.control)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        ports = {BINANCE: self.binance.port, BYBIT: self.bybit.port, "control": runner.addresses[0][1]}
        settle_heap()  # the venues stamp arrivals: their own collector must not add to the latency measured
        temp = ready.with_suffix(".tmp")
        temp.write_text(json.dumps(ports))
        temp.rename(ready)
        pusher = asyncio.ensure_future(self.pushing())
        await self._done.wait()
        for task in [pusher, *self._tasks]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await runner.cleanup()
        for server in self.servers.values():
            await server.stop()


def venues_main(argv: list[str]) -> int:
    """The child: `python -m twinstar.testing.soak READY_FILE PLAN_JSON`."""
    ready, plan = Path(argv[0]), SoakPlan(**json.loads(argv[1]))
    try:
        import uvloop

        uvloop.run(_VenueSide(plan).main(ready))
    except ImportError:  # pragma: no cover - uvloop is a dependency
        asyncio.run(_VenueSide(plan).main(ready))
    return 0


# -- the kernel's side --------------------------------------------------------------------------------------------


class SoakFlip:
    """Reverses on every candle of the series named in `only` (``venue@symbol,...``); nothing elsewhere."""

    name = "soak_flip"

    def __init__(self, only: str = "") -> None:
        self.only = {tuple(item.split("@", 1)) for item in only.split(",") if item}
        self.side: Side = "sell"

    def on_candle(self, candle: CandleClosed) -> Signal | None:
        """Reverse on the named series: buy after a sell, sell after a buy."""
        if (candle.exchange, candle.symbol) not in self.only:
            return None
        self.side = "buy" if self.side == "sell" else "sell"
        return Signal(self.side, 0.0, "flip")


COUNTED: Final[tuple[type[BusEvent], ...]] = (
    FeedConnected,
    FeedDisconnected,
    FeedGapDetected,
    FeedBackfilled,
    FeedStopped,
    FeedDegraded,
    CandleRejected,
    HandlerFailed,
    OrderPlaced,
    OrderFailed,
    EmergencyExit,
)


class SoakTap:
    """Component: every CandleClosed kept compactly per series, and a count of the events that tell trouble."""

    def __init__(self) -> None:
        self.opens: dict[tuple[str, str], array[int]] = {}
        self.lates: dict[tuple[str, str], array[int]] = {}  # 1: published late (after a reconnect, from REST)
        self.delays: dict[tuple[str, str], array[float]] = {}  # ms from the candle's close to its CandleClosed
        self.counts: Counter[str] = Counter()
        self.stopped: list[str] = []  # FeedStopped reasons other than shutdown
        self.failures: list[str] = []  # HandlerFailed, in a line each
        self.rejected: list[str] = []  # the first few CandleRejected
        self.reasons: Counter[str] = Counter()  # FeedDisconnected by venue and reason

    def attach(self, bus: Bus) -> None:
        bus.subscribe(CandleClosed, self._candle, name="SoakTap")
        for kind in COUNTED:
            bus.subscribe(kind, self._count, name=f"SoakTap.{kind.__name__}")

    def _candle(self, candle: CandleClosed) -> None:
        key = (candle.exchange, candle.symbol)
        if key not in self.opens:
            self.opens[key], self.lates[key], self.delays[key] = array("q"), array("b"), array("d")
        self.opens[key].append(candle.open_time_ms)
        self.lates[key].append(candle.late)
        self.delays[key].append(candle.ts_ns / 1e6 - candle.open_time_ms - SECOND_MS)

    def _count(self, event: BusEvent) -> None:
        if isinstance(event, FeedStopped):
            if event.reason == "shutdown":
                return
            self.stopped.append(f"{event.exchange} {event.symbol}: {event.reason}")
        if isinstance(event, FeedDisconnected):
            self.reasons[f"{event.exchange}: {event.reason[:60]}"] += 1
        if isinstance(event, CandleRejected) and len(self.rejected) < 5:
            self.rejected.append(f"{event.exchange} {event.symbol} {event.open_time_ms}: {event.reason[:80]}")
        self.counts[type(event).__name__] += 1
        if isinstance(event, HandlerFailed):
            self.failures.append(str(msgspec.to_builtins(event))[:300])


class LagProbe:
    """Component: sleeps 1 ms again and again and keeps a histogram of the overshoot (10 us bins)."""

    BIN_US: Final = 10
    BINS: Final = 20_000  # up to 200 ms; beyond lands in the last bin (the max is kept exactly)

    def __init__(self) -> None:
        self.reset()
        self._stopped = False

    def reset(self) -> None:
        self.histogram = array("q", bytes(8 * self.BINS))
        self.samples = 0
        self.max_ms = 0.0
        self.began = time.time()
        self.spikes: list[tuple[float, float]] = []  # (wall time, ms) of each lag of 20 ms or more (first 50)

    def attach(self, bus: Bus) -> None:
        """Nothing to subscribe."""

    async def run(self) -> None:
        while not self._stopped:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            lag_ms = max(0.0, (time.perf_counter() - start - 0.001) * 1000)
            self.histogram[min(self.BINS - 1, int(lag_ms * 1000 / self.BIN_US))] += 1
            self.samples += 1
            self.max_ms = max(self.max_ms, lag_ms)
            if lag_ms >= 20.0 and len(self.spikes) < 50:
                self.spikes.append((time.time(), lag_ms))

    async def stop_intake(self) -> None:
        self._stopped = True

    def percentile_ms(self, q: float) -> float:
        rank, seen = math.ceil(q / 100 * self.samples), 0
        for index, count in enumerate(self.histogram):
            seen += count
            if seen >= rank and count:
                return (index + 1) * self.BIN_US / 1000
        return 0.0


def rss_mb() -> float:
    """This process's resident memory (VmRSS), MB; 0 where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class SoakReport:
    """What a soak run found; `failures()` lists the invariants broken."""

    plan: SoakPlan
    window_s: float = 0.0
    symbols: int = 0
    expected: int = 0
    stored_once: int = 0
    lost: int = 0
    duplicated_bus: int = 0
    duplicated_files: int = 0
    wrong_close: int = 0
    phantom: int = 0  # stored in the window although the venue has no such candle
    not_on_bus: int = 0  # expected candles never published as CandleClosed
    late: int = 0
    delay_ms: dict[float, float] = field(default_factory=dict)  # close -> CandleClosed, percentile -> ms
    lag_p50_ms: float = 0.0
    lag_p99_ms: float = 0.0
    lag_max_ms: float = 0.0
    lag_samples: int = 0
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_every_mb: list[float] = field(default_factory=list)  # sampled every RSS_EVERY_S over the window
    latency_us: dict[str, dict[str, float]] = field(default_factory=dict)  # venue -> p50/p99/max/n/missed
    injected: Counter[str] = field(default_factory=Counter)
    injected_total: int = 0
    push_errors: int = 0
    events: dict[str, int] = field(default_factory=dict)
    stopped: list[str] = field(default_factory=list)
    handler_failures: list[str] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)  # the first few lost / doubled / wrong candles
    disconnects: dict[str, int] = field(default_factory=dict)  # FeedDisconnected: the most frequent reasons
    lag_spikes: list[tuple[float, float]] = field(default_factory=list)  # (wall time, ms): lags of 20 ms or more
    spike_causes: list[str] = field(default_factory=list)  # each spike with the last fault injected before it
    slow_orders: list[str] = field(default_factory=list)  # the slowest frame-to-order samples, with the fault before
    seconds: float = 0.0  # the whole run, wall

    @property
    def rss_growth_pct(self) -> float:
        return 100.0 * (self.rss_end_mb - self.rss_start_mb) / self.rss_start_mb if self.rss_start_mb else 0.0

    @property
    def latency_p99_us(self) -> float:
        values = [v["p99"] for v in self.latency_us.values() if v.get("n")]
        return max(values) if values else math.nan

    def failures(self, *, timing: bool = True, min_injections: int = 0) -> list[str]:
        """Invariants broken: counts always; memory, lag and latency bounds when `timing`."""
        broken = []
        if self.expected == 0:
            broken.append("no candle expected: the window is empty")
        if (self.stored_once, self.lost, self.duplicated_bus, self.duplicated_files) != (self.expected, 0, 0, 0):
            broken.append("candles: stored once, lost, duplicated must be N, 0, 0")
        if self.wrong_close or self.phantom:
            broken.append(f"{self.wrong_close} stored with a close the venue never had, {self.phantom} phantoms")
        if self.handler_failures or self.stopped:
            broken.append(f"{len(self.handler_failures)} HandlerFailed, {len(self.stopped)} feeds stopped")
        if self.injected_total < min_injections:
            broken.append(f"only {self.injected_total} injections (at least {min_injections})")
        if timing:
            if self.rss_growth_pct >= 10.0:
                broken.append(f"resident memory grew {self.rss_growth_pct:.1f}% (limit 10%)")
            if not self.latency_p99_us < 2_000:
                broken.append(f"frame-to-order p99 {self.latency_p99_us:,.0f} us (limit 2,000)")
            if self.lag_p99_ms >= 5.0 or self.lag_max_ms >= 20.0:
                broken.append(f"loop lag p99 {self.lag_p99_ms:.2f} ms / max {self.lag_max_ms:.2f} ms (limits 5 / 20)")
        return broken

    def table(self) -> str:
        plan = self.plan
        lines = [
            f"soak: {self.symbols} symbols ({plan.binance} Binance USD-M + {plan.bybit} Bybit, loopback), "
            f"1s candles for 1m ({self.window_s:.0f} s window = {self.window_s / 60:.1f} simulated hours), "
            f"silence_s={plan.silence_s:g}, seed {plan.seed}",
            f"  injected           {self.injected_total}: "
            + ", ".join(f"{kind} {n}" for kind, n in sorted(self.injected.items())),
            f"  candles expected   {self.expected:,}",
            f"  stored once        {self.stored_once:,}",
            f"  lost               {self.lost:,}  (never on the bus: {self.not_on_bus:,})",
            f"  duplicated         {self.duplicated_bus:,} on the bus, {self.duplicated_files:,} in the files",
            f"  wrong close        {self.wrong_close:,}  (phantoms {self.phantom:,}; late {self.late:,})",
            "  close -> published "
            + "  ".join(f"{'max' if q == 100 else f'p{q:.0f}'} {v:,.0f} ms" for q, v in self.delay_ms.items()),
            f"  loop lag           p50 {self.lag_p50_ms:.2f} ms  p99 {self.lag_p99_ms:.2f} ms  "
            f"max {self.lag_max_ms:.2f} ms  ({self.lag_samples:,} samples)",
            f"  resident memory    {self.rss_start_mb:.1f} MB -> {self.rss_end_mb:.1f} MB "
            f"({self.rss_growth_pct:+.1f}%)",
            f"  memory every {RSS_EVERY_S:.0f} s   " + " ".join(f"{mb:.0f}" for mb in self.rss_every_mb) + " MB",
        ]
        for venue, figures in self.latency_us.items():
            lines.append(
                f"  frame->order {venue:<12} p50 {figures['p50']:,.0f} us  p99 {figures['p99']:,.0f} us  "
                f"max {figures['max']:,.0f} us  (n={figures['n']:.0f}, "
                f"no order in {LATENCY_WINDOW_NS / 1e9:g} s: {figures['missed']:.0f}, "
                f"frame lost to a fault: {figures['undelivered']:.0f})"
            )
        lines.append("  events             " + ", ".join(f"{k} {v}" for k, v in sorted(self.events.items())))
        lines += [f"  disconnected {n:>5}x {reason}" for reason, n in self.disconnects.items()]
        lines += [f"  lag spike {s}" for s in self.spike_causes[:8]]
        lines += [f"  slow order {s}" for s in self.slow_orders]
        lines += [f"  feed stopped: {s}" for s in self.stopped[:5]]
        lines += [f"  handler failed: {s}" for s in self.handler_failures[:5]]
        lines += [f"  e.g. {s}" for s in self.examples[:10]]
        lines.append(f"  wall time          {self.seconds:.0f} s")
        return "\n".join(lines)


def _config_toml(plan: SoakPlan, ports: dict[str, int], work: Path) -> str:
    os.environ.setdefault("TW_SOAK_KEY", "soak-key-0123456789")
    os.environ.setdefault("TW_SOAK_SECRET", "soak-secret-abcdefghijklmnop")
    blocks = ""
    flips = []
    for venue, count in ((BINANCE, plan.binance), (BYBIT, plan.bybit)):
        symbols = [f"S{i}/USDT:USDT" for i in range(count)]
        flips += [f"{venue}@{s}" for s in symbols[: plan.flip_per_venue]]
        blocks += (
            f'[[exchanges]]\nid = "{venue}"\nsymbols = {json.dumps(symbols)}\n'
            'api_key_env = "TW_SOAK_KEY"\napi_secret_env = "TW_SOAK_SECRET"\n'
            f'api_base_url = "http://127.0.0.1:{ports[venue]}"\ncandle_feed = "stream"\n'
            "options = { fetchCurrencies = false, weight_per_window = 1e9 }\n"
        )
    return (
        f'interval = "{INTERVAL}"\n'
        + blocks
        + f'[strategy]\nname = "soak_flip"\nparams = {{ only = "{",".join(flips)}" }}\n'
        + "[risk]\norder_qty = 0.01\nstop_loss_pct = 5.0\ntrailing_stop = false\n"
        + f'[storage]\ndir = "{work / "candles"}"\nflush_every = {plan.flush_every}\n'
        + f'[journal]\ndir = "{work / "state"}"\n'
        + f"[feed]\nsilence_s = {plan.silence_s}\nbackoff_initial_s = 0.2\nbackoff_max_s = 2.0\n"
        + "[kernel]\ndrain_timeout_s = 10\n"
    )


async def _until(check: Any, seconds: float, what: str, child: subprocess.Popen[bytes] | None = None) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = await check() if asyncio.iscoroutinefunction(check) else check()
        if found:
            return found
        if child is not None and child.poll() is not None:
            raise RuntimeError(f"the venues' process ended ({child.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"soak: {what} not reached within {seconds:.0f} s")
        await asyncio.sleep(0.1)


def _last_fault(injected: list[list[Any]], offset: float) -> str:
    """The last fault injected at or before `offset` seconds into the window, and how long before."""
    before = [i for i in injected if i[0] <= offset]
    return f"{before[-1][2]} on {before[-1][1]} {offset - before[-1][0]:.1f} s before" if before else "no fault yet"


def _raw_duplicates(root: Path, t0_ms: int, t_end_ms: int) -> int:
    """Rows of one candle more than once in the files themselves (a reader's dedup would hide them)."""
    frames = []
    for path in root.rglob("*"):
        if ".tmp" in path.name or "corrupt" in path.name or not path.is_file():
            continue
        with contextlib.suppress(Exception):
            if path.suffix == ".parquet":
                frames.append(pl.read_parquet(path, hive_partitioning=False))
            elif path.suffix == ".arrows":
                frames.append(pl.read_ipc_stream(path))
    key = ["exchange", "symbol", "interval", "open_time_ms"]
    frames = [f.select(key) for f in frames if all(k in f.columns for k in key)]
    if not frames:
        return 0
    found = pl.concat(frames).filter(pl.col("open_time_ms").is_between(t0_ms, t_end_ms - 1))
    counted = found.group_by(key).len()
    return int(counted.filter(pl.col("len") > 1).select((pl.col("len") - 1).sum()).item() or 0)


def _components(plan: SoakPlan, ports: dict[str, int], work: Path) -> tuple[Any, Any, list[Any], Any]:
    """The live kernel's config, clock, components and storage: `live_components`, feeds with `[feed]` settings."""
    from twinstar import Config
    from twinstar.adapters.feeds import PollingCandleFeed, StreamCandleFeed, TradeCandleFeed, choose_feed
    from twinstar.clock import LiveClock
    from twinstar.handlers.storage import CandleStorage
    from twinstar.live import AdapterSession, live_components

    STRATEGIES["soak_flip"] = SoakFlip
    config = Config.from_toml(_config_toml(plan, ports, work))
    clock = LiveClock()
    parts = live_components(config, clock, run_dir=work / "run")
    adapters = [p.exchange for p in parts if isinstance(p, AdapterSession)]
    for adapter in adapters:
        # Bybit has no one-second klines; its loopback venue streams them under `kline.1s.<symbol>`, and
        # ccxt is told the name. Nothing else differs from a real `1m` feed but the length.
        timeframes: dict[str, str] = adapter.ccxt.timeframes  # type: ignore[attr-defined]
        timeframes.setdefault(INTERVAL, INTERVAL)
    # One feed per symbol, as live_components builds them, supervised with the configured `[feed]` settings.
    feeds = [
        choose_feed(adapter, symbol, INTERVAL, clock, mode="stream", settings=config.feed)
        for adapter, venue in zip(adapters, config.venues(), strict=True)
        for symbol in venue.symbols
    ]
    parts = [p for p in parts if not isinstance(p, PollingCandleFeed | StreamCandleFeed | TradeCandleFeed)]
    storage = next(p for p in parts if isinstance(p, CandleStorage))
    return config, clock, [*parts, *feeds], storage


async def _drive(
    plan: SoakPlan, report: SoakReport, control: str, kernel: Any, tap: SoakTap, probe: LagProbe, say: Any
) -> int:
    """Wait for every symbol, run the window, take the figures; return the window's start (ms)."""
    async with aiohttp.ClientSession() as http:

        async def settled() -> bool:
            async with http.post(f"{control}/state") as reply:
                return bool((await reply.json())["phase"] == "settled")

        await _until(lambda: len(tap.opens) == report.symbols, 90, "a candle from every symbol")
        await asyncio.sleep(2.0)
        if say:
            say(f"all {report.symbols} symbols stream; injecting for {plan.duration_s:g} s")
        async with http.post(f"{control}/go") as reply:
            t0_ms = int((await reply.json())["t0_ms"])
        probe.reset()
        report.rss_start_mb = rss_mb()

        async def sample_memory() -> None:  # a leak grows steadily; caches filling up flatten out
            while True:
                await asyncio.sleep(RSS_EVERY_S)
                report.rss_every_mb.append(rss_mb())

        sampler = asyncio.ensure_future(sample_memory())
        try:
            await _until(settled, plan.duration_s + plan.settle_s + 60, "the end of the window")
        finally:
            sampler.cancel()
        report.rss_end_mb = rss_mb()
        report.lag_p50_ms, report.lag_p99_ms = probe.percentile_ms(50), probe.percentile_ms(99)
        report.lag_max_ms, report.lag_samples = probe.max_ms, probe.samples
        report.lag_spikes = list(probe.spikes)
        await kernel.stop("soak done")
    return t0_ms


async def _ask(control: str, path: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.post(f"{control}{path}") as reply:
        answer: dict[str, Any] = await reply.json()
        return answer


async def run_soak(plan: SoakPlan, work: Path, *, say: Any = None) -> SoakReport:
    """Run the soak in `work` (a fresh folder) and return what it found (see the module docstring)."""
    from twinstar import Kernel

    began = time.monotonic()
    report = SoakReport(plan=plan, symbols=plan.binance + plan.bybit)
    work.mkdir(parents=True, exist_ok=True)
    ready = work / "venues.json"
    with (work / "venues.log").open("wb") as venue_log:
        child = subprocess.Popen(  # noqa: ASYNC220  # polled: asyncio's child watcher would start a thread
            [sys.executable, "-m", "twinstar.testing.soak", str(ready), json.dumps(asdict(plan))],
            stdin=subprocess.DEVNULL,
            stdout=venue_log,
            stderr=subprocess.STDOUT,
        )
    try:
        await _until(ready.exists, 60, "the venues", child)
        ports: dict[str, int] = json.loads(ready.read_text())
        control = f"http://127.0.0.1:{ports['control']}"
        config, clock, parts, storage = _components(plan, ports, work)
        tap, probe = SoakTap(), LagProbe()
        async with Kernel(config, clock=clock, components=[tap, probe, *parts]) as kernel:
            settle_heap()  # as `twinstar run` does once a live kernel has started
            t0_ms = await _drive(plan, report, control, kernel, tap, probe, say)
        found = await _ask(control, "/report")
        (work / "venues-report.json").write_text(json.dumps(found))
        with contextlib.suppress(aiohttp.ClientError):
            await _ask(control, "/exit")
    finally:
        with contextlib.suppress(TimeoutError, RuntimeError):
            await _until(lambda: child.poll() is not None, 10, "the venues' exit")
        if child.poll() is None:
            child.kill()
            child.wait()
    _compare(report, found, tap, storage, t0_ms)
    report.seconds = time.monotonic() - began
    return report


def _compare(report: SoakReport, found: dict[str, Any], tap: SoakTap, storage: Any, t0_ms: int) -> None:
    t_end_ms = int(found["t_end_ms"])
    report.window_s = (t_end_ms - t0_ms) / 1000
    delays: list[float] = []
    for venue in VENUES:
        truth = {int(t): c for t, c in found["truth"][venue].items()}
        for sid in found["ids"][venue]:
            symbol = f"{sid.removesuffix('USDT')}/USDT:USDT"
            report.expected += len(truth)
            stored = storage.load(venue, symbol, INTERVAL, t0_ms, t_end_ms)
            closes = dict(zip(stored["open_time_ms"].to_list(), stored["close"].to_list(), strict=True))
            present = [t for t in truth if t in closes]
            report.stored_once += len(present)
            lost = sorted(set(truth) - set(closes))
            report.lost += len(lost)
            phantom = sorted(set(closes) - set(truth))
            report.phantom += len(phantom)
            wrong = [t for t in present if abs(closes[t] - truth[t]) > 1e-9]
            report.wrong_close += len(wrong)
            key = (venue, symbol)
            published = zip(tap.opens.get(key, []), tap.lates.get(key, []), tap.delays.get(key, []), strict=True)
            window = [(t, late, delay) for t, late, delay in published if t0_ms <= t < t_end_ms]
            opens = [t for t, _, _ in window]
            report.late += sum(late for _, late, _ in window)
            delays += [delay for _, _, delay in window]
            doubled = [t for t, n in Counter(opens).items() if n > 1]
            report.duplicated_bus += sum(Counter(opens)[t] - 1 for t in doubled)
            report.not_on_bus += len(set(truth) - set(opens))
            for label, items in (("lost", lost), ("doubled", doubled), ("wrong close", wrong), ("phantom", phantom)):
                for t in items[:2]:
                    detail = f" stored {closes[t]} venue {truth[t]}" if label == "wrong close" else ""
                    report.examples.append(f"{label}: {venue} {symbol} {t}{detail}")
    report.delay_ms = {q: _percentile(delays, q) for q in (50.0, 99.0, 100.0)}
    report.duplicated_files = _raw_duplicates(Path(storage.root), t0_ms, t_end_ms)
    for venue in VENUES:
        values = [float(v) for v in found["latency_us"][venue]]
        report.latency_us[venue] = {
            "p50": _percentile(values, 50),
            "p99": _percentile(values, 99),
            "max": max(values) if values else math.nan,
            "n": float(len(values)),
            "missed": float(found["missed"][venue]),
            "undelivered": float(found["undelivered"][venue]),
        }
    report.injected = Counter(f"{kind}" for _, _, kind, _ in found["injected"])
    for at, lag_ms in report.lag_spikes:
        offset = at - t0_ms / 1000
        report.spike_causes.append(f"{lag_ms:.0f} ms at +{offset:.1f} s ({_last_fault(found['injected'], offset)})")
    slowest = sorted(
        (
            (us, venue, at)
            for venue in VENUES
            for at, us in zip(found["latency_at_s"][venue], found["latency_us"][venue], strict=True)
        ),
        reverse=True,
    )
    for us, venue, at in slowest[:8]:
        offset = at - t0_ms / 1000
        report.slow_orders.append(f"{venue} {us:,.0f} us at +{offset:.1f} s ({_last_fault(found['injected'], offset)})")
    report.injected_total = len(found["injected"])
    report.push_errors = int(found["push_errors"])
    report.events = dict(tap.counts)
    report.stopped = tap.stopped
    report.handler_failures = tap.failures
    report.examples += [f"rejected: {r}" for r in tap.rejected]
    report.disconnects = dict(tap.reasons.most_common(8))


if __name__ == "__main__":
    sys.exit(venues_main(sys.argv[1:]))
