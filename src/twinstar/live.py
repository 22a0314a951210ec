"""Live trading: the exchange adapter, clock sync, candle feeds and the pipeline.

Built from a Config whose `exchange.id` names a ccxt venue. Every event of the
session is recorded under `runs/`, so a live session can be replayed.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from twinstar.adapters import make_exchange
from twinstar.adapters.base import Exchange
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.adapters.feed import PollingCandleFeed, StreamCandleFeed, TradeCandleFeed
from twinstar.adapters.order_stream import OrderStream, streams_orders
from twinstar.bus.bus import Bus
from twinstar.bus.record import Recorder
from twinstar.clock import Clock
from twinstar.config import Config
from twinstar.handlers import build_pipeline
from twinstar.handlers.journal import Journal
from twinstar.handlers.storage import CandleStorage
from twinstar.kernel import Component
from twinstar.live_log import LiveLog
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


def _feed(config: Config, exchange: Exchange, symbol: str, clock: Clock) -> Component:
    """The kline stream where ccxt.pro has one, else candles built from trades, else polling.

    Bithumb and Lighter stream trades but not klines. `candle_feed = "poll"`
    always polls; `"stream"` insists on a WebSocket feed even where ccxt.pro
    flags neither.
    """
    mode = config.exchange.candle_feed
    if mode == "poll" or not isinstance(exchange, CcxtExchange):
        return PollingCandleFeed(exchange, symbol, config.interval, clock)
    has = exchange.ccxt.has
    if has.get("watchOHLCV"):
        return StreamCandleFeed(exchange, symbol, config.interval, clock)
    if has.get("watchTrades"):
        return TradeCandleFeed(exchange, symbol, config.interval, clock)
    if mode == "stream":
        return StreamCandleFeed(exchange, symbol, config.interval, clock)
    return PollingCandleFeed(exchange, symbol, config.interval, clock)


def live_components(config: Config, clock: Clock, run_dir: Path | None = None) -> list[Component]:
    """Build everything a live session needs, in start order."""
    exchange = make_exchange(config.exchange, clock)
    stamp = dt.datetime.now(tz=dt.UTC).strftime("%Y%m%d-%H%M%S")
    run_dir = run_dir or Path("runs") / f"{stamp}-live-{config.exchange.id}"
    # Kept across runs (not in the run folder): a restarted kernel finds what the last one sent.
    journal = Journal(Path(config.journal.dir) / f"{exchange.name}.journal", fsync=config.journal.fsync)
    timesync = TimeSync(exchange, clock)
    if isinstance(exchange, CcxtExchange):
        exchange.resync_clock = timesync.sync_once  # a timestamp rejection resyncs, then retries once
    parts: list[Component] = [
        AdapterSession(exchange),  # stopped last: components stop in reverse order
        Recorder(run_dir / "events.tws", config=config.to_dict(), meta={"kind": "live"}),
        LiveLog(),  # one log line per order, fill, stop, reconciliation and reconnect
        timesync,
        *build_pipeline(config, clock, exchange, journal=journal),
        *(_feed(config, exchange, symbol, clock) for symbol in config.symbols),
    ]
    if config.exchange.order_stream and isinstance(exchange, CcxtExchange) and streams_orders(exchange):
        parts.append(OrderStream(exchange, config.symbols, clock))
    if config.storage.dir:
        parts.append(CandleStorage(config.storage.dir, flush_every=config.storage.flush_every))
    return parts
