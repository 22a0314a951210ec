"""Whole-pipeline throughput against peers: `python bench/bench_pipeline.py [--bars N]`.

A seeded random walk of one-minute candles goes through TwinStar's full
pipeline (sma_cross 10/30, execution, simulated fills, position with a 2%
stop) in replay mode, without and with recording, and through backtesting.py
with the same rules in the same run (see bench/peers.py for the fill
assumptions). NautilusTrader runs at 200,000 bars when it is installed.
Timings cover the event loop only: candles are turned into events before the
clock starts, as a replayer hands over decoded events.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

from bench.common import random_walk
from bench.peers import Outcome, candle_events, run_backtesting_py, run_twinstar, sma_config


def main(bars: int) -> None:
    frame = random_walk(bars)
    events = candle_events(frame)
    config = sma_config(10, 30, 2.0)
    results: list[Outcome] = [asyncio.run(run_twinstar(events, config))]
    with tempfile.TemporaryDirectory() as tmp:
        results.append(asyncio.run(run_twinstar(events, config, record=Path(tmp) / "bench.tws")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # backtesting.py warns about its own progress bars and sizing
        results.append(run_backtesting_py(frame, 10, 30, 2.0))
    print(f"pipeline: {bars:,} one-minute candles, sma_cross 10/30, 2% stop, same data and rules")
    print(f"{'engine':<22} {'bars/s':>12} {'seconds':>9} {'trades':>8} {'gross PnL':>12}")
    for r in results:
        print(f"{r.engine:<22} {r.bars_per_s:>12,.0f} {r.seconds:>9.2f} {r.trades:>8} {r.gross_pnl:>12.4f}")
    peer = results[-1]
    print(
        f"twinstar / backtesting.py speed: {results[0].bars_per_s / peer.bars_per_s:.1f}x "
        f"(with recording {results[1].bars_per_s / peer.bars_per_s:.1f}x); "
        f"trades equal: {results[0].trades == peer.trades}; "
        f"gross PnL difference: {abs(results[0].gross_pnl - peer.gross_pnl):.6f}"
    )
    if importlib.util.find_spec("nautilus_trader") is None:
        print("NautilusTrader: not installed here (pip install nautilus_trader to include it)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=1_000_000)
    main(parser.parse_args().bars)
