"""Progress and summary tables: rich on a terminal, plain lines elsewhere (CI logs, pipes).

rich is optional (the `report` extra); without it a terminal gets the plain
lines too. rich's live display runs a refresh thread unless told not to, and
the kernel runs no threads, so it is refreshed only when we report progress.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    import rich.progress


def _rich_available() -> bool:
    return importlib.util.find_spec("rich") is not None


def _fancy(stream: TextIO) -> bool:
    return stream.isatty() and _rich_available()


class Progress:
    """Reports `done/total` with rate and ETA, at most every `every_s` seconds."""

    def __init__(self, total: int, label: str, *, stream: TextIO | None = None, every_s: float = 0.5) -> None:
        self.total = total
        self.label = label
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self._started = time.perf_counter()
        self._last = 0.0
        self._bar: rich.progress.Progress | None = None
        self._task: rich.progress.TaskID | None = None
        if _fancy(self.stream):
            self._start_bar()

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TaskProgressColumn, TextColumn, TimeRemainingColumn
        from rich.progress import Progress as Bar

        self._bar = Bar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TimeRemainingColumn(),
            console=Console(file=self.stream),
            auto_refresh=False,  # no refresh thread: `update` refreshes
            redirect_stdout=False,  # leave sys.stdout and sys.stderr alone
            redirect_stderr=False,
        )
        self._task = self._bar.add_task(self.label, total=self.total)
        self._bar.start()

    def update(self, done: int) -> None:
        """Report `done` items finished (shown only when due, and always at the end)."""
        now = time.perf_counter()
        finished = done >= self.total
        if now - self._last < self.every_s and not finished:
            return
        self._last = now
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done)
            self._bar.refresh()
            if finished:
                self._bar.stop()
            return
        elapsed = now - self._started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else 0.0
        pct = 100 * done / self.total if self.total else 100.0
        self.stream.write(f"{self.label}: {done:,}/{self.total:,} ({pct:5.1f}%) {rate:,.0f}/s eta {eta:4.1f}s\n")
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


def print_table(rows: Sequence[tuple[str, str]], *, title: str = "", stream: TextIO | None = None) -> None:
    """Print label/value rows: a rich table on a terminal, the plain `table` elsewhere."""
    out = stream or sys.stdout
    if not _fancy(out):
        print(table(rows, title=title), file=out)
        return
    from rich.console import Console
    from rich.table import Table

    grid = Table(title=title or None, show_header=False, title_justify="left")
    grid.add_column(style="bold")
    grid.add_column(justify="right")
    for label, value in rows:
        grid.add_row(label, value)
    Console(file=out).print(grid)
