"""Closed candles to Parquet: partitioned, atomic, deduplicated, batched.

Layout (hive style, readable by polars/pyarrow/duckdb as a dataset)::

    root/exchange=<ex>/symbol=<safe symbol>/interval=<iv>/<YYYY-MM>.parquet

One file per series and UTC month keeps every flush small: a flush rewrites
only the months that got new candles. The symbol is made path-safe
(``BTC/USDT:USDT`` -> ``BTC-USDT-USDT``); the real exchange, symbol and
interval are columns of every row, and deduplication keys on them, so two
symbols that map to the same folder name still never overwrite each other.

Every rewrite merges the buffered candles with what is on disk, drops
duplicate open times (the newest value wins: a closed candle should not change,
so a differing later value is the exchange's correction, e.g. a REST backfill
replacing a websocket candle), sorts by open time, and replaces the file
atomically (`twinstar.atomic`). A month file that cannot be read is renamed
aside to ``<name>.corrupt-<n>`` and logged, never overwritten, so no stored
candle is lost silently. Candles with NaN, infinite or non-positive prices
are refused: logged and reported as `CandleRejected`, never stored.

All file I/O is synchronous and runs on the event loop, by design (no
threads): `flush_every` bounds how many candles, hence how many month files,
one flush handles, and so how long one call blocks the loop.
"""

from __future__ import annotations

import collections
import datetime as dt
import functools
import logging
import math
import os
import sys
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import IO, Final, TypeAlias

import polars as pl

from twinstar.atomic import ensure_dir, fsync_dir, is_temp, remove_stale_temps, replace_atomically
from twinstar.bus.bus import Bus
from twinstar.bus.events import CandleClosed, CandleRejected

log: Final = logging.getLogger("twinstar.storage")

SCHEMA: Final = pl.Schema(
    {
        "exchange": pl.String,
        "symbol": pl.String,
        "interval": pl.String,
        "open_time_ms": pl.Int64,
        "open": pl.Float64,
        "high": pl.Float64,
        "low": pl.Float64,
        "close": pl.Float64,
        "volume": pl.Float64,
    }
)
# A candle is unique per series and open time; the series columns are part of
# the key because path-safe names may collide (BTC/USDT and BTC-USDT).
_ROW_SCHEMA: Final = pl.Schema({name: SCHEMA[name] for name in list(SCHEMA)[3:]})
KEY: Final = ("exchange", "symbol", "interval", "open_time_ms")
LOCK_NAME: Final = ".twinstar-storage.lock"

SeriesKey: TypeAlias = tuple[str, str, str]  # exchange, symbol, interval
_Row: TypeAlias = tuple[int, float, float, float, float, float]  # open_time_ms, o, h, l, c, v
_DAY_MS: Final = 86_400_000


class StorageLockedError(RuntimeError):
    """Another process already writes candles under the same storage root."""


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


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMA)


def _write_parquet(frame: pl.DataFrame, path: Path) -> None:
    frame.write_parquet(path, compression="zstd", statistics=True)


def _set_aside(path: Path, reason: str) -> Path:
    """Rename an unreadable file to the first free ``<name>.corrupt-<n>``; return the new path."""
    n = 1
    while (aside := path.with_name(f"{path.name}.corrupt-{n}")).exists():
        n += 1
    os.rename(path, aside)
    fsync_dir(path.parent)
    log.error("unreadable candle file %s set aside as %s (%s); no data was deleted", path, aside.name, reason)
    return aside


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class CandleStorage:
    """Component: stores every `CandleClosed` in month Parquet files.

    Candles are buffered and flushed every `flush_every` candles and in
    `stop`. With `preload` > 0, `start` keeps the last `preload` stored
    candles of every series in memory (and every new one after them), so a
    strategy can warm up from `history` without touching the disk.
    One process writes under one root at a time (a lock file enforces it).
    """

    def __init__(self, root: str | Path, *, flush_every: int = 500, preload: int = 0) -> None:
        self.root = Path(root)
        self.flush_every = max(1, flush_every)
        self.preload = max(0, preload)
        self.written = 0
        self.rejected = 0
        self.set_aside: list[Path] = []
        self._pending: dict[tuple[SeriesKey, str], list[_Row]] = collections.defaultdict(list)
        self._buffered = 0
        self._tails: dict[SeriesKey, collections.deque[_Row]] = {}
        self._bus: Bus | None = None
        self._lock_file: IO[bytes] | None = None

    # -- component ---------------------------------------------------------

    def attach(self, bus: Bus) -> None:
        """Subscribe to closed candles."""
        self._bus = bus
        bus.subscribe(CandleClosed, self.handle, name="CandleStorage")

    async def start(self) -> None:
        """Lock the root, clear crash leftovers, set aside unreadable files, preload history."""
        ensure_dir(self.root)
        self._acquire_lock()
        stale = remove_stale_temps(self.root)
        if stale:
            log.warning("removed %d unfinished temp files a crashed writer left under %s", len(stale), self.root)
        for path in self._month_files(self.root):
            try:
                # The footer is enough to catch a truncated or foreign file; cheap even for years of files.
                schema = pl.read_parquet_schema(path)
            except (pl.exceptions.PolarsError, OSError) as exc:
                self.set_aside.append(_set_aside(path, _one_line(exc)))
                continue
            if missing := [name for name in SCHEMA if name not in schema]:
                self.set_aside.append(_set_aside(path, f"missing columns {missing}"))
        if self.preload:
            self._preload()

    def handle(self, candle: CandleClosed) -> Awaitable[None] | None:
        """Buffer one candle (or refuse a bad one); flush when the batch is full."""
        problem = candle_problem(candle)
        if problem is not None:
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
            if bus is not None and not bus.closed:
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
            return None
        series = (candle.exchange, candle.symbol, candle.interval)
        row: _Row = (candle.open_time_ms, candle.open, candle.high, candle.low, candle.close, candle.volume)
        self._pending[series, month_of(candle.open_time_ms)].append(row)
        self._buffered += 1
        if self.preload:
            self._remember(series, row)
        if self._buffered >= self.flush_every:
            self.flush()
        return None

    async def stop(self) -> None:
        """Flush what is buffered and release the root."""
        try:
            self.flush()
            if self._buffered:
                log.error("%d candles could not be written to %s and are lost", self._buffered, self.root)
        finally:
            self._release_lock()

    # -- writing -----------------------------------------------------------

    def path_for(self, exchange: str, symbol: str, interval: str, month: str) -> Path:
        """Return the file holding one series' candles of one UTC month (``YYYY-MM``)."""
        return self.series_dir(exchange, symbol, interval) / f"{month}.parquet"

    def series_dir(self, exchange: str, symbol: str, interval: str) -> Path:
        """Return the folder holding one series' month files."""
        return (
            self.root
            / f"exchange={safe_name(exchange)}"
            / f"symbol={safe_name(symbol)}"
            / f"interval={safe_name(interval)}"
        )

    def flush(self) -> int:
        """Merge buffered candles into their month files; return how many files were rewritten.

        A month whose write fails (disk full, permissions) stays buffered and
        is retried at the next flush; the failure is logged, never raised, so
        the kernel keeps trading.
        """
        rewritten = 0
        for key in list(self._pending):
            (exchange, symbol, interval), month = key
            rows = self._pending[key]
            path = self.path_for(exchange, symbol, interval, month)
            try:
                ensure_dir(path.parent)
                merged = self._merge(path, exchange, symbol, interval, rows)
                replace_atomically(path, functools.partial(_write_parquet, merged))
            except (OSError, pl.exceptions.PolarsError) as exc:
                log.error("cannot write %d candles to %s, keeping them buffered: %s", len(rows), path, _one_line(exc))
                continue
            del self._pending[key]
            self._buffered -= len(rows)
            self.written += len(rows)
            rewritten += 1
        return rewritten

    def _merge(self, path: Path, exchange: str, symbol: str, interval: str, rows: list[_Row]) -> pl.DataFrame:
        new = self._rows_frame((exchange, symbol, interval), rows)
        old = self._read_for_merge(path)
        frame = new if old is None else pl.concat([old, new])
        # keep="last": the buffered candle came after the stored one (see module docstring).
        return frame.unique(list(KEY), keep="last", maintain_order=True).sort("open_time_ms", "symbol")

    def _read_for_merge(self, path: Path) -> pl.DataFrame | None:
        if not path.exists():
            return None
        try:
            return _read_month(path)
        except (pl.exceptions.PolarsError, OSError) as exc:
            # Never overwrite what we cannot read: it may be the only copy of those candles.
            self.set_aside.append(_set_aside(path, _one_line(exc)))
            return None

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

        Reads only the month files the range touches and includes candles
        still buffered. An unreadable file is skipped and logged (a flush or
        the next start sets it aside).
        """
        first = month_of(start_ms) if start_ms is not None else ""
        last = month_of(end_ms - 1) if end_ms is not None else "~"  # "~" sorts after every digit
        frames = []
        folder = self.series_dir(exchange, symbol, interval)
        for path in self._month_files(folder):
            if not first <= path.stem <= last:
                continue
            try:
                frames.append(_read_month(path))
            except (pl.exceptions.PolarsError, OSError) as exc:
                log.error("skipping unreadable candle file %s: %s", path, _one_line(exc))
        series = (exchange, symbol, interval)
        for (key, _month), rows in self._pending.items():
            if key == series:
                frames.append(self._rows_frame(series, rows))
        if not frames:
            return _empty()
        frame = pl.concat(frames).filter(
            (pl.col("exchange") == exchange) & (pl.col("symbol") == symbol) & (pl.col("interval") == interval)
        )
        if start_ms is not None:
            frame = frame.filter(pl.col("open_time_ms") >= start_ms)
        if end_ms is not None:
            frame = frame.filter(pl.col("open_time_ms") < end_ms)
        return frame.unique(list(KEY), keep="last", maintain_order=True).sort("open_time_ms")

    def history(self, exchange: str, symbol: str, interval: str, limit: int | None = None) -> pl.DataFrame:
        """Return the last `limit` (default: all kept) candles of a series from memory, oldest first.

        Holds up to `preload` candles per series: those stored before `start`
        and every candle handled since. Empty when `preload` is 0.
        """
        tail = self._tails.get((exchange, symbol, interval))
        if not tail:
            return _empty()
        rows = list(tail)
        if limit is not None:
            rows = rows[-limit:] if limit > 0 else []
        return self._rows_frame((exchange, symbol, interval), rows)

    def stored_series(self) -> list[SeriesKey]:
        """Return every (exchange, symbol, interval) with month files on disk, sorted."""
        found: set[SeriesKey] = set()
        for folder in self._series_dirs():
            for path in self._month_files(folder):
                try:
                    frame = pl.read_parquet(path, columns=["exchange", "symbol", "interval"]).unique()
                except (pl.exceptions.PolarsError, OSError):
                    continue
                found.update((str(e), str(s), str(i)) for e, s, i in frame.iter_rows())
                break  # one month names the series; a collision of safe names is rare enough to not scan all
        return sorted(found)

    @staticmethod
    def _rows_frame(series: SeriesKey, rows: list[_Row]) -> pl.DataFrame:
        exchange, symbol, interval = series
        body = pl.DataFrame(rows, schema=_ROW_SCHEMA, orient="row")
        return body.select(
            pl.lit(exchange).alias("exchange"),
            pl.lit(symbol).alias("symbol"),
            pl.lit(interval).alias("interval"),
            pl.all(),
        ).cast(SCHEMA)

    def _remember(self, series: SeriesKey, row: _Row) -> None:
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
        for folder in self._series_dirs():
            frames: list[pl.DataFrame] = []
            count = 0
            for path in reversed(self._month_files(folder)):
                try:
                    frame = _read_month(path)
                except (pl.exceptions.PolarsError, OSError) as exc:
                    self.set_aside.append(_set_aside(path, _one_line(exc)))
                    continue
                frames.append(frame)
                count += frame.height
                if count >= self.preload:
                    break
            if not frames:
                continue
            merged = pl.concat(frames).sort("open_time_ms")
            for (exchange, symbol, interval), group in merged.group_by(["exchange", "symbol", "interval"]):
                series = (str(exchange), str(symbol), str(interval))
                rows = group.tail(self.preload).select(list(SCHEMA)[3:]).iter_rows()
                self._tails[series] = collections.deque(rows, maxlen=self.preload)

    def _series_dirs(self) -> Iterator[Path]:
        if self.root.is_dir():
            yield from sorted(p for p in self.root.glob("exchange=*/symbol=*/interval=*") if p.is_dir())

    @staticmethod
    def _month_files(folder: Path) -> list[Path]:
        """Committed month files below `folder`, oldest first; temp and set-aside files never match."""
        if not folder.is_dir():
            return []
        return sorted((p for p in folder.rglob("*.parquet") if not is_temp(p)), key=lambda p: (p.parent, p.name))

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
            # Two writers would each merge and replace the same month files, losing each other's candles.
            raise StorageLockedError(f"another process is storing candles under {self.root}") from None
        self._lock_file = handle  # the OS releases the lock if this process dies

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __repr__(self) -> str:
        return (
            f"CandleStorage(root={str(self.root)!r}, buffered={self._buffered}, written={self.written}, "
            f"rejected={self.rejected}, set_aside={len(self.set_aside)})"
        )


def _read_month(path: Path) -> pl.DataFrame:
    """Read one month file in the storage schema; raise if it is unreadable or foreign."""
    frame = pl.read_parquet(path)
    missing = [name for name in SCHEMA if name not in frame.columns]
    if missing:
        raise pl.exceptions.SchemaError(f"missing columns {missing}")
    return frame.select(list(SCHEMA)).cast(SCHEMA)
