"""`twinstar run` on candles (a backtest, the paper default): checks shown first, Ctrl-C stops cleanly.

The CLI's face of `run_backtest`: the data block before the first trade, the
progress line, the summary and the run folder. Ctrl-C asks the run to stop at
the next candle boundary and still writes the report for what ran; a second
Ctrl-C quits at once.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

import msgspec

from twinstar.config import Config

# What a run writes into its folder: `--force` clears exactly these, so no earlier run's files mix in.
RUN_OUTPUTS: Final = ("events.tws", "stats.json", "trades.parquet", "trades.csv", "report.html", "equity.svg")


class RunFolderError(ValueError):
    """The run folder cannot be used; the message says why in one line."""


def prepare_run_dir(run_dir: Path, *, force: bool) -> None:
    """Refuse a non-empty `run_dir` unless `force`, which removes an earlier run's outputs from it."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"--out {run_dir}: exists and is not a folder")
    if not run_dir.is_dir() or not any(run_dir.iterdir()):
        return
    if not force:
        raise RunFolderError(f"--out {run_dir}: the folder is not empty (pass --force to replace an earlier run)")
    for name in RUN_OUTPUTS:
        (run_dir / name).unlink(missing_ok=True)


class _Interrupt:
    """Ctrl-C once: stop at the next candle; twice: quit at once."""

    def __init__(self) -> None:
        self.requested = False

    def handle(self, signum: int, frame: types.FrameType | None) -> None:
        if self.requested:
            sys.stderr.write("\ninterrupted again: quitting without a report\n")
            sys.stderr.flush()
            os._exit(130)
        self.requested = True
        sys.stderr.write("\nstopping at the next candle (Ctrl-C again to quit at once)\n")
        sys.stderr.flush()

    def __call__(self) -> bool:
        return self.requested


@contextmanager
def _interruptible() -> Iterator[Callable[[], bool]]:
    # A Python-level handler, not the loop's: a backtest rarely yields to the loop, and this one
    # runs between any two bytecodes of the candle loop.
    interrupt = _Interrupt()
    previous = signal.signal(signal.SIGINT, interrupt.handle)
    try:
        yield interrupt
    finally:
        signal.signal(signal.SIGINT, previous)


def check_bundled_symbol(config: Config, args: argparse.Namespace) -> None:
    """Refuse a --symbol that would relabel the bundled BTC/USD candles as another market."""
    from twinstar.data import BUNDLED_SYMBOL

    if args.symbol and not config.data.path and args.symbol != BUNDLED_SYMBOL:
        raise RunFolderError(
            f"--symbol {args.symbol}: the bundled candles are {BUNDLED_SYMBOL}; "
            f"pass --data FILE with {args.symbol} candles"
        )


async def run_on_candles(config: Config, args: argparse.Namespace) -> int:
    """Backtest `config` on --data (or the bundled candles) and print the summary; the CLI's exit code."""
    from twinstar.backtest.runner import check_data, run_checked
    from twinstar.data import BUNDLED_SYMBOL, bundled_candles_path
    from twinstar.handlers.strategy import make_strategy
    from twinstar.handlers.user_strategy import is_user_strategy, resolved
    from twinstar.heap import settle_heap
    from twinstar.report.terminal import Progress, print_table
    from twinstar.session import default_run_dir

    check_bundled_symbol(config, args)
    make_strategy(config.strategy.name, dict(config.strategy.params))  # fail fast on a bad name
    if is_user_strategy(config.strategy.name):  # recorded absolute, so a replay from elsewhere finds the file
        strategy = msgspec.structs.replace(config.strategy, name=resolved(config.strategy.name))
        config = msgspec.structs.replace(config, strategy=strategy)
    if not config.data.path:
        config = msgspec.structs.replace(config, symbols=[BUNDLED_SYMBOL])
    source = Path(config.data.path) if config.data.path else bundled_candles_path()
    if args.out:  # refused before the file is even read
        prepare_run_dir(Path(args.out), force=args.force)
    checked = check_data(config, source, interval=args.interval or None)
    venue = checked.config.venues()[0]
    run_dir = Path(args.out) if args.out else default_run_dir(checked.config)
    prepare_run_dir(run_dir, force=args.force)
    block = [*checked.report.lines(), f"backtest: {config.strategy.name} on {venue.symbols[0]} {venue.interval}"]
    # The data is read and checked: what exists now lives to the end of the run, and a full
    # collection walking it again and again cost a tenth of a million-candle run.
    settle_heap()
    with _interruptible() as interrupted:
        if not args.quiet or checked.report.gaps:  # --quiet keeps only what the user must know: the gaps
            print("\n".join(block), file=sys.stderr, flush=True)
        progress = None if args.quiet else Progress(checked.report.candles, "candles")
        result = await run_checked(
            checked, run_dir, on_progress=progress.update if progress else None, should_stop=interrupted
        )
    venue = result.config.venues()[0]
    if result.interrupted:
        print(f"interrupted: the report covers the first {result.candles_run:,} candles", file=sys.stderr)
    print_table(result.summary.rows(), title=f"{config.strategy.name} {venue.symbols[0]} {venue.interval}")
    assert result.report is not None  # a run folder was given
    print(f"run folder: {result.run_dir}")
    print(f"  events:  {result.stream}")
    print(f"  stats:   {result.report.stats}")
    print(f"  trades:  {result.report.trades_parquet} (and .csv)")
    print(f"  chart:   {result.report.chart}")
    return 130 if result.interrupted else 0
