"""Chaos, part 2: ambiguous timeouts on orders and stops, in-process, against the loopback venue.

A live-mode kernel holding the real execution and position handlers and the
real Binance USD-M adapter (ccxt over HTTP) trades against a `ChaosVenue`
whose next order or stop request misbehaves: its reply is lost after it
reached the book, it never reaches the book, or the request itself arrives
late, inside or beyond its receive window (sometimes the lookup that
follows fails too). Signals reverse the position each time, so entries,
closes, stop placements and stop cancels all meet the failures. After each
one settles (and the reconciliation the kernel asks for after an unknown
outcome has run) the venue is audited: an order executed twice under one
client id, a position larger than one entry, a fill without a covering
stop, a stop of ours left doubled. Real time throughout: the receive window
is the venue's clock against the request's stamp, so short timeouts and a
short window keep it fast; lanes run side by side, each with its own venue.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Final

from twinstar.adapters.binance import BinanceUsdm
from twinstar.bus.bus import Bus
from twinstar.bus.events import Event, OrderFailed, ReconciliationCompleted, SignalFired
from twinstar.clock import LiveClock
from twinstar.config import Config, ExchangeConfig, ExecutionConfig, RiskConfig
from twinstar.handlers.execution import ExecutionHandler
from twinstar.handlers.journal import Journal
from twinstar.handlers.position import PositionHandler
from twinstar.kernel import Component, Kernel
from twinstar.live import AdapterSession
from twinstar.testing.chaos_venue import ChaosVenue
from twinstar.testing.loopback import Failure, serve

SYMBOL: Final = "BTC/USDT:USDT"
QTY: Final = 0.01
TIMEOUT_S: Final = 0.3  # ccxt's timeout: every failure below outlasts it
RECV_WINDOW_MS: Final = 700
#: Outcomes an order failure leaves open; after one the kernel reconciles, and the audit waits for that pass.
DEFINITE: Final = ("invalid_order", "insufficient_funds", "auth")
#: What the failure hits: orders (entry or close, whichever goes first), stop placements, stop cancels.
TARGETS: Final = (("POST", "/fapi/v1/order"),) * 3 + (("POST", "/fapi/v1/algoOrder"), ("DELETE", "/fapi/v1/algoOrder"))


@dataclass
class TimeoutFigures:
    """What the timeout run measured on the venues."""

    timeouts: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    duplicate_orders: int = 0
    oversize: int = 0
    unprotected_fills: int = 0
    doubled_stops: int = 0
    max_unprotected_s: float = 0.0
    entries: int = 0
    problems: list[str] = field(default_factory=list)


def random_failures(rng: random.Random) -> tuple[str, list[Failure]]:
    """One ambiguous failure for the next order or stop request, sometimes followed by a failing lookup."""
    method, path = rng.choice(TARGETS)
    late_ok = (TIMEOUT_S + 0.05, RECV_WINDOW_MS / 1000 - 0.1)
    kinds = {
        "reply lost after the book": Failure(delay_s=TIMEOUT_S + 0.15, executes=True, path=path, method=method),
        "request lost before the book": Failure(
            status=504,
            body={"code": -1007, "msg": "Timeout waiting for response"},
            delay_s=TIMEOUT_S + 0.1,
            path=path,
            method=method,
        ),
        "arrives late, inside its window": Failure(
            arrives_late=True, delay_s=rng.uniform(*late_ok), path=path, method=method
        ),
        "arrives late, beyond its window": Failure(
            arrives_late=True,
            delay_s=rng.uniform(RECV_WINDOW_MS / 1000 + 0.1, RECV_WINDOW_MS / 1000 + 1.6),
            path=path,
            method=method,
        ),
    }
    name = rng.choice(list(kinds))
    failures = [kinds[name]]
    if rng.random() < 0.2:  # the lookup that follows times out as well
        failures.append(Failure(delay_s=TIMEOUT_S + 0.1, executes=True, path="/fapi/v1/order", method="GET"))
        name += " + a lookup"
    return f"{name} ({method} {path})", failures


class Events:
    """Every event of the lane's kernel, in order."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def attach(self, bus: Bus) -> None:
        """Subscribe to everything."""
        bus.subscribe(Event, self.handle, name="chaos.Events")

    async def handle(self, event: Event) -> None:
        """Keep it."""
        self.events.append(event)


def _adapter(clock: LiveClock) -> BinanceUsdm:
    options = {"fetchCurrencies": False, "recvWindow": RECV_WINDOW_MS, "weight_per_window": 1_000_000}
    adapter = BinanceUsdm(
        config=ExchangeConfig(id="binanceusdm", options=options),
        clock=clock,
        ccxt_options={"apiKey": "chaos-key", "secret": "chaos-secret"},
    )
    adapter.ccxt.timeout = int(TIMEOUT_S * 1000)
    return adapter


async def _settle(kernel: Kernel, venue: ChaosVenue, events: Events, mark: int) -> int:
    """Until the kernel is done with the signal (held requests arrived, asked-for reconciliation ran).

    Returns how many scripted failures were never met (dropped, uncounted).
    """
    await kernel.bus.idle()
    for _ in range(500):  # a held request is released within its delay (under 3 s)
        if not venue.held:
            break
        await asyncio.sleep(0.02)
    unmet = len(venue.failures)
    venue.failures.clear()
    await kernel.bus.idle()
    failed = any(isinstance(e, OrderFailed) and e.error_kind not in DEFINITE for e in events.events[mark:])
    for _ in range(100 if failed else 0):  # the maintenance loop reconciles once the bus is idle
        if any(isinstance(e, ReconciliationCompleted) for e in events.events[mark:]):
            break
        await asyncio.sleep(0.03)
    await kernel.bus.idle()
    return unmet


async def _lane(lane: int, count: int, rng: random.Random, figures: TimeoutFigures) -> None:
    async with serve(ChaosVenue(entry_qty=QTY)) as venue:
        clock = LiveClock()
        adapter = _adapter(clock)
        venue.point(adapter.ccxt)
        risk = RiskConfig(
            order_qty=QTY, trailing_stop=False, sl_retry_backoff_s=[0.2, 0.4, 0.6], emergency_retry_s=[0.2, 0.5]
        )
        journal = Journal()
        position = PositionHandler(adapter, clock, risk, journal=journal, symbols=[SYMBOL])
        execution = ExecutionHandler(
            adapter, clock, ExecutionConfig(network_backoff_s=[0.1, 0.2, 0.4]), risk, journal=journal
        )
        events = Events()
        parts: list[Component] = [AdapterSession(adapter), position, execution, events]
        async with Kernel(Config(), clock=clock, components=parts) as kernel:
            met = i = 0
            while met < count and i < 3 * count:  # a failure no request met is not counted: script another
                i += 1
                name, failures = random_failures(rng)
                figures.kinds[name] = figures.kinds.get(name, 0) + 1
                venue.label = f"lane {lane} #{i}: {name}"
                venue.failures.extend(failures)
                mark = len(events.events)
                await kernel.publish(
                    SignalFired(
                        ts_ns=clock.now_ns(),
                        strategy="chaos",
                        exchange=adapter.name,
                        symbol=SYMBOL,
                        side="buy" if i % 2 == 0 else "sell",
                        price=venue.last("BTCUSDT"),
                        stop_price=0.0,
                        reason="chaos",
                        candle_open_time_ms=1_700_000_000_000 + (lane * 100_000 + i) * 1_000,
                    )
                )
                unmet = await _settle(kernel, venue, events, mark)
                met += len(failures) - unmet
                figures.timeouts += len(failures) - unmet
                found = venue.audit()
                if found.unprotected or found.orphans:
                    figures.unprotected_fills += found.unprotected
                    figures.doubled_stops += found.orphans
                    figures.problems.append(
                        f"{venue.label}: {found.unprotected} unprotected, {found.orphans} extra stops"
                    )
                    await position.reconciler.reconcile("chaos audit")  # the timer would; start the next one clean
            await kernel.stop("chaos done")
        venue.finish()
        figures.duplicate_orders += sum(n - 1 for n in venue.order_fills.values() if n > 1)
        figures.oversize += venue.oversize
        figures.entries += sum(venue.entry_fills.values())
        figures.max_unprotected_s = max(figures.max_unprotected_s, venue.max_unprotected[0])


async def run_timeouts(timeouts: int, *, seed: int = 1, lanes: int = 8) -> TimeoutFigures:
    """`timeouts` ambiguous failures over `lanes` venues side by side; return the venues' figures."""
    figures = TimeoutFigures()
    lanes = max(1, min(lanes, timeouts))
    counts = [timeouts // lanes + (1 if n < timeouts % lanes else 0) for n in range(lanes)]
    rngs = [random.Random(seed * 1_000 + n) for n in range(lanes)]
    async with asyncio.TaskGroup() as group:
        for n, count in enumerate(counts):
            group.create_task(_lane(n, count, rngs[n], figures))
    return figures
