"""Chaos, part 1: SIGKILL a live kernel process all over its order lifecycle, restart it, audit the venue.

The venue (a `ChaosVenue`, in this process) serves one-second candles; the
kernel (`twinstar.testing.chaos_kernel`, a child process) enters, places
stops, trails them and reverses every few candles; a hunter moves the price
through the resting stop now and then so stops trigger and fill. Each cycle
starts the kernel and kills it at one chosen instant: after a random delay
(start-up and reconciliation included), just before or just after the venue
carries out the k-th order, stop placement, stop cancel or reconciliation
read, or right after a stop filled. Every restart keeps the journal. When a
restarted kernel asks for its first candles its start-up reconciliation is
over, and the venue's books are audited at that instant: positions without a
stop, stops of ours without a position. All figures are the venue's.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from twinstar.handlers.reconcile import STOP_PREFIX
from twinstar.testing.chaos_venue import ChaosVenue, Phase
from twinstar.testing.loopback import serve

SYMBOL: Final = "BTC/USDT:USDT"
SYMBOL_ID: Final = "BTCUSDT"
QTY: Final = 0.01
STOP_RETRY_S: Final = (1.0, 2.0, 3.0)  # the kernel's stop retries; their sum is the unprotected budget
KEY: Final = {"TW_CHAOS_KEY": "chaos-key", "TW_CHAOS_SECRET": "chaos-secret"}
#: Request kinds a kill can be aimed at: (method, path, what it is in the lifecycle).
TARGETS: Final = (
    ("POST", "/fapi/v1/order", "entry or close"),
    ("POST", "/fapi/v1/algoOrder", "stop placed or trailed"),
    ("DELETE", "/fapi/v1/algoOrder", "replaced stop cancelled"),
    ("GET", "/fapi/v1/openAlgoOrders", "reconciliation read"),
)
HUNT_EVERY_S: Final = (2.0, 9.0)  # between pushes of the price through the stop (most positions end otherwise)
GIVE_UP_S: Final = 8.0  # a plan whose instant never comes kills here anyway


@dataclass
class Plan:
    """When to kill the kernel in one cycle."""

    kind: str  # "delay", "request" or "stop_fill"
    delay_s: float = 0.0
    method: str = ""
    path: str = ""
    phase: Phase = "after"
    drop: bool = False  # before: the venue never sees the request (it died with the process)
    nth: int = 1
    seen: int = 0

    def __str__(self) -> str:
        if self.kind == "delay":
            return f"after {self.delay_s:.2f}s"
        if self.kind == "stop_fill":
            return "right after a stop filled"
        when = "before (request lost)" if self.drop else "after (reply lost)"
        return f"{when} {self.method} {self.path} #{self.nth}"


@dataclass
class KillFigures:
    """What the kill run measured on the venue."""

    kills: int = 0
    audits: int = 0  # restarts whose start-up reconciliation completed before the next kill
    duplicate_entries: int = 0
    oversize: int = 0
    unprotected_after_restart: int = 0
    orphan_stops: int = 0
    max_unprotected_s: float = 0.0
    max_unprotected_at: str = ""
    budget_s: float = sum(STOP_RETRY_S)
    plans: Counter[str] = field(default_factory=Counter)
    lifecycle: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # which restart failed which check


def random_plan(rng: random.Random) -> Plan:
    """One kill instant: a third at random delays, the rest aimed at lifecycle requests and stop fills."""
    roll = rng.random()
    if roll < 0.3:
        return Plan("delay", delay_s=rng.uniform(0.2, 5.0))
    if roll < 0.4:
        return Plan("stop_fill")
    method, path, _ = rng.choice(TARGETS)
    drop = method != "GET" and rng.random() < 0.4
    return Plan(
        "request", method=method, path=path, phase="before" if drop else "after", drop=drop, nth=rng.randint(1, 2)
    )


def config_text(base: str, journal_dir: Path) -> str:
    """The child kernel's config: a live Binance USD-M session against the loopback venue at `base`."""
    retries = ", ".join(f"{s:g}" for s in STOP_RETRY_S)
    return (
        f'symbols = ["{SYMBOL}"]\ninterval = "1s"\n'
        '[exchange]\nid = "binanceusdm"\napi_key_env = "TW_CHAOS_KEY"\napi_secret_env = "TW_CHAOS_SECRET"\n'
        f'api_base_url = "{base}"\ncandle_feed = "poll"\n'
        "options = { fetchCurrencies = false, weight_per_window = 1000000 }\n"
        '[strategy]\nname = "chaos_cycle"\nparams = { hold = 4 }\n'
        f"[risk]\norder_qty = {QTY}\nstop_loss_pct = 2.0\ntrail_step_pct = 0.1\nsl_retry_backoff_s = [{retries}]\n"
        f'[journal]\ndir = "{journal_dir}"\n[kernel]\ndrain_timeout_s = 2\n'
    )


class KillRun:
    """One venue, one journal, a kernel process started and killed `kills` times."""

    def __init__(self, venue: ChaosVenue, workdir: Path, rng: random.Random, give_up_s: float = GIVE_UP_S) -> None:
        self.venue, self.workdir, self.rng, self.give_up_s = venue, workdir, rng, give_up_s
        self.figures = KillFigures()
        self.config = workdir / "chaos.toml"
        self.config.write_text(config_text(venue.base, workdir / "state"))
        self.log = workdir / "kernel.log"
        self.child: asyncio.subprocess.Process | None = None
        self.plan = Plan("delay")
        self.killed = asyncio.Event()
        self.audit_due = False
        self.cycle = 0
        venue.hook = self._hook

    # -- killing -----------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL the running kernel (once per cycle)."""
        if self.child is not None and self.child.returncode is None and not self.killed.is_set():
            os.kill(self.child.pid, signal.SIGKILL)
            self.killed.set()

    def _hook(self, method: str, path: str, phase: Phase) -> bool:
        """The venue calls this around every request it carries out (synchronously: the kill is exact)."""
        if self.audit_due and phase == "before" and path == "/fapi/v1/klines":
            self._audit()
        plan = self.plan
        if (
            plan.kind != "request"
            or self.killed.is_set()
            or (method, path, phase) != (plan.method, plan.path, plan.phase)
        ):
            return False
        plan.seen += 1
        if plan.seen < plan.nth:
            return False
        self.kill()
        return plan.drop

    def _audit(self) -> None:
        """The restarted kernel finished its start-up reconciliation: nothing may be unguarded or left over."""
        self.audit_due = False
        found = self.venue.audit()
        self.figures.audits += 1
        self.figures.unprotected_after_restart += found.unprotected
        self.figures.orphan_stops += found.orphans
        if found.unprotected or found.orphans:
            self.figures.problems.append(
                f"restart {self.cycle} (previous kill {self.venue.label}): "
                f"{found.unprotected} unprotected, {found.orphans} orphan stops"
            )

    async def hunt(self) -> None:
        """Now and then push the price through the resting stop (and back), so stops trigger and fill."""
        venue = self.venue
        due = asyncio.get_running_loop().time() + self.rng.uniform(*HUNT_EVERY_S)
        while True:
            await asyncio.sleep(0.2)
            if self.plan.kind != "stop_fill" and asyncio.get_running_loop().time() < due:
                continue
            size = venue.positions.get(SYMBOL_ID, 0.0)
            closing = "SELL" if size > 0 else "BUY"
            stops = [
                float(a["triggerPrice"])
                for a in venue.algo_orders.values()
                if a["algoStatus"] == "NEW" and a["side"] == closing and a["symbol"] == SYMBOL_ID
            ]
            if size == 0 or not stops:
                continue
            due = asyncio.get_running_loop().time() + self.rng.uniform(*HUNT_EVERY_S)
            back = venue.last(SYMBOL_ID)
            through = min(stops) - 5 if size > 0 else max(stops) + 5
            if await venue.move_price(through):
                self.figures.lifecycle["stops triggered and filled"] += 1
                if self.plan.kind == "stop_fill":
                    self.kill()
            await venue.move_price(back)

    # -- cycles ------------------------------------------------------------------

    async def _start(self) -> asyncio.subprocess.Process:
        self.cycle += 1
        run_dir = self.workdir / "runs" / f"{self.cycle:04d}"
        with self.log.open("ab") as log:
            log.write(f"\n===== start {self.cycle} (kill plan: {self.plan}) =====\n".encode())
            return await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "twinstar.testing.chaos_kernel",
                str(self.config),
                str(run_dir),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, **KEY},
            )

    async def kill_once(self) -> None:
        """Start the kernel, kill it as planned, wait for it to be gone."""
        self.plan = random_plan(self.rng)
        self.killed = asyncio.Event()
        self.audit_due = True
        self.child = await self._start()
        self.venue.label = f"#{self.cycle} {self.plan}"
        timeout = self.plan.delay_s if self.plan.kind == "delay" else self.give_up_s
        try:
            await asyncio.wait_for(self.killed.wait(), timeout)
        except TimeoutError:
            self.kill()
            if self.plan.kind != "delay":
                self.figures.plans["(instant never came: killed late)"] += 1
        await self.child.wait()
        self.figures.kills += 1
        plan = self.plan
        self.figures.plans[plan.kind if plan.kind != "request" else f"{plan.method} {plan.path}"] += 1

    async def settle(self, seconds: float) -> None:
        """Start the kernel a last time, let it reconcile and trade, then stop it cleanly (SIGTERM)."""
        self.plan = Plan("delay")
        self.killed = asyncio.Event()
        self.audit_due = True
        self.child = await self._start()
        self.venue.label = f"#{self.cycle} final run"
        await asyncio.sleep(seconds)
        self.child.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.child.wait(), 15)
        except TimeoutError:
            self.kill()
            await self.child.wait()
            self.figures.problems.append("the final kernel did not stop on SIGTERM")

    def tally(self) -> None:
        """Read the lifecycle totals and the invariants off the venue's books."""
        venue, figures = self.venue, self.figures
        venue.finish()
        figures.duplicate_entries = venue.duplicate_entries
        figures.problems += [f"entry {cid} filled {n} times" for cid, n in venue.entry_fills.items() if n > 1]
        figures.oversize = venue.oversize
        figures.max_unprotected_s, figures.max_unprotected_at = venue.max_unprotected
        algos = list(venue.algo_orders.values())
        figures.lifecycle["entries filled"] = sum(venue.entry_fills.values())
        figures.lifecycle["closes filled"] = sum(
            1
            for o in venue.orders_by_id.values()
            if o["reduceOnly"] and float(o["executedQty"]) > 0 and not o["clientOrderId"].startswith(STOP_PREFIX)
        )
        figures.lifecycle["stops placed (incl. trails)"] = len(algos)
        figures.lifecycle["stops cancelled"] = sum(1 for a in algos if a["algoStatus"] == "CANCELED")
        figures.lifecycle["unprotected windows"] = len(venue.windows)


async def run_kills(
    kills: int, workdir: Path, *, seed: int = 1, final_s: float = 4.0, give_up_s: float = GIVE_UP_S
) -> KillFigures:
    """Kill the kernel `kills` times at random lifecycle instants; return the venue's figures."""
    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    async with serve(ChaosVenue(entry_qty=QTY)) as venue:
        venue.live_klines_ms = 1_000
        run = KillRun(venue, workdir, rng, give_up_s)
        hunter = asyncio.create_task(run.hunt())
        try:
            for _ in range(kills):
                await run.kill_once()
            await run.settle(final_s)
        finally:
            hunter.cancel()
            run.kill()
        run.tally()
        return run.figures
