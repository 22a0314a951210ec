"""Where candles live under a storage root, and how one file is read or set aside.

Layout (hive style: polars, pyarrow and duckdb read the month files as a dataset)::

    root/exchange=<ex>/symbol=<safe symbol>/interval=<iv>/<YYYY-MM>.parquet   compacted months
    root/_pieces/piece-<seq>.arrows                                          one per flush, all series

The pieces folder starts with ``_`` and holds no ``.parquet`` file, so dataset
readers of the month files never see a candle twice.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import polars as pl

from twinstar.atomic import fsync_dir, is_temp
from twinstar.storage.schema import conform

log: Final = logging.getLogger("twinstar.storage")

LOCK_NAME: Final = ".twinstar-storage.lock"  # held by the one writing process
COMPACT_LOCK_NAME: Final = ".twinstar-compact.lock"  # held by the one compacting process
PIECES_DIR: Final = "_pieces"
_DAY_MS: Final = 86_400_000


def safe_name(text: str) -> str:
    """Make `text` usable as one path component: BTC/USDT:USDT -> BTC-USDT-USDT.

    Letters, digits, ``.``, ``_`` and ``-`` stay; everything else (``/``,
    ``:``, ``=``, spaces) becomes ``-``. A leading dot is prefixed with ``_``
    so the result is never hidden, ``.`` or ``..``.
    """
    cleaned = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "-" for ch in text)
    return f"_{cleaned}" if not cleaned or cleaned.startswith(".") else cleaned


@functools.lru_cache(maxsize=4096)
def _month_of_day(day: int) -> str:
    return dt.datetime.fromtimestamp(day * 86_400, tz=dt.UTC).strftime("%Y-%m")


def month_of(open_time_ms: int) -> str:
    """Return the UTC month (``YYYY-MM``) a candle opening at `open_time_ms` is filed under."""
    # Cached per day: a feed files thousands of candles per day under one label.
    return _month_of_day(open_time_ms // _DAY_MS)


def series_dir(root: Path, exchange: str, symbol: str, interval: str) -> Path:
    """Return the folder holding one series' month files."""
    return root / f"exchange={safe_name(exchange)}" / f"symbol={safe_name(symbol)}" / f"interval={safe_name(interval)}"


def series_dirs(root: Path) -> Iterator[Path]:
    """Yield every series folder below `root`, sorted."""
    if root.is_dir():
        yield from sorted(p for p in root.glob("exchange=*/symbol=*/interval=*") if p.is_dir())


def month_files(folder: Path) -> list[Path]:
    """Committed month files below `folder`, oldest first; temp and set-aside files never match."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.rglob("*.parquet") if not is_temp(p)), key=lambda p: (p.parent, p.name))


def read_month(path: Path) -> pl.DataFrame:
    """Read one month file in the storage schema; raise if it is unreadable or foreign.

    Read through one open handle: a compaction may replace the file meanwhile,
    and a reader that opened the path twice could mix the old file and the new.
    """
    with path.open("rb") as handle:
        return conform(pl.read_parquet(handle))


def write_month(frame: pl.DataFrame, path: Path) -> None:
    """Write `frame` as a month file at `path` (a temp path of `replace_atomically`)."""
    frame.write_parquet(path, compression="zstd", statistics=True)


def set_aside(path: Path, reason: str) -> Path:
    """Rename an unreadable file to the first free ``<name>.corrupt-<n>``; return the new path."""
    n = 1
    while (aside := path.with_name(f"{path.name}.corrupt-{n}")).exists():
        n += 1
    os.rename(path, aside)
    fsync_dir(path.parent)
    log.error("unreadable candle file %s set aside as %s (%s); no data was deleted", path, aside.name, reason)
    return aside


def one_line(exc: BaseException) -> str:
    """Return the first line of an error's message (polars errors span many)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
