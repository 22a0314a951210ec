"""Exchange clock offset, measured with round-trip correction.

Each sample asks the venue for its time and brackets the call with local
timestamps: offset = server_time - (t_send + t_recv) / 2. The error of one
sample is at most half its round trip (the reply could have been stamped
anywhere in flight), so only the lowest-RTT samples are kept and the best of
them is used. The offset goes to the LiveClock and out as `ClockSynced`;
resyncs happen periodically and at once after a clock-skew rejection.
"""

from __future__ import annotations

import logging
from typing import Final

import msgspec

from twinstar.adapters.base import Exchange, ExchangeError
from twinstar.bus.bus import Bus
from twinstar.bus.events import ClockSynced, OrderFailed
from twinstar.clock import Clock, LiveClock

log: Final = logging.getLogger("twinstar.timesync")

# A measured offset beyond this is refused, never applied: either the host clock is badly wrong (fix NTP)
# or the venue's reply is (a proxy's cached page, a bad field). Venues refuse stamps a few seconds off anyway.
MAX_OFFSET_MS: Final = 10 * 60_000


class ImplausibleTimeError(ValueError):
    """The venue's time reply is not a usable clock reading."""


class Sample(msgspec.Struct, frozen=True):
    """One measurement: offset and round trip, in milliseconds."""

    offset_ms: float
    rtt_ms: float


async def measure(exchange: Exchange, clock: Clock, samples: int = 5) -> Sample:
    """Take `samples` measurements and return the one with the lowest round trip.

    The offset is relative to `clock` as it stands: for a LiveClock already
    corrected, it is the remaining error.
    """
    best: Sample | None = None
    for _ in range(samples):
        sent = clock.now_ns()
        server_ms = await exchange.server_time()
        received = clock.now_ns()
        if not isinstance(server_ms, int) or isinstance(server_ms, bool):
            raise ImplausibleTimeError(f"server time {server_ms!r} is not a number of milliseconds")
        midpoint_ms = (sent + received) / 2 / 1_000_000
        sample = Sample(server_ms - midpoint_ms, (received - sent) / 1_000_000)
        if abs(sample.offset_ms) > MAX_OFFSET_MS:
            raise ImplausibleTimeError(
                f"server time {server_ms} is {sample.offset_ms / 1000:+,.0f} s from this host's clock "
                f"(more than {MAX_OFFSET_MS // 60_000} min): not applied"
            )
        if best is None or sample.rtt_ms < best.rtt_ms:
            best = sample
    assert best is not None
    return best


class TimeSync:
    """Component: keeps a LiveClock on the exchange's time."""

    def __init__(self, exchange: Exchange, clock: Clock, *, every_s: float = 600.0, samples: int = 5) -> None:
        self.exchange = exchange
        self.clock = clock
        self.every_s = every_s
        self.samples = samples
        self.last: Sample | None = None
        self._bus: Bus | None = None
        self._resync_requested = False

    def attach(self, bus: Bus) -> None:
        """Listen for clock-skew rejections, which trigger an immediate resync."""
        self._bus = bus
        bus.subscribe(OrderFailed, self.on_order_failed, name="TimeSync")

    async def on_order_failed(self, event: OrderFailed) -> None:
        """Resync now when the venue said our timestamp was off."""
        if event.error_kind == "clock_skew":
            self.request_resync()

    def request_resync(self) -> None:
        """Ask the sync loop to measure again within a second."""
        self._resync_requested = True

    async def sync_once(self) -> Sample | None:
        """Measure, apply to the clock, publish ClockSynced; None if the venue did not answer."""
        try:
            sample = await measure(self.exchange, self.clock, self.samples)
        except ExchangeError as exc:
            log.warning("time sync with %s failed: %s", self.exchange.name, exc.message)
            return None
        except ImplausibleTimeError as exc:
            log.error("time sync with %s refused: %s", self.exchange.name, exc)
            return None
        if isinstance(self.clock, LiveClock):
            # The sample is relative to the already-corrected clock: add it on.
            sample = Sample(self.clock.offset_ms + sample.offset_ms, sample.rtt_ms)
            self.clock.set_offset_ms(sample.offset_ms)
        self.last = sample
        if self._bus is not None:
            await self._bus.publish(
                ClockSynced(
                    ts_ns=self.clock.now_ns(),
                    exchange=self.exchange.name,
                    offset_ms=sample.offset_ms,
                    rtt_ms=sample.rtt_ms,
                )
            )
        return sample

    async def start(self) -> None:
        """Sync once before any order can be sent."""
        await self.sync_once()

    async def run(self) -> None:
        """Resync every `every_s` seconds, or within a second when asked."""
        while True:
            waited = 0.0
            while waited < self.every_s and not self._resync_requested:
                await self.clock.sleep(1.0)
                waited += 1.0
            self._resync_requested = False
            await self.sync_once()

    def __repr__(self) -> str:
        return f"TimeSync(exchange={self.exchange.name!r}, last={self.last})"
