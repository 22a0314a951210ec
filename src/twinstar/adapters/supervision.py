"""What keeps one feed's failures its own: reconnect backoff, and telling a foreign cancel from ours.

Every feed runs its own loop under `Backoff`: waits double from
`feed.backoff_initial_s` to `feed.backoff_max_s`, each lengthened by up to 100% at random (`JITTER`)
(so feeds that broke together do not all come back in the same instant), and
after `feed.max_attempts` consecutive failures the feed gives up (0: never).
"""

from __future__ import annotations

import asyncio
import random

from twinstar.adapters.base import ExchangeError
from twinstar.config import FeedConfig

# Each wait is drawn from [base, (1 + JITTER) * base]. A venue restart drops every feed of the venue at
# once: a wide spread makes their reconnects and REST backfills take turns instead of holding the loop
# together (at 0.2, twenty-five feeds came back within 40 ms and the loop lagged 50+ ms).
JITTER: float = 1.0


class Backoff:
    """Consecutive failures of one feed and the wait before its next try."""

    def __init__(self, settings: FeedConfig, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.attempt = 0
        self._rng = rng or random.Random()  # jitter, not cryptography

    def failed(self) -> float | None:
        """Count a failure; the seconds to wait before trying again, or None when the feed should stop."""
        self.attempt += 1
        limit = self.settings.max_attempts
        if limit and self.attempt > limit:
            return None
        base = min(self.settings.backoff_max_s, self.settings.backoff_initial_s * 2.0 ** (self.attempt - 1))
        return float(base * (1 + JITTER * self._rng.random()))

    def succeeded(self) -> bool:
        """Reset after a success; True if it ended a run of failures (a reconnect)."""
        recovered, self.attempt = self.attempt > 0, 0
        return recovered


def cancelled_from_outside(exc: BaseException) -> bool:
    """Whether `exc` is a cancellation of our own task (shutdown), not one leaked from a shared client.

    ccxt.pro cancels the futures of every watcher on a client it closes; a
    sibling feed's reconnect must not end this feed, let alone the kernel.
    """
    if not isinstance(exc, asyncio.CancelledError):
        return False
    task = asyncio.current_task()
    return task is None or task.cancelling() > 0


def reason_of(exc: BaseException) -> str:
    """What a feed's failure says about itself, in one line."""
    if isinstance(exc, ExchangeError):
        return exc.message[:200]
    if isinstance(exc, TimeoutError):
        return "stream silent"
    if isinstance(exc, asyncio.CancelledError):  # ccxt.pro cancels every watcher of a client it closed
        return "socket closed under the watch (ccxt.pro cancelled it)"
    return f"{type(exc).__name__}: {exc}"[:200]
