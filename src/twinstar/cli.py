"""The `python -m twinstar` command line.

The only place that picks uvloop, installs signal handlers and configures
logging: an embedding application keeps all three for itself.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import traceback
import types
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

import msgspec
import uvloop

from twinstar import __version__
from twinstar.bus.record import StreamFormatError
from twinstar.candles import CandleFileError
from twinstar.config import Config, ConfigError
from twinstar.kernel import Kernel
from twinstar.redact import install_on_handlers, redact

# Errors a user causes (bad file, bad config, bad name): one line on stderr, exit code 2.
USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, StreamFormatError, CandleFileError, ValueError)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every sub-command."""
    parser = _Parser(prog="twinstar", description="Asyncio trading kernel for crypto exchanges.")
    parser.add_argument("--version", action="version", version=f"twinstar {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details, HTTP included (redacted)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    run = commands.add_parser("run", help="run a trading kernel (paper session on bundled data by default)")
    run.add_argument("--config", help="TOML config file (default: paper trading on bundled data)")
    run.add_argument("--data", help="CSV or Parquet candles to paper-trade on instead of the bundled set")
    run.add_argument("--strategy", help="strategy name (default from config: sma_cross)")
    run.add_argument("--symbol", help="symbol the candles belong to (default from config)")
    run.add_argument("--interval", help="candle interval, e.g. 1m, 1h (default: inferred from --data)")
    run.add_argument("--out", help="run folder (default: runs/<time>-<strategy>-<symbol>-<interval>)")
    run.add_argument("--quiet", action="store_true", help="no progress output")

    check = commands.add_parser("check", help="verify keys, clock offset, markets and permissions of a config")
    check.add_argument("--config", required=True, help="TOML config file naming the exchange and symbols")

    rep = commands.add_parser("replay", help="replay a recorded event stream and summarise it")
    rep.add_argument("file", help="stream file written by a run (events.tws)")
    rep.add_argument("--output", help="record the replay's events to this file")
    return parser


_LOG_DATEFMT = "%Y-%m-%d %H:%M:%S"


class _ConsoleFormatter(logging.Formatter):
    """Time-stamped lines; the live log's own sentences go without logger name (and level, at INFO) unless -v."""

    def __init__(self, *, verbose: bool) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt=_LOG_DATEFMT)
        self._verbose = verbose
        self._info = logging.Formatter("%(asctime)s %(message)s", datefmt=_LOG_DATEFMT)
        self._alert = logging.Formatter("%(asctime)s %(levelname)s %(message)s", datefmt=_LOG_DATEFMT)

    def format(self, record: logging.LogRecord) -> str:
        if self._verbose or record.name != "twinstar.live":
            return super().format(record)
        return (self._info if record.levelno <= logging.INFO else self._alert).format(record)


def _redacted_excepthook(exc_type: type[BaseException], exc: BaseException, tb: types.TracebackType | None) -> None:
    # ccxt's exception texts carry request URLs, and a signed URL carries its signature.
    sys.stderr.write(redact("".join(traceback.format_exception(exc_type, exc, tb))))


def _is_live_run(args: argparse.Namespace) -> bool:
    """Whether `args` start a live session, whose log lines are shown by default."""
    if args.command != "run" or not args.config:
        return False
    try:
        return not Config.load(args.config).paper
    except ConfigError:
        return False  # the command itself reports the broken file


def _configure_logging(verbose: bool, *, live: bool = False) -> None:
    """Log to stderr, redacted: warnings by default, twinstar's INFO too when live, DEBUG of everything with -v.

    -v shows ccxt's HTTP traffic through its logger; every record (ccxt's, twinstar's, warnings',
    tracebacks) passes the redacting filter on the root handlers on its way out.
    """
    handler = logging.StreamHandler()
    handler.setFormatter(_ConsoleFormatter(verbose=verbose))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler])
    if live and not verbose:
        logging.getLogger("twinstar").setLevel(logging.INFO)
    install_on_handlers()  # also on handlers someone installed before us, which basicConfig then kept
    logging.captureWarnings(True)  # warnings through the redacted handlers, not straight to stderr
    sys.excepthook = _redacted_excepthook


def _run_async(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    return uvloop.run(main())


def _install_stop_signals(kernel: Kernel) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, kernel.request_stop)


def _apply_overrides(config: Config, args: argparse.Namespace) -> Config:
    changes: dict[str, Any] = {}
    if args.strategy:
        changes["strategy"] = msgspec.structs.replace(config.strategy, name=args.strategy)
    if args.symbol:
        changes["symbols"] = [args.symbol]
    if args.interval:
        changes["interval"] = args.interval
    if args.data:
        changes["data"] = msgspec.structs.replace(config.data, path=args.data)
    return msgspec.structs.replace(config, **changes) if changes else config


async def _cmd_run(args: argparse.Namespace) -> int:
    config = _apply_overrides(Config.load(args.config) if args.config else Config(), args)
    if config.paper:
        return await _run_paper(config, args)
    return await _run_live(config)


async def _run_paper(config: Config, args: argparse.Namespace) -> int:
    from pathlib import Path

    from twinstar.candles import load_candles
    from twinstar.data import bundled_candles_path
    from twinstar.handlers.strategy import make_strategy
    from twinstar.report.terminal import Progress, print_table
    from twinstar.session import default_run_dir, run_paper

    make_strategy(config.strategy.name, dict(config.strategy.params))  # fail fast on a bad name
    source = Path(config.data.path) if config.data.path else bundled_candles_path()
    series = load_candles(source, interval=args.interval or None)
    if not args.interval:
        config = msgspec.structs.replace(config, interval=series.interval)
    run_dir = Path(args.out) if args.out else default_run_dir(config)
    venue = config.venues()[0]
    if not args.quiet:
        print(
            f"paper session: {config.strategy.name} on {venue.symbols[0]} {venue.interval}, "
            f"{series.frame.height:,} candles from {source.name}",
            file=sys.stderr,
        )
    progress = None if args.quiet else Progress(series.frame.height, "candles")
    result = await run_paper(config, series.frame, run_dir, on_progress=progress.update if progress else None)
    print_table(result.summary.rows(), title=f"{config.strategy.name} {venue.symbols[0]} {venue.interval}")
    print(f"run folder: {result.run_dir}")
    print(f"  events:  {result.stream}")
    print(f"  candles: {result.candles}")
    print(f"  stats:   {result.report.stats}")
    print(f"  trades:  {result.report.trades_parquet} (and .csv)")
    print(f"  chart:   {result.chart}")
    return 0


async def _run_live(config: Config) -> int:
    from twinstar.clock import LiveClock
    from twinstar.live import live_components

    clock = LiveClock()
    async with Kernel(config, clock=clock, components=live_components(config, clock)) as kernel:
        _install_stop_signals(kernel)
        print(
            f"twinstar: trading live on {', '.join(v.name for v in config.venues())} "
            "(Ctrl-C stops; stop-losses stay on the exchange)",
            file=sys.stderr,
        )
        await kernel.run_until_stopped()
    return 0


async def _cmd_replay(args: argparse.Namespace) -> int:
    from pathlib import Path

    from twinstar.clock import Clock
    from twinstar.kernel import Component
    from twinstar.replay import replay
    from twinstar.report import RunReport
    from twinstar.report.terminal import print_table
    from twinstar.session import sim_components

    reports: list[RunReport] = []

    def components(config: Config, clock: Clock) -> list[Component]:
        reports.append(RunReport(config.sim.initial_balance))  # the initial balance is the recorded config's
        return [*sim_components(config, clock), reports[-1]]

    summary = await replay(args.file, output=args.output, components=components)
    print(f"replayed {summary.input_events} input events -> {summary.output_events} events in {summary.elapsed_s:.2f}s")
    for name, count in summary.counts.items():
        print(f"  {name:<22} {count:>10}")
    if summary.torn_tail:
        print("warning: the stream's last frame was torn (the recording process died mid-write)")
    [report] = reports
    if args.output:  # the report goes beside the replay's own recording, never over the original run's
        statistics, files = report.write(Path(args.output).parent, title=f"replay of {args.file}")
        print_table(statistics.rows(), title="replay")
        print(f"  stats:   {files.stats}")
        print(f"  trades:  {files.trades_parquet} (and .csv)")
    else:
        print_table(report.statistics().rows(), title="replay")
    return 0


async def _cmd_check(args: argparse.Namespace) -> int:
    from twinstar.check import run_checks

    config = Config.load(args.config)
    checked = await run_checks(config)
    width = max(len(name) for _, rows in checked for name, _, _ in rows)
    for venue, rows in checked:
        print(f"{venue.name}: {', '.join(venue.symbols)}")
        for name, passed, detail in rows:
            print(f"  {name:<{width}}  {'OK    ' if passed else 'FAILED'}  {detail}")
    return 0 if all(passed for _, rows in checked for _, passed, _ in rows) else 1


COMMANDS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "run": _cmd_run,
    "replay": _cmd_replay,
    "check": _cmd_check,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose, live=_is_live_run(args))
    command = COMMANDS[args.command]
    try:
        return _run_async(lambda: command(args))
    except USER_ERRORS as exc:
        print(f"twinstar: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
