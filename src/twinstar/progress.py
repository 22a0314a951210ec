"""Progress and summary output for long runs, on stderr/stdout, without dependencies."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO


class Progress:
    """Prints `done/total` with rate and ETA, at most every `every_s` seconds.

    On a terminal it redraws one line; elsewhere (CI logs, pipes) it prints a
    line per update so nothing is garbled.
    """

    def __init__(self, total: int, label: str, *, stream: TextIO | None = None, every_s: float = 0.5) -> None:
        self.total = total
        self.label = label
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self._started = time.perf_counter()
        self._last = 0.0
        self._tty = self.stream.isatty()

    def update(self, done: int) -> None:
        """Report `done` items finished (prints only when due)."""
        now = time.perf_counter()
        if now - self._last < self.every_s and done < self.total:
            return
        self._last = now
        elapsed = now - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else 0.0
        pct = 100 * done / self.total if self.total else 100.0
        line = f"{self.label}: {done:,}/{self.total:,} ({pct:5.1f}%) {rate:,.0f}/s eta {eta:4.1f}s"
        if self._tty:
            self.stream.write(f"\r{line}")
            if done >= self.total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def table(rows: Sequence[tuple[str, str]], *, title: str = "") -> str:
    """Format label/value rows as an aligned two-column text table."""
    width = max((len(label) for label, _ in rows), default=0)
    vwidth = max((len(value) for _, value in rows), default=0)
    rule = "-" * (width + vwidth + 3)
    lines = [title, rule] if title else [rule]
    lines += [f"{label:<{width}}   {value:>{vwidth}}" for label, value in rows]
    lines.append(rule)
    return "\n".join(lines)
