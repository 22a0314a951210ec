"""One request-weight budget per (exchange, API key) for the whole process.

Venues limit by IP and key, not by connection: two bots in one process that
each assumed the whole budget would get banned together. Every adapter and
feed of the same exchange and key therefore draws from one `WeightLimiter`:
a sliding window of request weights (ccxt's per-endpoint cost), tightened
when the venue reports more weight used than we counted (Binance's
`X-MBX-USED-WEIGHT-1M`, e.g. another process on the same IP) and paused
entirely for a `Retry-After`.

No locks: a caller checks the window and books its weight with no await in
between, so the check and the booking happen as one step on the event loop.
"""

from __future__ import annotations

import collections
import hashlib
from typing import Final

from twinstar.clock import Clock

_NS: Final = 1_000_000_000


class WeightLimiter:
    """A sliding-window budget of `capacity` weight per `window_s` seconds."""

    def __init__(self, capacity: float, window_s: float, clock: Clock) -> None:
        self.capacity = capacity
        self.window_ns = int(window_s * _NS)
        self.clock = clock
        self._booked: collections.deque[tuple[int, float]] = collections.deque()
        self._used = 0.0
        self._paused_until_ns = 0
        self.waits = 0

    def _expire(self, now_ns: int) -> None:
        booked = self._booked
        horizon = now_ns - self.window_ns
        while booked and booked[0][0] <= horizon:
            self._used -= booked.popleft()[1]

    async def acquire(self, cost: float = 1.0) -> None:
        """Wait until `cost` fits in the window (and any venue pause is over), then book it."""
        cost = min(float(cost or 1.0), self.capacity)
        while True:
            now = self.clock.now_ns()
            if now < self._paused_until_ns:
                self.waits += 1
                await self.clock.sleep((self._paused_until_ns - now) / _NS)
                continue
            self._expire(now)
            if self._used + cost <= self.capacity:
                self._booked.append((now, cost))
                self._used += cost
                return
            self.waits += 1
            oldest = self._booked[0][0]
            await self.clock.sleep(max(0.001, (oldest + self.window_ns - now) / _NS))

    def observe_used(self, used: float) -> None:
        """The venue counted `used` weight in its current window: never assume less."""
        now = self.clock.now_ns()
        self._expire(now)
        missing = used - self._used
        if missing > 0:
            self._booked.append((now, missing))
            self._used += missing

    def pause(self, seconds: float) -> None:
        """Stop all requests for `seconds` (a Retry-After from the venue)."""
        self._paused_until_ns = max(self._paused_until_ns, self.clock.now_ns() + int(seconds * _NS))

    @property
    def used(self) -> float:
        """Weight booked in the current window."""
        self._expire(self.clock.now_ns())
        return self._used

    def __repr__(self) -> str:
        return f"WeightLimiter(used={self.used:.0f}/{self.capacity:.0f} per {self.window_ns / _NS:.0f}s)"


_LIMITERS: dict[tuple[str, str], WeightLimiter] = {}


def shared_limiter(exchange_id: str, api_key: str, capacity: float, window_s: float, clock: Clock) -> WeightLimiter:
    """Return the process-wide limiter for this exchange and key (the key is hashed, never kept)."""
    key = (exchange_id, hashlib.sha256(api_key.encode()).hexdigest()[:16])
    limiter = _LIMITERS.get(key)
    if limiter is None:
        limiter = _LIMITERS[key] = WeightLimiter(capacity, window_s, clock)
    return limiter
