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
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

import uvloop

from twinstar import __version__
from twinstar.bus.record import StreamFormatError
from twinstar.config import ConfigError
from twinstar.kernel import Kernel

# Errors a user causes (bad file, bad config): one line on stderr, exit code 2.
USER_ERRORS: tuple[type[Exception], ...] = (ConfigError, StreamFormatError)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every sub-command."""
    parser = _Parser(prog="twinstar", description="Asyncio trading kernel for crypto exchanges.")
    parser.add_argument("--version", action="version", version=f"twinstar {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    run = commands.add_parser("run", help="run a trading kernel (paper session on bundled data by default)")
    run.add_argument("--config", help="TOML config file (default: paper trading on bundled data)")

    rep = commands.add_parser("replay", help="replay a recorded event stream and summarise it")
    rep.add_argument("file", help="stream file written by a run (events.tws)")
    rep.add_argument("--output", help="record the replay's events to this file")
    return parser


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _run_async(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    return uvloop.run(main())


def _install_stop_signals(kernel: Kernel) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, kernel.request_stop)


async def _cmd_run(args: argparse.Namespace) -> int:
    from twinstar.config import Config

    config = Config.load(args.config) if args.config else Config()
    async with Kernel(config) as kernel:
        _install_stop_signals(kernel)
        print("twinstar: kernel running with no handlers (press Ctrl-C to stop)", file=sys.stderr)
        await kernel.run_until_stopped()
    return 0


async def _cmd_replay(args: argparse.Namespace) -> int:
    from twinstar.replay import replay

    summary = await replay(args.file, output=args.output)
    print(f"replayed {summary.input_events} input events -> {summary.output_events} events in {summary.elapsed_s:.2f}s")
    for name, count in summary.counts.items():
        print(f"  {name:<22} {count:>10}")
    if summary.torn_tail:
        print("warning: the stream's last frame was torn (the recording process died mid-write)")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, int]]] = {
    "run": _cmd_run,
    "replay": _cmd_replay,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    command = COMMANDS[args.command]
    try:
        return _run_async(lambda: command(args))
    except USER_ERRORS as exc:
        print(f"twinstar: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
