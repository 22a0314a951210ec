"""A backtest's input file, named in its recording so that replay reloads it instead of a copy.

A backtest does not copy its candles into the event stream or the candle
store: the stream's header names the file, its sha256 digest and how it was
read (`DataSource`). Replay reloads the file the same way, refuses it if the
digest changed, and feeds the same events again (`input_events`), so the
replayed stream comes out byte for byte the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Final

import msgspec
import polars as pl

from twinstar.backtest.checks import GapPolicy, checked_frame, span_text
from twinstar.backtest.inputs import InputFormat, input_sha256, read_series
from twinstar.bus.events import CandleClosed, Event, FlattenRequested
from twinstar.candles import CandleFileError, CandleSeries
from twinstar.intervals import interval_ms

META_KEY: Final = "data"  # the stream header's meta entry that holds the DataSource, as JSON
_BATCH: Final = 1_024  # candles made objects at a time: memory stays flat, and a stop request waits one batch
_SLICE: Final = 65_536  # rows read out of polars at a time, as plain values


class DataSource(msgspec.Struct, frozen=True, kw_only=True):
    """Which file a backtest read, how, and as what series: enough to read it again identically."""

    path: str  # absolute
    sha256: str
    exchange: str
    symbol: str  # the traded symbol the candles are labelled with
    interval: str
    gaps: GapPolicy = "reset"
    columns: str = ""  # the names given to a headerless file's columns
    format: InputFormat = "auto"

    def to_meta(self) -> str:
        """This source as the stream header's meta value."""
        return msgspec.json.encode(self).decode()

    @classmethod
    def from_meta(cls, meta: dict[str, str]) -> DataSource | None:
        """The source a stream header names, or None for a stream that holds its own candles."""
        text = meta.get(META_KEY)
        return None if text is None else msgspec.json.decode(text, type=cls)


def source_events(frame: pl.DataFrame, source: DataSource) -> Iterator[Event]:
    """`input_events` of `frame` as `source` describes them."""
    return input_events(frame, source.exchange, source.symbol, source.interval, reset_at_gaps=source.gaps == "reset")


def source_batches(frame: pl.DataFrame, source: DataSource) -> Iterator[list[Event]]:
    """`input_batches` of `frame` as `source` describes them."""
    return input_batches(frame, source.exchange, source.symbol, source.interval, reset_at_gaps=source.gaps == "reset")


def reload(source: DataSource) -> CandleSeries:
    """Read `source` again for a replay; CandleFileError when the file is gone or changed."""
    path = Path(source.path)
    if not path.exists():
        raise CandleFileError(f"{path}: the recording's data file is missing (it names it instead of copying it)")
    if input_sha256(path) != source.sha256:
        raise CandleFileError(
            f"{path}: the file changed since the recording (sha256 differs); replay needs the same data"
        )
    series = read_series(path, columns=source.columns, fmt=source.format, interval=source.interval)
    frame = checked_frame(series.frame, interval_ms(source.interval), source.gaps)
    return msgspec.structs.replace(series, frame=frame)


def input_events(
    frame: pl.DataFrame, exchange: str, symbol: str, interval: str, *, reset_at_gaps: bool = False
) -> Iterator[Event]:
    """The events a backtest feeds: each candle at its close, and with `reset_at_gaps` a `FlattenRequested` after a gap.

    Streamed in batches, so a million candles never exist as objects at once.
    """
    for batch in input_batches(frame, exchange, symbol, interval, reset_at_gaps=reset_at_gaps):
        yield from batch


def input_batches(
    frame: pl.DataFrame, exchange: str, symbol: str, interval: str, *, reset_at_gaps: bool = False
) -> Iterator[list[Event]]:
    """`input_events` as lists of at most a batch each: the candle loop then costs no generator step per event."""
    length_ms = interval_ms(interval)
    times = frame["open_time_ms"]
    # Rows that open after a hole: the batches break there, for the FlattenRequested between them.
    breaks = ((times.diff() > length_ms).arg_true().to_list() if reset_at_gaps else []) + [frame.height]
    start = 0
    for end in breaks:
        if start and reset_at_gaps:
            open_ms, previous = int(times[start]), int(times[start - 1])
            # Stamped when the hole ends, before its first candle moves the market: the position
            # closes at the last price known, since nothing is known inside the hole.
            hole = span_text(open_ms - previous - length_ms)
            flatten = FlattenRequested(
                ts_ns=open_ms * 1_000_000,
                reason=f"gap in the data: no candles for {hole}",
                exchange=exchange,
                symbol=symbol,
                source="backtest",
            )
            yield [flatten]
        for first in range(start, end, _SLICE):
            # Few, large calls into polars (each one costs far more than its rows), then small batches of events.
            part = frame.slice(first, min(_SLICE, end - first))
            closes_ns = ((part["open_time_ms"] + length_ms) * 1_000_000).to_list()
            columns = [part[name].to_list() for name in ("open_time_ms", "open", "high", "low", "close", "volume")]
            for at in range(0, part.height, _BATCH):
                yield [
                    CandleClosed(
                        ts_ns=ts_ns,
                        exchange=exchange,
                        symbol=symbol,
                        interval=interval,
                        open_time_ms=open_ms,
                        open=o,
                        high=h,
                        low=low,
                        close=c,
                        volume=v,
                    )
                    for ts_ns, open_ms, o, h, low, c, v in zip(
                        closes_ns[at : at + _BATCH], *(column[at : at + _BATCH] for column in columns), strict=True
                    )
                ]
        start = end
