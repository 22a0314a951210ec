"""Kline history as the loopback venues serve it: a page of the asked interval, within the asked times.

A venue keeps its candles at one interval; a request for a longer interval
that is a whole multiple of it gets them aggregated, as a real venue's own
coarser series would be. Which end of a range a page is cut from is the
venue's rule: Binance pages forward from `startTime`, Bybit back from `end`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

Row = list[Any]


def _open(row: Row) -> int:
    return int(row[0])


def aggregate(rows: Sequence[Row], length_ms: int, sums: Sequence[int] = ()) -> list[list[float]]:
    """Merge candles into `length_ms` ones aligned to the epoch, oldest first.

    Each result is [open_ms, open, high, low, close, volume, *totals of the `sums` columns].
    """
    merged: dict[int, list[float]] = {}
    for row in sorted(rows, key=_open):
        bucket = _open(row) // length_ms * length_ms
        values = [float(x) for x in row[1:6]] + [float(row[k]) for k in sums]
        found = merged.get(bucket)
        if found is None:
            merged[bucket] = values
            continue
        found[1], found[2], found[3] = max(found[1], values[1]), min(found[2], values[2]), values[3]
        for k in range(4, len(values)):
            found[k] += values[k]
    return [[bucket, *values] for bucket, values in sorted(merged.items())]


def page(
    rows: Sequence[Row],
    *,
    start_ms: int | None,
    end_ms: int | None,
    limit: int,
    keep: Literal["first", "last"],
    reach_ms: int = 1,
) -> list[Row]:
    """Return the `keep` `limit` rows (oldest first) whose open is in range.

    A row is in range when it opens at or before `end_ms` and its first
    `reach_ms` pass `start_ms` (1: it opens at or after it; the interval's
    length: the candle holding `start_ms` counts too).
    """

    def inside(row: Row) -> bool:
        opened = _open(row)
        return (start_ms is None or opened + reach_ms > start_ms) and (end_ms is None or opened <= end_ms)

    chosen = [row for row in sorted(rows, key=_open) if inside(row)]
    return chosen[:limit] if keep == "first" else chosen[-limit:]
