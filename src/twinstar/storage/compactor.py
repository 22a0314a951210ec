"""Run a compaction in a child process and wait for it without blocking the loop or starting a thread.

The child is a fresh interpreter (no fork of the trading process's state)
that loads only this package: the `twinstar` package ``__init__`` imports
every exchange adapter (ccxt, 0.6 s), so the child gets a bare stand-in for
it, as the storage modules need nothing from it. Its exit is polled, not
awaited through asyncio's child watcher, which on Python 3.11 runs a thread
per child.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final

import anyio
import msgspec

from twinstar.atomic import fsync_dir
from twinstar.storage.compact import EXIT_BUSY, REPORT_MARK, CompactionReport
from twinstar.storage.pieces import pieces_dir

log: Final = logging.getLogger("twinstar.storage")

_PACKAGE_DIR: Final = str(Path(__file__).parents[1])
_BOOT: Final = (
    "import sys, types\n"
    "package = types.ModuleType('twinstar')\n"
    "package.__path__ = [sys.argv[1]]\n"
    "sys.modules['twinstar'] = package\n"
    "from twinstar.storage.compact import main\n"
    "sys.exit(main(sys.argv[2:]))\n"
)
_POLL_S: Final = 0.02  # how soon a finished compaction is noticed; each poll is one waitpid


class CompactionFailedError(RuntimeError):
    """The compaction child did not finish its work; every piece is still in place."""


class CompactionBusyError(CompactionFailedError):
    """Another process (a compaction a killed writer left running) is compacting this root."""


def command(root: Path, upto: int) -> list[str]:
    """Return the command line of a child compacting pieces numbered `upto` or lower under `root`."""
    # -P: the working directory is not put on sys.path, so nothing there can shadow a module the child imports.
    return [sys.executable, "-P", "-c", _BOOT, _PACKAGE_DIR, str(root), str(upto)]


async def run_compaction(root: Path, upto: int) -> CompactionReport:
    """Compact under `root` in a child process; return its report or raise `CompactionFailedError`.

    Cancelling kills the child, which is safe at any instant (see `compact`).
    """
    env = {**os.environ, "POLARS_MAX_THREADS": "1"}  # one core at most, at low priority: it is never urgent
    with tempfile.TemporaryFile() as output:
        # Popen returns once the child has exec'd (vfork on Linux): 0.3 ms typical, 3 ms at most measured.
        child = subprocess.Popen(  # noqa: ASYNC220
            command(root, upto), stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT, env=env
        )
        try:
            # Polled: asyncio's child watcher would start a thread, and nothing here can set an Event.
            while child.poll() is None:  # noqa: ASYNC110
                await anyio.sleep(_POLL_S)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
        output.seek(0)
        lines = output.read().decode(errors="replace").splitlines()
    reports = [line.removeprefix(REPORT_MARK) for line in lines if line.startswith(REPORT_MARK)]
    chatter = [line for line in lines if not line.startswith(REPORT_MARK)]
    if child.returncode == 0 and reports:
        for line in chatter:
            log.warning("compaction: %s", line)
        try:
            return msgspec.json.decode(reports[-1], type=CompactionReport)
        except msgspec.DecodeError as exc:
            raise CompactionFailedError(f"unreadable report: {exc}") from None
    detail = chatter[-1] if chatter else "no output"
    if child.returncode == EXIT_BUSY:
        raise CompactionBusyError(detail)
    raise CompactionFailedError(f"exit status {child.returncode}: {detail}")


def remove_pieces(root: Path, report: CompactionReport) -> None:
    """Delete the pieces a finished compaction merged, oldest first, durably.

    Oldest first, stopping at the first failure: the pieces left are always the
    newest ones, and applying them again over the month files changes nothing.
    """
    for name in report.pieces:
        Path(name).unlink(missing_ok=True)
    fsync_dir(pieces_dir(root))
