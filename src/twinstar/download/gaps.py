"""Holes in a candle series: where consecutive open times lie more than one interval apart."""

from __future__ import annotations

import msgspec


class Gap(msgspec.Struct, frozen=True):
    """Candles missing from `from_ms` (the first missing open) up to `to_ms` (the next open there is)."""

    from_ms: int
    to_ms: int
    missing: int


class GapFinder:
    """Fed open times in order (across pages), collects every gap."""

    def __init__(self, length_ms: int, previous_ms: int | None = None) -> None:
        self.length_ms = length_ms
        self.previous_ms = previous_ms
        self.gaps: list[Gap] = []

    def see(self, open_ms: int) -> None:
        """Note the next candle's open time."""
        previous = self.previous_ms
        if previous is not None and open_ms - previous > self.length_ms:
            expected = previous + self.length_ms
            self.gaps.append(Gap(expected, open_ms, (open_ms - expected) // self.length_ms))
        self.previous_ms = open_ms

    def __repr__(self) -> str:
        return f"GapFinder(length_ms={self.length_ms}, previous_ms={self.previous_ms}, gaps={len(self.gaps)})"
