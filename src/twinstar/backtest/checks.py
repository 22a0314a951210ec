"""What a backtest's candles are checked for before the first trade, and the short block that tells the user.

- Times: before 2009 (no crypto exchange existed) or in the future is refused,
  naming the time column and showing the values seen: milliseconds since
  midnight read as epoch milliseconds land in 1970.
- Spacing: the data's own spacing (the lower median step) must be one that
  exchanges use; an interval the user gave must equal it (15m on hourly data
  would count every hour four times in the annualised figures).
- Gaps: steps longer than the interval are counted, the longest shown, and
  the `GapPolicy` decides: "refuse" the file, "reset" (trade on, but close the
  position at each gap: a stop cannot fill inside a hole) or "fill" the hole
  with flat candles at the last close and zero volume.
"""

from __future__ import annotations

import datetime as dt
from typing import Final, Literal, TypeAlias

import msgspec
import polars as pl

from twinstar.candles import CandleFileError, CandleSeries
from twinstar.intervals import interval_from_ms, interval_ms

GapPolicy: TypeAlias = Literal["refuse", "reset", "fill"]
GAP_POLICIES: Final[tuple[GapPolicy, ...]] = ("refuse", "reset", "fill")

EARLIEST_MS: Final = 1_230_768_000_000  # 2009-01-01 UTC: the first bitcoin block; no exchange traded before
# Candle lengths exchanges publish (Binance, Bybit, OKX, Coinbase, Kraken): anything else is a misread column.
EXCHANGE_INTERVALS: Final = frozenset(
    interval_ms(i)
    for i in ("1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w")
)


class DataReport(msgspec.Struct, frozen=True, kw_only=True):
    """What the checks found in a file's candles, for the block shown before the first trade."""

    source: str
    candles: int
    interval: str
    inferred: bool  # the interval was taken from the data, not given
    first_ms: int
    last_ms: int
    gaps: int
    longest_gap_ms: int
    longest_gap_from_ms: int  # open time of the last candle before the longest gap
    policy: GapPolicy
    filled: int  # candles added by the "fill" policy

    def lines(self) -> list[str]:
        """The block, a few short lines."""
        how = "inferred from the data" if self.inferred else "matches the data"
        lines = [
            f"data: {self.source}",
            f"  {self.candles:,} candles of {self.interval} ({how}), "
            f"{_when(self.first_ms)} to {_when(self.last_ms)} UTC",
        ]
        if not self.gaps:
            lines.append("  gaps: none")
            return lines
        length = interval_ms(self.interval)
        hole_from = self.longest_gap_from_ms + length
        lines.append(
            f"  gaps: {_count(self.gaps, 'gap')} longer than {self.interval}, longest {span_text(self.longest_gap_ms)} "
            f"({_when(hole_from)} to {_when(hole_from + self.longest_gap_ms)})"
        )
        actions = {
            "reset": "the position is closed at each gap (set data gaps to refuse or fill to change)",
            "fill": f"filled with {self.filled:,} flat candles at the last close, volume 0",
            "refuse": "refused",
        }
        lines.append(f"  on gaps: {actions[self.policy]}")
        return lines


def check_series(
    series: CandleSeries, *, interval: str | None, policy: GapPolicy, now_ms: int
) -> tuple[pl.DataFrame, DataReport]:
    """Check `series` (read without an interval) and return the frame to trade and what was found.

    Raise CandleFileError naming what is wrong: implausible times, a spacing no
    exchange uses, an interval that is not the data's, or gaps under "refuse".
    """
    frame, path = series.frame, series.source
    times = frame["open_time_ms"]
    first_ms, last_ms = int(times[0]), int(times[-1])
    column = series.time_column or "time"
    if first_ms < EARLIEST_MS or last_ms > now_ms:
        raise CandleFileError(
            f"{path}: column '{column}' holds {series.time_values}, read as {_when(first_ms)} to {_when(last_ms)} UTC; "
            "candle times must lie between 2009 and now (epoch seconds, ms, us, ns or dates)"
        )
    spacing = _spacing(times) if frame.height > 1 else interval_ms(interval or series.interval)
    if spacing not in EXCHANGE_INTERVALS:
        shown = _shown_interval(spacing)
        raise CandleFileError(
            f"{path}: candles in column '{column}' are {shown} apart ({series.time_values}), a spacing no exchange uses"
        )
    inferred = interval_from_ms(spacing)
    if interval is not None and interval_ms(interval) != spacing:
        raise CandleFileError(
            f"{path}: interval {interval} does not match the data, whose candles are {inferred} apart "
            f"(leave the interval out to take it from the data)"
        )
    steps = times.diff().drop_nulls()
    holes = steps - spacing
    gap_rows = (steps > spacing).arg_true()
    gaps = len(gap_rows)
    longest_ms = longest_from = 0
    if gaps:
        at = int(holes.arg_max() or 0)
        longest_ms, longest_from = int(holes[at]), int(times[at])
        if policy == "refuse":
            raise CandleFileError(
                f"{path}: {_count(gaps, 'gap')} longer than {inferred}, longest {span_text(longest_ms)} after "
                f"{_when(longest_from)} UTC (set data gaps to reset or fill to trade it anyway)"
            )
    traded = checked_frame(frame, spacing, policy)
    report = DataReport(
        source=path,
        candles=traded.height,
        interval=interval or inferred,
        inferred=interval is None,
        first_ms=first_ms,
        last_ms=last_ms,
        gaps=gaps,
        longest_gap_ms=longest_ms,
        longest_gap_from_ms=longest_from,
        policy=policy,
        filled=traded.height - frame.height,
    )
    return traded, report


def checked_frame(frame: pl.DataFrame, length_ms: int, policy: GapPolicy) -> pl.DataFrame:
    """The candles to trade under `policy`: as they are, or with every hole filled by flat candles."""
    if policy != "fill":
        return frame
    grid = pl.DataFrame(
        {
            "open_time_ms": pl.int_range(
                int(frame["open_time_ms"][0]), int(frame["open_time_ms"][-1]) + 1, length_ms, eager=True
            )
        }
    )
    if grid.height == frame.height:
        return frame
    joined = grid.join(frame, on="open_time_ms", how="left").sort("open_time_ms")
    last_close = pl.col("close").forward_fill()
    return joined.select(
        "open_time_ms",
        *(pl.col(name).fill_null(last_close) for name in ("open", "high", "low", "close")),
        pl.col("volume").fill_null(0.0),
    )


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _spacing(times: pl.Series) -> int:
    # The lower median is a spacing that really occurs, so gaps cannot produce 4.5h from 1h and 8h.
    steps = times.diff().drop_nulls().sort()
    return int(steps[(len(steps) - 1) // 2]) if len(steps) else 0


def _shown_interval(spacing: int) -> str:
    try:
        return interval_from_ms(spacing)
    except ValueError:
        return f"{spacing} ms"


def _when(ms: int) -> str:
    try:
        return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms"


def span_text(ms: int) -> str:
    """A duration as its two largest units: '108d 2h', '15m'."""
    minutes, seconds = divmod(ms // 1000, 60)
    days, rest = divmod(minutes, 1_440)
    hours, minutes = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")) if n]
    return " ".join(parts[:2]) or f"{ms} ms"
