"""Closed candles to disk without stalling the loop: small appended pieces, compacted in a child process.

A flush writes every buffered candle of every series as one small Arrow
piece (`twinstar.storage.pieces`): one file and one fsync, O(new candles),
never a read of what is stored. A child process (`twinstar.storage.compact`)
merges pieces into month Parquet files, the hive layout dataset readers
expect (`twinstar.storage.layout`), when `compact_every` pieces have piled up
and at `stop`; the writer deletes the pieces once the child reported them
merged. Readers (`load`, `history`, `stored_series`) apply month files, then
pieces, then the unflushed buffer, and see one deduplicated, sorted series
(`twinstar.storage.schema.merge`: the newest value of a candle wins).

A SIGKILL at any instant loses nothing flushed: a piece or month file appears
only whole (`twinstar.atomic`), and a piece is deleted only after its rows are
durable in a month file. A file that cannot be read is renamed aside to
``<name>.corrupt-<n>`` and logged, never overwritten. Candles with NaN,
infinite or non-positive prices are refused: logged and reported as
`CandleRejected`, never stored.
"""

from __future__ import annotations

import collections
import logging
import math
import sys
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import IO, Final

import anyio
import polars as pl

from twinstar.atomic import ensure_dir, remove_stale_temps
from twinstar.bus.bus import Bus
from twinstar.bus.events import CandleClosed, CandleRejected
from twinstar.storage.compact import CompactionReport
from twinstar.storage.compactor import CompactionBusyError, CompactionFailedError, remove_pieces, run_compaction
from twinstar.storage.layout import (
    LOCK_NAME,
    month_files,
    month_of,
    one_line,
    read_month,
    safe_name,
    series_dir,
    series_dirs,
    set_aside,
)
from twinstar.storage.pieces import list_pieces, pieces_dir, read_piece, write_piece
from twinstar.storage.reading import read_layers
from twinstar.storage.schema import KEY, SCHEMA, SERIES, Row, SeriesKey, empty, merge, rows_frame

__all__ = [
    "KEY",
    "LOCK_NAME",
    "SCHEMA",
    "CandleStorage",
    "SeriesKey",
    "StorageLockedError",
    "candle_problem",
    "month_of",
    "safe_name",
]

log: Final = logging.getLogger("twinstar.storage")


class StorageLockedError(RuntimeError):
    """Another process already writes candles under the same storage root."""


def candle_problem(candle: CandleClosed) -> str | None:
    """Return why `candle` must not be stored, or None if it is sound."""
    prices = {"open": candle.open, "high": candle.high, "low": candle.low, "close": candle.close}
    for name, value in prices.items():
        if not math.isfinite(value):
            return f"{name} is {value}"
        if value <= 0:
            return f"{name} is not positive ({value})"
    if not math.isfinite(candle.volume) or candle.volume < 0:
        return f"volume is {candle.volume}"
    if candle.high < candle.low:
        return f"high {candle.high} is below low {candle.low}"
    if candle.open_time_ms < 0:
        return f"open_time_ms is negative ({candle.open_time_ms})"
    return None


class CandleStorage:
    """Component: stores every `CandleClosed` (flush pieces, compacted into month Parquet files).

    Candles are buffered and flushed every `flush_every` candles and in
    `stop`. Once `compact_every` pieces are on disk, `run` (the kernel starts
    it) compacts them in a child process; `stop` compacts what is left, so a
    stopped store is month files only. With `preload` > 0, `start` keeps the
    last `preload` stored candles of every series in memory (and every new one
    after them), so a strategy can warm up from `history` without the disk.
    One process writes under one root at a time (a lock file enforces it).
    """

    def __init__(self, root: str | Path, *, flush_every: int = 500, preload: int = 0, compact_every: int = 32) -> None:
        self.root = Path(root)
        self.flush_every = max(1, flush_every)
        self.preload = max(0, preload)
        self.compact_every = max(1, compact_every)
        self.written = 0
        self.rejected = 0
        self.compactions = 0
        self.last_compaction: CompactionReport | None = None
        self.set_aside: list[Path] = []
        self._pending: dict[SeriesKey, list[Row]] = collections.defaultdict(list)
        self._buffered = 0
        self._tails: dict[SeriesKey, collections.deque[Row]] = {}
        self._bus: Bus | None = None
        self._lock_file: IO[bytes] | None = None
        self._pieces: list[int] | None = None  # numbers of the pieces on disk, once known
        self._next_seq = 1
        self._compact_at = self.compact_every  # piece count that wakes `run`
        self._wanted: anyio.Event | None = None  # set when `run` should compact
        self._compacting: anyio.Event | None = None  # set when the running compaction ends

    # -- component ---------------------------------------------------------

    def attach(self, bus: Bus) -> None:
        """Subscribe to closed candles."""
        self._bus = bus
        bus.subscribe(CandleClosed, self.handle, name="CandleStorage", eager=False)

    async def start(self) -> None:
        """Lock the root, clear crash leftovers, set aside unreadable files, preload history."""
        ensure_dir(self.root)
        self._acquire_lock()
        stale = remove_stale_temps(self.root)
        if stale:
            log.warning("removed %d unfinished temp files a crashed writer left under %s", len(stale), self.root)
        for folder in series_dirs(self.root):
            for path in month_files(folder):
                self._check(path, pl.read_parquet_schema)
        for _, path in list_pieces(self.root):
            self._check(path, lambda p: read_piece(p).schema)  # a stream has no footer; a piece is small
        ensure_dir(pieces_dir(self.root))
        self._known_pieces()
        if self.preload:
            self._preload()

    def handle(self, candle: CandleClosed) -> Awaitable[None] | None:
        """Buffer one candle (or refuse a bad one); flush when the batch is full."""
        problem = candle_problem(candle)
        if problem is not None:
            return self._refuse(candle, problem)
        series = (candle.exchange, candle.symbol, candle.interval)
        row: Row = (candle.open_time_ms, candle.open, candle.high, candle.low, candle.close, candle.volume)
        self._pending[series].append(row)
        self._buffered += 1
        if self.preload:
            self._remember(series, row)
        if self._buffered >= self.flush_every:
            self.flush()
        return None

    async def run(self) -> None:
        """Compact in a child process each time `compact_every` pieces have piled up (until cancelled)."""
        while True:
            self._wanted = anyio.Event()
            if len(self._known_pieces()) < self._compact_at:
                await self._wanted.wait()
            await self.compact()

    async def stop(self) -> None:
        """Flush what is buffered, compact every piece, release the root."""
        try:
            self.flush()
            if self._buffered:
                log.error("%d candles could not be written to %s and are lost", self._buffered, self.root)
            await self.compact()
        finally:
            self._release_lock()

    # -- writing -----------------------------------------------------------

    def path_for(self, exchange: str, symbol: str, interval: str, month: str) -> Path:
        """Return the month file holding one series' compacted candles of one UTC month (``YYYY-MM``)."""
        return self.series_dir(exchange, symbol, interval) / f"{month}.parquet"

    def series_dir(self, exchange: str, symbol: str, interval: str) -> Path:
        """Return the folder holding one series' month files."""
        return series_dir(self.root, exchange, symbol, interval)

    def flush(self) -> int:
        """Write every buffered candle as one new piece; return how many candles it holds.

        If the write fails (disk full, permissions) the candles stay buffered
        and are retried at the next flush; the failure is logged, never
        raised, so the kernel keeps trading.
        """
        if not self._buffered:
            return 0
        pieces = self._known_pieces()
        seq = self._next_seq
        self._next_seq += 1  # never reused, even after a failed write: a name on disk is never replaced
        try:
            write_piece(self.root, seq, self._pending)
        except OSError as exc:
            log.error("cannot write %d candles under %s, keeping them buffered: %s", self._buffered, self.root, exc)
            return 0
        written, self._buffered = self._buffered, 0
        self._pending.clear()
        self.written += written
        pieces.append(seq)
        if self._wanted is not None and len(pieces) >= self._compact_at:
            self._wanted.set()
        return written

    async def compact(self) -> CompactionReport | None:
        """Merge every piece on disk into its month files in a child process; wait for it.

        Return the child's report, or None when there was nothing to do or it
        failed (logged; the pieces stay and the next compaction retries).
        """
        while self._compacting is not None:
            await self._compacting.wait()  # one compaction at a time; then compact what is left
        pieces = self._known_pieces()
        if not pieces:
            return None
        done = self._compacting = anyio.Event()
        try:
            report = await run_compaction(self.root, pieces[-1])
        except CompactionBusyError as exc:
            log.warning("compaction under %s postponed: %s", self.root, exc)
            report = None
        except (CompactionFailedError, OSError) as exc:
            log.error("compaction under %s failed, its pieces stay: %s", self.root, exc)
            report = None
        finally:
            self._compacting = None
            done.set()
        if report is None:
            self._compact_at = len(pieces) + self.compact_every  # retry later, not at every flush
            return None
        try:
            remove_pieces(self.root, report)
        except OSError as exc:
            log.error("cannot delete compacted pieces under %s (they are merged, so harmless): %s", self.root, exc)
        self._pieces = [seq for seq, _ in list_pieces(self.root)]
        self._compact_at = self.compact_every
        self.compactions += 1
        self.last_compaction = report
        self.set_aside.extend(Path(p) for p in report.set_aside)
        return report

    def _known_pieces(self) -> list[int]:
        if self._pieces is None:  # also when flushing without `start`: never reuse a piece's number
            self._pieces = [seq for seq, _ in list_pieces(self.root)]
            self._next_seq = max(self._pieces, default=0) + 1
        return self._pieces

    def _refuse(self, candle: CandleClosed, problem: str) -> Awaitable[None] | None:
        self.rejected += 1
        log.error(
            "refusing to store candle %s %s %s %d: %s",
            candle.exchange,
            candle.symbol,
            candle.interval,
            candle.open_time_ms,
            problem,
        )
        bus = self._bus
        if bus is None or bus.closed:
            return None
        return bus.emit(
            CandleRejected(
                ts_ns=bus.clock.now_ns(),
                exchange=candle.exchange,
                symbol=candle.symbol,
                interval=candle.interval,
                open_time_ms=candle.open_time_ms,
                reason=f"storage: {problem}",
            )
        )

    def _check(self, path: Path, read_schema: Callable[[Path], Mapping[str, object]]) -> None:
        """Set `path` aside if its footer is unreadable or lacks a column (cheap even for years of files)."""
        try:
            schema = read_schema(path)
        except (pl.exceptions.PolarsError, OSError) as exc:
            self.set_aside.append(set_aside(path, one_line(exc)))
            return
        if missing := [name for name in SCHEMA if name not in schema]:
            self.set_aside.append(set_aside(path, f"missing columns {missing}"))

    # -- reading -----------------------------------------------------------

    def load(
        self,
        exchange: str,
        symbol: str,
        interval: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> pl.DataFrame:
        """Return one series' candles with open time in ``[start_ms, end_ms)``, sorted, unique.

        Reads only the month files the range touches, every piece, and the
        candles still buffered. An unreadable file is skipped and logged (a
        compaction or the next start sets it aside).
        """
        first = month_of(start_ms) if start_ms is not None else ""
        last = month_of(end_ms - 1) if end_ms is not None else "~"  # "~" sorts after every digit
        folder = self.series_dir(exchange, symbol, interval)

        def read_months() -> list[pl.DataFrame]:
            frames = []
            for path in month_files(folder):
                if first <= path.stem <= last:
                    try:
                        frames.append(read_month(path))
                    except (pl.exceptions.PolarsError, OSError) as exc:
                        log.error("skipping unreadable candle file %s: %s", path, one_line(exc))
            return frames

        series = (exchange, symbol, interval)
        layers = read_layers(self.root, read_months)
        if rows := self._pending.get(series):
            layers.append(rows_frame(series, rows))
        frame = pl.concat(layers) if layers else empty()
        keep = (pl.col("exchange") == exchange) & (pl.col("symbol") == symbol) & (pl.col("interval") == interval)
        if start_ms is not None:
            keep &= pl.col("open_time_ms") >= start_ms
        if end_ms is not None:
            keep &= pl.col("open_time_ms") < end_ms
        return merge([frame.filter(keep)])

    def history(self, exchange: str, symbol: str, interval: str, limit: int | None = None) -> pl.DataFrame:
        """Return the last `limit` (default: all kept) candles of a series from memory, oldest first.

        Holds up to `preload` candles per series: those stored before `start`
        and every candle handled since. Empty when `preload` is 0.
        """
        tail = self._tails.get((exchange, symbol, interval))
        if not tail:
            return empty()
        rows = list(tail)
        if limit is not None:
            rows = rows[-limit:] if limit > 0 else []
        return rows_frame((exchange, symbol, interval), rows)

    def stored_series(self) -> list[SeriesKey]:
        """Return every (exchange, symbol, interval) stored on disk (month files or pieces), sorted."""
        found: set[SeriesKey] = set()

        def read_months() -> list[pl.DataFrame]:
            frames = []
            for folder in series_dirs(self.root):
                for path in month_files(folder):
                    try:
                        with path.open("rb") as handle:  # one inode, even if a compaction replaces it now
                            frames.append(pl.read_parquet(handle, columns=list(SERIES)).unique())
                    except (pl.exceptions.PolarsError, OSError):
                        continue
                    break  # one month names the series; a collision of safe names is rare enough to not scan all
            return frames

        for frame in read_layers(self.root, read_months):
            found.update((str(e), str(s), str(i)) for e, s, i in frame.select(SERIES).unique().iter_rows())
        return sorted(found)

    def _remember(self, series: SeriesKey, row: Row) -> None:
        tail = self._tails.get(series)
        if tail is None:
            tail = self._tails[series] = collections.deque(maxlen=self.preload)
        if not tail or row[0] > tail[-1][0]:
            tail.append(row)  # the usual case: candles arrive in order
            return
        # A late or repeated candle: rebuild in order, the newest value winning.
        by_time = {r[0]: r for r in tail}
        by_time[row[0]] = row
        tail.clear()
        tail.extend(by_time[t] for t in sorted(by_time)[-self.preload :])

    def _preload(self) -> None:
        def read_months() -> list[pl.DataFrame]:
            frames: list[pl.DataFrame] = []
            for folder in series_dirs(self.root):
                count = 0
                for path in reversed(month_files(folder)):  # newest months until `preload` rows are in
                    try:
                        frame = read_month(path)
                    except (pl.exceptions.PolarsError, OSError) as exc:
                        self.set_aside.append(set_aside(path, one_line(exc)))
                        continue
                    frames.append(frame)
                    count += frame.height
                    if count >= self.preload:
                        break
            return frames

        merged = merge(read_layers(self.root, read_months))
        for key, group in merged.group_by(list(SERIES)):
            exchange, symbol, interval = (str(k) for k in key)
            rows = group.sort("open_time_ms").tail(self.preload).select(list(SCHEMA)[3:]).iter_rows()
            self._tails[exchange, symbol, interval] = collections.deque(rows, maxlen=self.preload)

    # -- single writer -----------------------------------------------------

    def _acquire_lock(self) -> None:
        if self._lock_file is not None or sys.platform == "win32":
            return
        import fcntl

        handle = (self.root / LOCK_NAME).open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            # Two writers would number their pieces alike and delete each other's after compacting.
            raise StorageLockedError(f"another process is storing candles under {self.root}") from None
        self._lock_file = handle  # the OS releases the lock if this process dies

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __repr__(self) -> str:
        pieces = len(self._pieces) if self._pieces is not None else "?"
        return (
            f"CandleStorage(root={str(self.root)!r}, buffered={self._buffered}, written={self.written}, "
            f"pieces={pieces}, compactions={self.compactions}, rejected={self.rejected}, "
            f"set_aside={len(self.set_aside)})"
        )
