"""The chaos run (`nox -s chaos`, `python bench/chaos.py`, reduced in tests/chaos): kills and ambiguous timeouts.

Part 1 (`chaos_kills`) SIGKILLs a live kernel process at random instants of
its entry/stop/trail/close lifecycle on the loopback venue and restarts it on
the same journal; part 2 (`chaos_timeouts`) scripts ambiguous timeouts on
orders and stops in-process. Both count from the venue's side. The
invariants: no duplicate entry or order (a stop placed twice included), no
position without a stop after a restart's reconciliation, no orphan stop, no
fill left without a stop, and no unprotected window longer than the
stop-retry budget.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from twinstar.testing.chaos_kills import KillFigures, run_kills
from twinstar.testing.chaos_timeouts import TimeoutFigures, run_timeouts

__all__ = ["ChaosReport", "KillFigures", "TimeoutFigures", "chaos"]


@dataclass
class ChaosReport:
    """Both parts' figures, the invariants they break, and a table to print."""

    kills: KillFigures | None
    timeouts: TimeoutFigures | None

    def violations(self) -> list[str]:
        """Every invariant the run broke, in words (empty: all held)."""
        found: list[str] = []
        k, t = self.kills, self.timeouts
        if k is not None:
            checks = {
                "duplicate entries": k.duplicate_entries,
                "positions larger than one entry": k.oversize,
                "positions without a stop after restart": k.unprotected_after_restart,
                "orphan stops after restart": k.orphan_stops,
            }
            found += [f"kills: {name} = {n}" for name, n in checks.items() if n]
            if k.max_unprotected_s > k.budget_s:
                found.append(
                    f"kills: unprotected for {k.max_unprotected_s:.2f}s > budget {k.budget_s:g}s "
                    f"(window opened at {k.max_unprotected_at})"
                )
            if k.kills and not k.audits:
                found.append("kills: no restart ever reached its first candle (nothing was audited)")
        if t is not None:
            checks = {
                "duplicate orders": t.duplicate_orders,
                "positions larger than one entry": t.oversize,
                "fills left without a stop": t.unprotected_fills,
                "stops placed twice (two resting for one position)": t.doubled_stops,
            }
            found += [f"timeouts: {name} = {n}" for name, n in checks.items() if n]
        return found

    def table(self) -> str:
        """The figures, one per line."""
        rows: list[tuple[str, str]] = []
        k, t = self.kills, self.timeouts
        if k is not None:
            rows += [
                ("SIGKILLs (restarts audited after reconciling)", f"{k.kills} ({k.audits})"),
                ("duplicate entries", str(k.duplicate_entries)),
                ("positions larger than one entry", str(k.oversize)),
                ("positions without a stop after restart", str(k.unprotected_after_restart)),
                ("orphan stops after restart", str(k.orphan_stops)),
                ("seconds unprotected (max)", f"{k.max_unprotected_s:.2f} (budget {k.budget_s:g})"),
            ]
            rows += [(f"  lifecycle: {name}", str(n)) for name, n in sorted(k.lifecycle.items())]
            rows += [(f"  kill plan: {name}", str(n)) for name, n in sorted(k.plans.items())]
        if t is not None:
            rows += [
                ("ambiguous timeouts", str(t.timeouts)),
                ("duplicate orders", str(t.duplicate_orders)),
                ("positions larger than one entry", str(t.oversize)),
                ("fills left without a stop", str(t.unprotected_fills)),
                ("stops placed twice (two resting for one position)", str(t.doubled_stops)),
                ("seconds unprotected (max)", f"{t.max_unprotected_s:.2f}"),
                ("  entries filled", str(t.entries)),
            ]
        width = max((len(name) for name, _ in rows), default=0)
        lines = [f"{name:<{width}}  {value}" for name, value in rows]
        problems = [*(k.problems if k else []), *(t.problems if t else [])]
        lines += [f"! {p}" for p in problems[:20]]
        return "\n".join(lines)


async def chaos(kills: int, timeouts: int, workdir: Path, *, seed: int = 1, lanes: int = 8) -> ChaosReport:
    """Run both parts (either may be 0: skipped) and return their report."""
    kill_figures = await run_kills(kills, workdir, seed=seed) if kills > 0 else None
    timeout_figures = await run_timeouts(timeouts, seed=seed, lanes=lanes) if timeouts > 0 else None
    return ChaosReport(kill_figures, timeout_figures)
