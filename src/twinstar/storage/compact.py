"""Compaction: merge the pieces into their month files. Runs in a child process (see `compactor`).

Each touched month file is rewritten from what it held plus the pieces' rows
(`merge`: the newest value wins) and replaced atomically. Pieces are never
deleted here: the writer deletes them once this process has exited with its
report, so a SIGKILL at any instant leaves every row in a month file or a
piece, and the next compaction simply does the work again.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import IO, Final

import msgspec
import polars as pl

from twinstar.atomic import ensure_dir, replace_atomically
from twinstar.storage.layout import (
    COMPACT_LOCK_NAME,
    one_line,
    read_month,
    series_dir,
    set_aside,
    write_month,
)
from twinstar.storage.pieces import list_pieces, read_piece
from twinstar.storage.schema import SERIES, merge

log: Final = logging.getLogger("twinstar.storage")

REPORT_MARK: Final = "twinstar-compaction-report "
EXIT_BUSY: Final = 3  # another compaction holds the root (one left running by a killed writer)


class CompactionReport(msgspec.Struct, frozen=True, kw_only=True):
    """What one compaction did, printed by the child for the writer."""

    pid: int  # of the process that did the work
    pieces: list[str]  # compacted pieces, oldest first: the writer deletes exactly these
    files: list[str]  # month files rewritten
    rows: int  # rows the pieces held
    set_aside: list[str]  # unreadable files renamed aside, never deleted


def compact(root: Path, upto: int) -> CompactionReport:
    """Merge pieces numbered `upto` or lower into their month files; return what was done."""
    aside: list[str] = []
    used: list[str] = []
    frames: list[pl.DataFrame] = []
    for seq, path in list_pieces(root):
        if seq > upto:
            break
        try:
            frames.append(read_piece(path))
        except (pl.exceptions.PolarsError, OSError) as exc:
            aside.append(str(set_aside(path, one_line(exc))))
            continue
        used.append(str(path))
    targets: dict[Path, list[pl.DataFrame]] = {}
    if frames:
        rows = pl.concat(frames)
        months = rows.select(pl.from_epoch("open_time_ms", time_unit="ms").dt.strftime("%Y-%m").alias("month"))
        for (month,), group in rows.with_columns(months).group_by("month", maintain_order=True):
            for key, part in group.drop("month").group_by(list(SERIES), maintain_order=True):
                exchange, symbol, interval = (str(k) for k in key)
                path = series_dir(root, exchange, symbol, interval) / f"{month}.parquet"
                targets.setdefault(path, []).append(part)  # colliding safe names share one file
    for path, parts in sorted(targets.items()):
        _rewrite(path, parts, aside)
    return CompactionReport(
        pid=os.getpid(),
        pieces=used,
        files=[str(p) for p in sorted(targets)],
        rows=sum(f.height for f in frames),
        set_aside=aside,
    )


def _rewrite(path: Path, parts: list[pl.DataFrame], aside: list[str]) -> None:
    layers = []
    if path.exists():
        try:
            layers.append(read_month(path))
        except (pl.exceptions.PolarsError, OSError) as exc:
            # Never overwrite what we cannot read: it may be the only copy of those candles.
            aside.append(str(set_aside(path, one_line(exc))))
    merged = merge([*layers, *parts])
    ensure_dir(path.parent)
    replace_atomically(path, lambda temp: write_month(merged, temp))


def _lock(root: Path) -> IO[bytes] | None:
    """Hold the root's compaction lock for this process's life; None if another process holds it."""
    handle = (root / COMPACT_LOCK_NAME).open("ab")
    if sys.platform == "win32":
        return handle
    import fcntl

    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _yield_cpu() -> None:
    """Run only when a core is idle, so the trading loop never waits for this process."""
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):  # Linux: preempted at once by any task
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    elif hasattr(os, "nice"):
        os.nice(19)


def main(argv: list[str]) -> int:
    """Entry of the child: ``ROOT UPTO``; prints one report line, returns the exit status."""
    root, upto = Path(argv[0]), int(argv[1])
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _yield_cpu()
    lock = _lock(root)
    if lock is None:
        print(f"another compaction is running under {root}", flush=True)
        return EXIT_BUSY
    with lock:
        report = compact(root, upto)
    print(REPORT_MARK + msgspec.json.encode(report).decode(), flush=True)
    return 0
