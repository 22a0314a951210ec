"""The chaos run: `python bench/chaos.py [--kills 200] [--timeouts 1000] [--seed 1]` (`nox -s chaos`).

SIGKILLs a live kernel process at random instants of its entry/stop/trail/
close lifecycle on the loopback Binance USD-M venue and restarts it, then
scripts ambiguous timeouts on orders and stops (see twinstar.testing.chaos).
Prints the venue's figures; exits 1 if any invariant broke.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

from twinstar.testing.chaos import chaos


def main() -> int:
    """Parse the arguments, run both parts, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200, help="SIGKILLs of the kernel process (0: skip)")
    parser.add_argument("--timeouts", type=int, default=1000, help="ambiguous timeouts in-process (0: skip)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lanes", type=int, default=8, help="venues the timeouts run on side by side")
    parser.add_argument("--workdir", help="keep the kernel's log, journal and recordings here")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the in-process kernels' log lines")
    args = parser.parse_args()
    # The timeouts part runs kernels in this process: their warnings about each timeout are expected noise.
    logging.basicConfig(level=logging.INFO if args.verbose else logging.CRITICAL + 1)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="twinstar-chaos-") as scratch:
        workdir = Path(args.workdir or scratch)
        report = asyncio.run(chaos(args.kills, args.timeouts, workdir, seed=args.seed, lanes=args.lanes))
    print(report.table())
    print(f"{time.perf_counter() - started:.0f}s")
    broken = report.violations()
    for line in broken:
        print(f"INVARIANT BROKEN: {line}", file=sys.stderr)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
