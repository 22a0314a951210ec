"""Live trading: per venue the exchange adapter, clock sync, candle feeds and order stream; the pipeline.

Built from a Config whose venues (`Config.venues`) name ccxt exchanges. Every
event of the session is recorded under `runs/`, so a live session can be
replayed.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from twinstar.adapters import make_exchange
from twinstar.adapters.base import Exchange
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.adapters.feeds import choose_feed
from twinstar.adapters.order_stream import OrderStream, streams_orders
from twinstar.bus.bus import Bus
from twinstar.bus.record import Recorder
from twinstar.clock import Clock, LiveClock
from twinstar.config import Config, FeedConfig, VenueConfig
from twinstar.handlers import VenueTrading, build_trading
from twinstar.handlers.journal import Journal
from twinstar.handlers.storage import CandleStorage
from twinstar.kernel import Component
from twinstar.live_log import LiveLog
from twinstar.opt_in import opt_in_components
from twinstar.timesync import TimeSync


class AdapterSession:
    """Component that closes the adapter's sessions last (stops stay on the exchange)."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange

    def attach(self, bus: Bus) -> None:
        """Nothing to subscribe."""

    async def stop(self) -> None:
        """Close HTTP sessions and sockets."""
        await self.exchange.close()


def _venue_clock(kernel_clock: Clock, index: int) -> Clock:
    """The clock of the `index`-th venue: the kernel's for the first, a LiveClock of its own for the others.

    Each venue's clock carries that venue's time offset (its TimeSync keeps it),
    which its signed requests are stamped with: one clock synced by two venues
    would swing between their offsets. The kernel's clock, which stamps the
    strategy's signals and judges a candle's freshness, keeps the first venue's time.
    """
    if index == 0 or not isinstance(kernel_clock, LiveClock):
        return kernel_clock
    return LiveClock(kernel_clock.offset_ms)


def live_components(config: Config, clock: Clock, run_dir: Path | None = None) -> list[Component]:
    """Build everything a live session needs, in start order."""
    venues = config.venues()
    stamp = dt.datetime.now(tz=dt.UTC).strftime("%Y%m%d-%H%M%S")
    run_dir = run_dir or Path("runs") / f"{stamp}-live-{'-'.join(venue.name for venue in venues)}"
    sessions: list[Component] = []
    timesyncs: list[Component] = []
    trading: list[VenueTrading] = []
    streams: list[Component] = []
    for index, venue in enumerate(venues):
        own_clock = _venue_clock(clock, index)
        exchange = make_exchange(venue, own_clock)
        sessions.append(AdapterSession(exchange))
        timesync = TimeSync(exchange, own_clock)
        if isinstance(exchange, CcxtExchange):
            exchange.resync_clock = timesync.sync_once  # a timestamp rejection resyncs, then retries once
        timesyncs.append(timesync)
        # Kept across runs (not in the run folder): a restarted kernel finds what the last one sent.
        journal = Journal(Path(config.journal.dir) / f"{exchange.name}.journal", fsync=config.journal.fsync)
        trading.append(VenueTrading(exchange, venue.symbols, own_clock, journal))
        streams += _streams(venue, exchange, own_clock, config.feed)
    parts: list[Component] = [
        *sessions,  # stopped last: components stop in reverse order
        Recorder(run_dir / "events.tws", config=config.to_dict(), meta={"kind": "live"}),
        LiveLog(),  # one log line per order, fill, stop, reconciliation and reconnect
        *timesyncs,
        *build_trading(config, clock, trading),
        *streams,
    ]
    if config.storage.dir:
        storage = config.storage
        parts.append(CandleStorage(storage.dir, flush_every=storage.flush_every, compact_every=storage.compact_every))
    if config.control.enabled:
        from twinstar.control import Venue

        parts += opt_in_components(config, clock, [Venue(t.exchange, t.symbols) for t in trading])
    else:
        parts += opt_in_components(config, clock)
    return parts


def _streams(venue: VenueConfig, exchange: Exchange, clock: Clock, settings: FeedConfig) -> list[Component]:
    """The venue's candle feeds, one per symbol, and its private order stream where it has one."""
    parts: list[Component] = [
        choose_feed(exchange, symbol, venue.interval, clock, mode=venue.candle_feed, settings=settings)
        for symbol in venue.symbols
    ]
    if venue.order_stream and isinstance(exchange, CcxtExchange) and streams_orders(exchange):
        parts.append(OrderStream(exchange, venue.symbols, clock))
    return parts
