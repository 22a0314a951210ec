"""The command line against the engine and backtesting.py: `python bench/bench_cli.py [--bars N]`.

A seeded random walk of one-minute candles (`bench.common.random_walk`) is
written to a temp folder as Parquet and CSV. For each file, in one run:

- `python -m twinstar run --config cfg.toml --data FILE` as a whole process
  (start-up, reading, checks, trading, recording, report), sma_cross 10/30
  with a 2% stop and the fill rules of bench/peers.py;
- backtesting.py driven the same way: a whole process that imports it,
  reads the file with pandas, runs the same rules and writes its trades and
  statistics (`bench/peers_cli.py`);
- the phases of the TwinStar process, measured one by one in a child process
  of their own (`bench/cli_phases.py`): import, load (read and check),
  convert (candles to events), trade (the engine alone on ready events, as
  bench/bench_pipeline.py times it), record (what recording and the equity
  curve add to trading), report (statistics, trade list, chart).

Peak memory is each child's own maximum resident set (`os.wait4`). With
`--repeat N` every process runs N times and the fastest run counts (each phase
its fastest too): on a shared machine that is the figure least disturbed by
the neighbours.
The figures the CLI must meet (issue #12): total <= 1.5x the engine's trade
phase, >= 3x faster than backtesting.py, peak memory <= 0.6x backtesting.py's,
and `python -m twinstar --help` under 0.3 s (timed first).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from bench.common import random_walk

CONFIG = """\
symbols = ["SIM/USD"]
interval = "1m"
[strategy]
name = "sma_cross"
params = { fast = 10, slow = 30, stop_pct = 2.0 }
[risk]
order_qty = 1.0
trailing_stop = false
[sim]
taker_fee = 0.0
initial_balance = 1e12
"""


@dataclass
class Child:
    """What one whole process took: wall time, peak resident memory, its output."""

    seconds: float
    peak_mib: float
    stdout: str


def run_measured(args: list[str], cwd: Path) -> Child:
    """Run `args`, wall time and peak RSS of that child alone (`os.wait4`)."""
    # The checkout first (for `bench`), then whatever PYTHONPATH the caller gave (another copy of twinstar).
    paths = [str(Path(__file__).parents[1]), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": os.pathsep.join(paths)}
    out = cwd / "child.out"
    err = cwd / "child.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(args, cwd=cwd, stdout=stdout, stderr=stderr, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({process.returncode}):\n{err.read_text()}")
    return Child(seconds, usage.ru_maxrss / 1024, out.read_text())


def best(args: list[str], cwd: Path, repeat: int) -> Child:
    """The fastest of `repeat` runs of `args`."""
    return min((run_measured(args, cwd) for _ in range(repeat)), key=lambda child: child.seconds)


def best_phases(children: list[Child]) -> dict[str, float]:
    """Each phase's fastest time over the runs (their last line is the phases as JSON)."""
    runs = [json.loads(child.stdout.strip().splitlines()[-1]) for child in children]
    return {name: min(run[name] for run in runs) for name in runs[0]}


def main(bars: int, repeat: int) -> None:
    """Write the files, run every process, print phases and ratios."""
    python = sys.executable
    bench = Path(__file__).parent
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        frame = random_walk(bars)
        files = [folder / "walk.parquet", folder / "walk.csv"]
        frame.write_parquet(files[0])
        frame.write_csv(files[1])
        (folder / "cfg.toml").write_text(CONFIG)
        del frame
        print(f"bench_cli: {bars:,} one-minute candles, sma_cross 10/30, 2% stop, whole processes, best of {repeat}")
        start_up = best([python, "-m", "twinstar", "--help"], folder, max(repeat, 3))
        print(f"start-up: python -m twinstar --help {start_up.seconds:.2f} s (target < 0.3)")
        for data in files:
            run_dir = folder / f"run-{data.suffix[1:]}"
            command = ["run", "--config", "cfg.toml", "--data", str(data), "--out", str(run_dir), "--quiet"]
            cli = best([python, "-m", "twinstar", *command, "--force"], folder, repeat)
            peer_command = [python, str(bench / "peers_cli.py"), str(data), str(folder / "bt")]
            peers = [run_measured(peer_command, folder) for _ in range(repeat)]
            peer = min(peers, key=lambda child: child.seconds)
            phases_runs = [
                run_measured([python, str(bench / "cli_phases.py"), str(data), "cfg.toml"], folder)
                for _ in range(repeat)
            ]
            phases = best_phases(phases_runs)
            peer_phases = best_phases(peers)
            trades = json.loads((run_dir / "stats.json").read_text())["trades"]
            print(f"\n{data.name}: {data.stat().st_size / 2**20:,.0f} MiB")
            print(f"  {'phase':<8} {'twinstar s':>11} {'backtesting.py s':>17}")
            for name in ("import", "load", "convert", "trade", "record", "report"):
                mine = f"{phases[name]:.2f}" if name in phases else "-"
                theirs = f"{peer_phases[name]:.2f}" if name in peer_phases else "-"
                print(f"  {name:<8} {mine:>11} {theirs:>17}")
            engine = phases["trade"]
            print(
                f"  whole process: twinstar {cli.seconds:.2f} s ({trades} trades), "
                f"backtesting.py {peer.seconds:.2f} s ({int(peer_phases['trades'])} trades)"
            )
            print(f"  peak RSS: twinstar {cli.peak_mib:,.0f} MiB, backtesting.py {peer.peak_mib:,.0f} MiB")
            print(
                f"  ratios: CLI / engine {cli.seconds / engine:.2f}x (target <= 1.5), "
                f"backtesting.py / CLI {peer.seconds / cli.seconds:.2f}x (target >= 3), "
                f"memory CLI / backtesting.py {cli.peak_mib / peer.peak_mib:.2f} (target <= 0.6)"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1, help="runs per process; the fastest counts")
    options = parser.parse_args()
    main(options.bars, max(1, options.repeat))
