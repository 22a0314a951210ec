"""Candle interval strings ("1m", "4h", "1d") and their lengths."""

from __future__ import annotations

from typing import Final

_UNIT_MS: Final = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


def interval_ms(interval: str) -> int:
    """Return the length of `interval` in milliseconds; ValueError names bad input."""
    count, unit = interval[:-1], interval[-1:]
    if unit not in _UNIT_MS or not count.isdigit() or int(count) <= 0:
        raise ValueError(f"unknown candle interval {interval!r} (expected like 1m, 15m, 1h, 4h, 1d)")
    return int(count) * _UNIT_MS[unit]


def interval_from_ms(length_ms: int) -> str:
    """Return the shortest interval string for `length_ms` (e.g. 3_600_000 -> "1h")."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNIT_MS[unit]
        if length_ms >= size and length_ms % size == 0:
            return f"{length_ms // size}{unit}"
    raise ValueError(f"{length_ms} ms is not a whole number of seconds")
