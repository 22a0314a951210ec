"""Prometheus metrics from the bus, served by the control plane at /metrics.

Counters and histograms follow the events; the position count and equity are
read from the status model at scrape time. The registry is this component's
own (not the process-global one), and nothing here starts a thread or a
server: the control plane's aiohttp app serves `scrape()`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from twinstar.bus.bus import Bus
from twinstar.bus.events import (
    CandleClosed,
    EntriesPaused,
    EntriesResumed,
    Event,
    FeedBackfilled,
    FeedConnected,
    FeedDisconnected,
    FlattenRequested,
    OrderFailed,
    OrderPlaced,
    RiskLimitBreached,
    SignalFired,
    SLUpdated,
    SLUpdateFailed,
)
from twinstar.control.status import StatusModel

_FEED: Final = ("exchange", "symbol", "interval")
_LAG_PROBE_S: Final = 0.25
_NS: Final = 1e9


class _FromStatus(Collector):
    """Gauges read at scrape time: open positions, equity and entry state."""

    def __init__(self, status: StatusModel) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        snapshot = self.status.snapshot()
        positions = GaugeMetricFamily("twinstar_positions", "Open positions", labels=["exchange"])
        equity = GaugeMetricFamily(
            "twinstar_equity", "Balance plus open PnL, in the quote currency", labels=["exchange"]
        )
        for venue in snapshot.venues:
            count = sum(1 for p in snapshot.positions if p.exchange == venue.exchange)
            positions.add_metric([venue.exchange], count)
            if venue.currency:
                equity.add_metric([venue.exchange], venue.equity)
        yield positions
        yield equity
        yield GaugeMetricFamily(
            "twinstar_entries_blocked", "1 while new entries are paused or blocked", value=snapshot.entries != "open"
        )


class Metrics:
    """Component: keeps the kernel's Prometheus metrics; `scrape()` is the text exposition."""

    def __init__(self, status: StatusModel) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.candles = Counter("twinstar_candles_received", "Closed candles received", _FEED, registry=reg)
        self.late = Counter("twinstar_candles_late", "Candles published late (after a reconnect)", _FEED, registry=reg)
        self.backfilled = Counter("twinstar_candles_backfilled", "Candles fetched to fill gaps", _FEED, registry=reg)
        self.reconnects = Counter(
            "twinstar_feed_reconnects", "Feeds connected again after going down", _FEED, registry=reg
        )
        self.loop_lag = Histogram(
            "twinstar_event_loop_lag_seconds",
            "How late the event loop woke a sleeping task",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=reg,
        )
        self.round_trip = Histogram(
            "twinstar_order_round_trip_seconds",
            "From a signal (or the order before, for the same signal) to the venue's answer",
            ["exchange"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=reg,
        )
        self.orders = Counter("twinstar_orders", "Orders by outcome", ["exchange", "intent", "outcome"], registry=reg)
        self.stops = Counter(
            "twinstar_stop_updates", "Stop-loss updates by outcome", ["exchange", "outcome"], registry=reg
        )
        self.breaches = Counter("twinstar_risk_limit_breaches", "Risk limits breached", ["limit"], registry=reg)
        self.commands = Counter(
            "twinstar_control_commands",
            "Pause, resume and flatten commands (flatten: the kill switch's too)",
            ["command"],
            registry=reg,
        )
        reg.register(_FromStatus(status))
        self._since: dict[tuple[str, str], int] = {}  # (venue, symbol) -> ts_ns the next order's round trip starts
        self._down: set[tuple[str, str, str]] = set()

    def attach(self, bus: Bus) -> None:
        """Follow every event."""
        bus.subscribe(Event, self.handle, name="Metrics", eager=False)

    def handle(self, event: Event) -> None:
        """Count `event` where a metric measures it."""
        match event:
            case CandleClosed():
                feed = (event.exchange, event.symbol, event.interval)
                self.candles.labels(*feed).inc()
                if event.late:
                    self.late.labels(*feed).inc()
            case FeedBackfilled():
                self.backfilled.labels(event.exchange, event.symbol, event.interval).inc(event.count)
            case FeedDisconnected():
                self._down.add((event.exchange, event.symbol, event.interval))
            case FeedConnected():
                feed = (event.exchange, event.symbol, event.interval)
                if feed in self._down:
                    self._down.discard(feed)
                    self.reconnects.labels(*feed).inc()
            case SignalFired():
                self._since[(event.exchange, event.symbol)] = event.ts_ns
            case OrderPlaced() | OrderFailed():
                key = (event.exchange, event.symbol)
                started = self._since.get(key)
                if started is not None:
                    self.round_trip.labels(event.exchange).observe(max(0, event.ts_ns - started) / _NS)
                    self._since[key] = event.ts_ns
                if isinstance(event, OrderPlaced):
                    outcome = "partial" if event.partial else ("filled" if event.filled_qty > 0 else event.status)
                else:
                    outcome = event.error_kind
                self.orders.labels(event.exchange, event.intent, outcome).inc()
            case SLUpdated():
                self.stops.labels(event.exchange, "ok").inc()
            case SLUpdateFailed():
                self.stops.labels(event.exchange, "failed").inc()
            case RiskLimitBreached():
                self.breaches.labels(event.limit).inc()
            case EntriesPaused():
                self.commands.labels("pause").inc()
            case EntriesResumed():
                self.commands.labels("resume").inc()
            case FlattenRequested():
                self.commands.labels("flatten").inc()
            case _:
                pass

    async def run(self) -> None:
        """Measure event-loop lag: how much later than asked a short sleep wakes (wall time on purpose)."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(_LAG_PROBE_S)
            self.loop_lag.observe(max(0.0, loop.time() - started - _LAG_PROBE_S))

    def scrape(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    def __repr__(self) -> str:
        return f"Metrics(feeds_down={sorted(self._down)}, pending_round_trips={len(self._since)})"
