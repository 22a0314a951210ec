"""Pure Python against the mypyc-compiled build, in one run: `python bench/bench_compiled.py [--bars N]`.

The hot modules of this checkout are compiled into a temporary folder first (bench/compiled_build.py,
the real build hook; under a minute on two cores; `--site DIR` reuses a folder it built). A seeded
random walk of one-minute candles (`bench.common.random_walk`) is written as Parquet, and each build
runs the same work in child processes of its own (the compiled one with its folder first on
PYTHONPATH), sma_cross 10/30 with a 2% stop and the fill rules of bench/peers.py:

- engine: candles already events, through the full pipeline (strategy, execution, simulated fills,
  position and stop), as bench/bench_pipeline.py runs it;
- backtest, in process: `check_data` and `run_checked` on the file with a run folder (read, check,
  candles made events in batches, trading, recording, report);
- CLI run, whole process: `python -m twinstar run --data FILE`, start-up included.

Figures are candles per CPU second (the main thread's for the first two, the whole child's for the
process), which a busy shared host disturbs far less than wall time; the builds run in turn for
`--repeat` rounds and the best of each counts. Both builds must agree on the trades and the gross
PnL, or the bench fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from bench.bench_cli import CONFIG
from bench.common import random_walk
from bench.compiled_build import build_compiled

BUILDS = ("pure", "compiled")


def child(data: Path) -> None:
    """Measure this interpreter's build on `data` (its config beside it); print one JSON line."""
    import polars as pl

    from bench.peers import candle_events, run_twinstar
    from twinstar.backtest.runner import check_data, run_checked
    from twinstar.compiled import build_kind
    from twinstar.config import Config

    config = Config.load(data.with_name("cfg.toml"))
    events = candle_events(pl.read_parquet(data), symbol=config.symbols[0])
    started = time.thread_time()
    engine = asyncio.run(run_twinstar(events, config))
    engine_s = time.thread_time() - started
    del events
    with tempfile.TemporaryDirectory() as tmp:
        started = time.thread_time()
        result = asyncio.run(run_checked(check_data(config, data), Path(tmp)))
        backtest_s = time.thread_time() - started
    figures = {
        "kind": build_kind(),
        "engine": engine.bars / engine_s,
        "backtest": result.candles_run / backtest_s,
        "trades": engine.trades,
        "gross_pnl": engine.gross_pnl,
    }
    print(json.dumps(figures))


def measure(build: str, site: Path, data: Path, bars: int) -> dict[str, float | str]:
    """Run `child` and the whole CLI process once with `build`; their figures."""
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": str(Path(__file__).parents[1])}
    if build == "compiled":
        env["PYTHONPATH"] = os.pathsep.join([str(site), env["PYTHONPATH"]])
    command = [sys.executable, __file__, "--child", str(data)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the {build} child failed:\n{done.stderr[-4000:]}")
    figures: dict[str, float | str] = json.loads(done.stdout.strip().splitlines()[-1])
    run = ["run", "--config", str(data.with_name("cfg.toml")), "--data", str(data), "--quiet", "--force"]
    command = [sys.executable, "-m", "twinstar", *run, "--out", str(data.with_name(f"run-{build}"))]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the {build} CLI run failed: {' '.join(command)}")
    figures["process"] = bars / (usage.ru_utime + usage.ru_stime)
    return figures


def main(bars: int, repeat: int, site: Path | None) -> None:
    """Build (unless given), write the data, measure both builds in turn, print the best figures and ratios."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if site is None:
            started = time.perf_counter()
            site = build_compiled(folder / "site")
            print(f"compiled build: {time.perf_counter() - started:.0f} s")
        data = folder / "walk.parquet"
        random_walk(bars).write_parquet(data)
        (folder / "cfg.toml").write_text(CONFIG)
        rounds = [{build: measure(build, site, data, bars) for build in BUILDS} for _ in range(repeat)]
    for results in rounds:
        pure, compiled = results["pure"], results["compiled"]
        if (pure["kind"], compiled["kind"]) != BUILDS:
            raise SystemExit(f"the builds are not what they should be: {pure['kind']}, {compiled['kind']}")
        if (pure["trades"], pure["gross_pnl"]) != (compiled["trades"], compiled["gross_pnl"]):
            raise SystemExit(f"the builds disagree: pure {pure}, compiled {compiled}")
    print(f"bench_compiled: {bars:,} one-minute candles, sma_cross 10/30, 2% stop, best of {repeat}")
    print(f"{'candles per CPU second':<24} {'pure':>10} {'compiled':>10} {'ratio':>7}")
    for name, label in (
        ("engine", "engine"),
        ("backtest", "backtest, in process"),
        ("process", "CLI run, whole process"),
    ):
        mine = max(float(results["pure"][name]) for results in rounds)
        theirs = max(float(results["compiled"][name]) for results in rounds)
        print(f"{label:<24} {mine:>10,.0f} {theirs:>10,.0f} {theirs / mine:>6.2f}x")
    first = rounds[0]["pure"]
    print(f"same trades ({first['trades']}) and gross PnL ({float(first['gross_pnl']):.6f}) in both builds")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2, help="rounds of both builds in turn; the best counts")
    parser.add_argument("--site", type=Path, help="a folder bench/compiled_build.py built (skips the build)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child is not None:
        child(options.child)
    else:
        main(options.bars, max(1, options.repeat), options.site)
