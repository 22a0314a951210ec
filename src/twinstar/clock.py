"""Kernel time: every timestamp and every wait in TwinStar goes through a Clock.

`LiveClock` is the machine's clock corrected by the exchange offset;
`SimClock` only moves when replay or a test moves it, so hours of trading
(backoffs included) replay in milliseconds and deterministically.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol, runtime_checkable

_NS_PER_S = 1_000_000_000
_NS_PER_MS = 1_000_000


@runtime_checkable
class Clock(Protocol):
    """Time source and sleeper for the kernel."""

    def now_ns(self) -> int:
        """Return the current time in Unix nanoseconds."""
        ...

    def now_ms(self) -> int:
        """Return the current time in Unix milliseconds."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""
        ...


class LiveClock:
    """Wall time anchored to the monotonic clock, plus the exchange offset.

    The anchor means a system clock step (NTP) never moves kernel time
    backwards; the offset is what a time-sync handler measured against the
    exchange, so timestamps agree with the venue's.
    """

    def __init__(self, offset_ms: float = 0.0) -> None:
        self._wall_anchor_ns = time.time_ns()
        self._mono_anchor_ns = time.monotonic_ns()
        self._offset_ns = round(offset_ms * _NS_PER_MS)

    @property
    def offset_ms(self) -> float:
        """Exchange time minus local time, in milliseconds."""
        return self._offset_ns / _NS_PER_MS

    def set_offset_ms(self, offset_ms: float) -> None:
        """Set the exchange offset (exchange time minus local time)."""
        self._offset_ns = round(offset_ms * _NS_PER_MS)

    def now_ns(self) -> int:
        """Return exchange-corrected Unix time in nanoseconds."""
        elapsed = time.monotonic_ns() - self._mono_anchor_ns
        return self._wall_anchor_ns + elapsed + self._offset_ns

    def now_ms(self) -> int:
        """Return exchange-corrected Unix time in milliseconds."""
        return self.now_ns() // _NS_PER_MS

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of real time."""
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return f"LiveClock(offset_ms={self.offset_ms:.3f})"


class SimClock:
    """Simulated time that moves only when told to.

    With ``autojump=False`` a sleeper waits until `advance`/`advance_to`
    reaches its deadline (tests drive time by hand). With ``autojump=True``
    a sleep moves the clock to its deadline at once: correct under replay's
    run-to-completion dispatch, where the sleeper is the only thing running.
    """

    def __init__(self, start_ns: int = 0, *, autojump: bool = False) -> None:
        self._now_ns = start_ns
        self.autojump = autojump
        self._sleepers: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()  # FIFO among equal deadlines

    def now_ns(self) -> int:
        """Return simulated Unix time in nanoseconds."""
        return self._now_ns

    def now_ms(self) -> int:
        """Return simulated Unix time in milliseconds."""
        return self._now_ns // _NS_PER_MS

    async def sleep(self, seconds: float) -> None:
        """Wait until simulated time has moved `seconds` on (at once with autojump)."""
        deadline = self._now_ns + max(0, round(seconds * _NS_PER_S))
        if self.autojump:
            self._now_ns = deadline
            return
        if deadline <= self._now_ns:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._order), future))
        await future

    def set_ns(self, ts_ns: int) -> None:
        """Move time forward to `ts_ns` (never back) and wake due sleepers."""
        if ts_ns <= self._now_ns:
            return
        sleepers = self._sleepers
        while sleepers and sleepers[0][0] <= ts_ns:
            deadline, _, future = heapq.heappop(sleepers)
            self._now_ns = max(self._now_ns, deadline)
            if not future.done():
                future.set_result(None)
        self._now_ns = ts_ns

    async def advance(self, seconds: float) -> None:
        """Move time forward by `seconds`, letting each woken sleeper run in turn."""
        await self.advance_to(self._now_ns + round(seconds * _NS_PER_S))

    async def advance_to(self, ts_ns: int) -> None:
        """Move time to `ts_ns` deadline by deadline, yielding so woken tasks run."""
        while self._sleepers and self._sleepers[0][0] <= ts_ns:
            deadline, _, future = heapq.heappop(self._sleepers)
            self._now_ns = max(self._now_ns, deadline)
            if not future.done():
                future.set_result(None)
            # Let the woken task run (and maybe sleep again) before the next deadline.
            for _ in range(3):
                await asyncio.sleep(0)
        self._now_ns = max(self._now_ns, ts_ns)

    @property
    def next_deadline_ns(self) -> int | None:
        """The earliest deadline anyone sleeps until, or None."""
        for deadline, _, future in sorted(self._sleepers):
            if not future.done():
                return deadline
        return None

    @property
    def pending_sleepers(self) -> int:
        """How many sleeps are waiting for time to move."""
        return sum(1 for _, _, f in self._sleepers if not f.done())

    def __repr__(self) -> str:
        return f"SimClock(now_ns={self._now_ns}, sleepers={self.pending_sleepers}, autojump={self.autojump})"
