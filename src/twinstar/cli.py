"""The `python -m twinstar` command line.

The only place that picks uvloop, installs signal handlers and configures
logging: an embedding application keeps all three for itself.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
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
from twinstar.candle_errors import CandleFileError
from twinstar.compiled import build_kind
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
    parser.add_argument("--version", action="version", version=f"twinstar {__version__} ({build_kind()})")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details, HTTP included (redacted)")
    parser.add_argument(
        "--log-format", choices=("text", "json"), default="text", help="log as text (default) or one JSON object a line"
    )
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
    run.add_argument("--force", action="store_true", help="replace an earlier run in a non-empty --out folder")
    run.add_argument("--gaps", choices=("refuse", "reset", "fill"), help="what a gap in --data does (default: reset)")
    run.add_argument("--columns", help="a headerless --data file's column names, e.g. time,open,high,low,close,volume")
    run.add_argument(
        "--format",
        choices=("auto", "candles", "lean", "trades", "binance-trades"),
        help="what --data holds (default: auto; trades become candles of --interval, 1m if not given)",
    )

    check = commands.add_parser("check", help="verify keys, clock offset, markets and permissions of a config")
    check.add_argument("--config", required=True, help="TOML config file naming the exchange and symbols")

    rep = commands.add_parser("replay", help="replay a recorded event stream and summarise it")
    rep.add_argument("file", help="stream file written by a run (events.tws)")
    rep.add_argument("--output", help="record the replay's events to this file")
    rep.add_argument(
        "--simulate",
        action="store_true",
        help="re-simulate a live recording's orders instead of answering them as the venue did live",
    )

    from twinstar.optimize.command import add_arguments as add_optimize_arguments

    add_optimize_arguments(commands.add_parser("optimize", help="search strategy parameters with Optuna"))

    from twinstar.download.command import add_arguments as add_download_arguments

    add_download_arguments(commands.add_parser("download", help="download candle history into the candle store"))

    from twinstar.portfolio.command import add_arguments as add_portfolio_arguments

    add_portfolio_arguments(commands.add_parser("portfolio", help="backtest several symbols in one account"))

    from twinstar.bridge.record_cmd import add_arguments as add_record_arguments

    add_record_arguments(commands.add_parser("record", help="record every kernel's events from NATS into one stream"))

    from twinstar.control.status_command import add_arguments as add_status_arguments

    add_status_arguments(commands.add_parser("status", help="show a running kernel's status (its control API)"))

    from twinstar.divergence.command import add_arguments as add_diff_arguments

    add_diff_arguments(commands.add_parser("diff", help="re-simulate a recording and show where it departs from it"))
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


def _configure_logging(verbose: bool, *, live: bool = False, log_format: str = "text") -> None:
    """Log to stderr, redacted: warnings by default, twinstar's INFO too when live, DEBUG of everything with -v.

    -v shows ccxt's HTTP traffic through its logger; every record (ccxt's, twinstar's, warnings',
    tracebacks) passes the redacting filter on the root handlers on its way out.
    """
    handler = logging.StreamHandler()
    _Notices.as_logs = log_format == "json"
    if _Notices.as_logs:
        from twinstar.control.json_log import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(_ConsoleFormatter(verbose=verbose))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, handlers=[handler])
    if live and not verbose:
        logging.getLogger("twinstar").setLevel(logging.INFO)
    install_on_handlers()  # also on handlers someone installed before us, which basicConfig then kept
    logging.captureWarnings(True)  # warnings through the redacted handlers, not straight to stderr
    sys.excepthook = _redacted_excepthook


class _Notices:
    """With --log-format json the CLI's own notices are log records too: one JSON object per line."""

    as_logs = False


def _notice(message: str, *, level: int = logging.INFO) -> None:
    """Tell the person running the command: a plain stderr line, or a log record with --log-format json."""
    if _Notices.as_logs:
        logging.getLogger("twinstar.cli").log(level, message)
    else:
        print(f"twinstar: {message}", file=sys.stderr)


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
        changes["data"] = msgspec.structs.replace(changes.get("data", config.data), path=args.data)
    if getattr(args, "gaps", None):
        changes["data"] = msgspec.structs.replace(changes.get("data", config.data), gaps=args.gaps)
    for option in ("columns", "format"):
        if value := getattr(args, option, None):
            changes["data"] = msgspec.structs.replace(changes.get("data", config.data), **{option: value})
    return msgspec.structs.replace(config, **changes) if changes else config


async def _cmd_run(args: argparse.Namespace) -> int:
    config = _apply_overrides(Config.load(args.config) if args.config else Config(), args)
    if config.paper:
        return await _run_paper(config, args)
    return await _run_live(config)


async def _run_paper(config: Config, args: argparse.Namespace) -> int:
    from twinstar.backtest.command import run_on_candles

    return await run_on_candles(config, args)


async def _run_live(config: Config) -> int:
    from twinstar.clock import LiveClock
    from twinstar.heap import settle_heap
    from twinstar.live import live_components

    clock = LiveClock()
    async with Kernel(config, clock=clock, components=live_components(config, clock)) as kernel:
        _install_stop_signals(kernel)
        settle_heap()  # markets are loaded and positions reconciled: start-up is done
        venues = ", ".join(v.name for v in config.venues())
        _notice(f"trading live on {venues} (Ctrl-C stops; stop-losses stay on the exchange)")
        await kernel.run_until_stopped()
    return 0


async def _cmd_replay(args: argparse.Namespace) -> int:
    from pathlib import Path

    from twinstar.clock import Clock
    from twinstar.kernel import Component
    from twinstar.replay import ReplayDivergedError, replay
    from twinstar.report import RunReport
    from twinstar.report.terminal import print_table
    from twinstar.session import sim_components

    reports: list[RunReport] = []

    def run_report(config: Config, clock: Clock) -> list[Component]:
        reports.append(RunReport(config.sim.initial_balance))  # the initial balance is the recorded config's
        return [reports[-1]]

    try:
        summary = await replay(
            args.file, output=args.output, components=sim_components, extra=run_report, simulate=args.simulate
        )
    except ReplayDivergedError as exc:
        print(f"error: {exc}")
        return 1
    print(f"replayed {summary.input_events} input events -> {summary.output_events} events in {summary.elapsed_s:.2f}s")
    print(f"  orders answered by: {summary.venue} venue")
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


async def _cmd_optimize(args: argparse.Namespace) -> int:
    from twinstar.optimize.command import run

    return await run(args)


async def _cmd_download(args: argparse.Namespace) -> int:
    from twinstar.download.command import run

    return await run(args)


async def _cmd_portfolio(args: argparse.Namespace) -> int:
    from twinstar.portfolio.command import run

    return await run(args)


async def _cmd_record(args: argparse.Namespace) -> int:
    from twinstar.bridge.record_cmd import run

    return await run(args)


async def _cmd_status(args: argparse.Namespace) -> int:
    from twinstar.control.status_command import run

    return await run(args)


async def _cmd_diff(args: argparse.Namespace) -> int:
    from twinstar.divergence.command import run

    return await run(args)


COMMANDS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "run": _cmd_run,
    "replay": _cmd_replay,
    "check": _cmd_check,
    "optimize": _cmd_optimize,
    "download": _cmd_download,
    "portfolio": _cmd_portfolio,
    "record": _cmd_record,
    "status": _cmd_status,
    "diff": _cmd_diff,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    # polars' allocator (jemalloc) keeps freed pages for seconds; a backtest's short-lived columns then
    # pile up in the peak (about 100 MiB on a million candles). Hand them back at once, unless set by the user.
    os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose, live=_is_live_run(args), log_format=args.log_format)
    command = COMMANDS[args.command]
    try:
        return _run_async(lambda: command(args))
    except USER_ERRORS as exc:
        _notice(f"error: {exc}", level=logging.ERROR)
        return 2
    except KeyboardInterrupt:
        return 130
