"""What the control plane reports: the status of a running kernel, kept from its events.

`StatusModel` is a component that follows every event (feeds, positions,
stops, reconciliations, clock syncs, pauses and breaches) and, live, reads
each venue's balance and open orders every `control.poll_interval_s`. Its
`snapshot()` is the `Status` the API serves, the page shows and
`twinstar status` prints; `wait_changed` lets the live page wait for news.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Sequence
from typing import Final

import msgspec

from twinstar.adapters.base import ExchangeError
from twinstar.bus.bus import Bus
from twinstar.bus.events import (
    CandleClosed,
    ClockSynced,
    EntriesPaused,
    EntriesResumed,
    Event,
    FeedConnected,
    FeedDegraded,
    FeedDisconnected,
    FeedLagging,
    FeedStopped,
    KernelStarted,
    KernelStopping,
    PriceMoved,
    ReconciliationCompleted,
    RiskLimitBreached,
)
from twinstar.clock import Clock
from twinstar.control import Venue
from twinstar.control.book import PositionBook
from twinstar.intervals import interval_ms
from twinstar.live_log import LiveLog

log: Final = logging.getLogger("twinstar.control")

RECENT_LINES: Final = 30


class FeedRow(msgspec.Struct, kw_only=True):
    """One candle feed (or a venue's order stream, interval "orders")."""

    exchange: str
    symbol: str
    interval: str
    health: str = "waiting"  # waiting, ok, down, stopped, degraded, lagging
    detail: str = ""
    candles: int = 0
    late_candles: int = 0
    reconnects: int = 0
    last_open_time_ms: int = 0
    last_close: float = 0.0
    lag_ms: int = 0  # how long after its close the last candle was published
    age_ms: int = 0  # since the last candle's close, at the snapshot


class PositionRow(msgspec.Struct, frozen=True, kw_only=True):
    """One open position with its stop in force and PnL at the mark price."""

    exchange: str
    symbol: str
    side: str
    qty: float
    entry_price: float
    stop_price: float
    mark_price: float
    unrealised_pnl: float


class OrderRow(msgspec.Struct, frozen=True, kw_only=True):
    """An order resting on a venue (stops, mostly), as last read."""

    exchange: str
    symbol: str
    client_order_id: str
    side: str
    qty: float
    stop_price: float
    reduce_only: bool


class VenueRow(msgspec.Struct, kw_only=True):
    """One venue: balance, PnL today, clock, rate-limit budget and the last reconciliation."""

    exchange: str
    currency: str = ""
    balance_free: float = 0.0
    balance_total: float = 0.0
    equity: float = 0.0  # balance total plus open PnL (0 until the balance is read)
    realised_pnl_today: float = 0.0
    clock_offset_ms: float = 0.0
    clock_rtt_ms: float = 0.0
    rate_limit_used: float = 0.0
    rate_limit_capacity: float = 0.0
    reconciliation: str = ""  # e.g. "timer: in sync"
    reconciled_ms: int = 0
    read_error: str = ""  # why the last balance or order read failed


class LogLine(msgspec.Struct, frozen=True, kw_only=True):
    """One line of the recent activity (the live log's sentence)."""

    time_ms: int
    level: str
    text: str


class Status(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the control plane reports about a running kernel."""

    kernel: str
    time_ms: int
    entries: str  # open, paused, blocked
    entries_reason: str
    breaches: list[str]
    venues: list[VenueRow]
    feeds: list[FeedRow]
    positions: list[PositionRow]
    orders: list[OrderRow]
    recent: list[LogLine]


class StatusModel:
    """Component: follows every event into a `Status`; live, polls balances and open orders."""

    def __init__(self, clock: Clock, venues: Sequence[Venue], *, poll_interval_s: float = 15.0) -> None:
        self.clock = clock
        self.venues = list(venues)
        self.poll_interval_s = poll_interval_s
        self.version = 0
        self.book = PositionBook()
        self._changed = asyncio.Event()
        self._kernel = "starting"
        self._entries, self._entries_reason = "open", ""
        self._breaches: list[str] = []
        self._feeds: dict[tuple[str, str, str], FeedRow] = {}
        self._venues = {venue.exchange.name: VenueRow(exchange=venue.exchange.name) for venue in self.venues}
        self._orders: dict[str, list[OrderRow]] = {}
        self._recent: deque[LogLine] = deque(maxlen=RECENT_LINES)
        self._describer = LiveLog()  # the same sentences the log shows
        self._live = False

    def attach(self, bus: Bus) -> None:
        """Follow every event."""
        self._live = bus.mode == "live"
        bus.subscribe(Event, self.apply, name="StatusModel", eager=False)

    def apply(self, event: Event) -> None:
        """Take `event` into the status and wake whoever waits for a change."""
        changed = self.book.apply(event)
        changed = self._follow(event) or changed
        if not isinstance(event, CandleClosed | PriceMoved):  # the busiest events: never a line here
            line = self._describer.describe(event)
            if line is not None and line[0] >= logging.INFO:
                self._recent.append(
                    LogLine(time_ms=event.ts_ns // 1_000_000, level=logging.getLevelName(line[0]), text=line[1])
                )
                changed = True
        if changed:
            self._notify()

    def _notify(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()  # each waiter holds the event that was current when it began

    def wake(self) -> None:
        """Wake every waiter (the server is closing)."""
        self._notify()

    async def wait_changed(self, version: int) -> None:
        """Return once the status is newer than `version`."""
        while self.version <= version:
            await self._changed.wait()

    def _follow(self, event: Event) -> bool:
        match event:
            case CandleClosed():
                row = self._feed(event.exchange, event.symbol, event.interval)
                row.candles += 1
                row.late_candles += event.late
                row.last_open_time_ms, row.last_close = event.open_time_ms, event.close
                row.lag_ms = event.ts_ns // 1_000_000 - event.open_time_ms - interval_ms(event.interval)
                if row.health in ("waiting", "down"):
                    row.health, row.detail = "ok", ""
            case FeedConnected():
                row = self._feed(event.exchange, event.symbol, event.interval)
                row.reconnects += row.health == "down"
                row.health, row.detail = "ok", ""
            case FeedDisconnected():
                row = self._feed(event.exchange, event.symbol, event.interval)
                row.health, row.detail = "down", f"{event.reason} (attempt {event.attempt})"
            case FeedStopped():
                row = self._feed(event.exchange, event.symbol, event.interval)
                row.health, row.detail = "stopped", event.reason
            case FeedDegraded():
                row = self._feed(event.exchange, event.symbol, event.interval)
                row.health, row.detail = "degraded", event.reason
            case FeedLagging():
                row = self._feed(event.exchange, event.symbol, event.interval)
                row.health, row.detail = ("lagging", f"{event.lag_ms} ms behind") if event.behind else ("ok", "")
            case ClockSynced():
                venue = self._venue(event.exchange)
                venue.clock_offset_ms, venue.clock_rtt_ms = event.offset_ms, event.rtt_ms
            case ReconciliationCompleted():
                venue = self._venue(event.exchange)
                outcome = ", ".join(
                    [f"{event.repairs} repaired"] * bool(event.repairs)
                    + [f"{event.failures} unreadable"] * bool(event.failures)
                )
                venue.reconciliation = f"{event.trigger}: {outcome or 'in sync'}"
                venue.reconciled_ms = event.ts_ns // 1_000_000
            case EntriesPaused():
                if self._entries != "blocked":
                    self._entries, self._entries_reason = "paused", event.reason
            case EntriesResumed():
                self._entries, self._entries_reason, self._breaches = "open", "", []
            case RiskLimitBreached():
                where = f" on {event.exchange} {event.symbol}".rstrip() if event.exchange else ""
                text = f"{event.limit}{where}: {event.value:,.6g} over {event.threshold:,.6g}"
                self._entries, self._entries_reason = "blocked", text
                self._breaches.append(text)
            case KernelStarted():
                self._kernel = "running"
            case KernelStopping():
                self._kernel = "stopping"
            case _:
                return False
        return True

    def _feed(self, exchange: str, symbol: str, interval: str) -> FeedRow:
        key = (exchange, symbol, interval)
        row = self._feeds.get(key)
        if row is None:
            row = self._feeds[key] = FeedRow(exchange=exchange, symbol=symbol, interval=interval)
        return row

    def _venue(self, exchange: str) -> VenueRow:
        venue = self._venues.get(exchange)
        if venue is None:
            venue = self._venues[exchange] = VenueRow(exchange=exchange)
        return venue

    async def run(self) -> None:
        """Live: read every venue's balance and open orders now and every `poll_interval_s`."""
        if not self._live:
            return  # a replay reads nothing from an exchange
        while True:
            for venue in self.venues:
                await self.poll(venue)
            self._notify()
            await self.clock.sleep(self.poll_interval_s)

    async def poll(self, venue: Venue) -> None:
        """Read one venue's balance and open orders; a failure is shown, never raised."""
        row = self._venue(venue.exchange.name)
        try:
            balance = await venue.exchange.fetch_balance()
            orders = [order for symbol in venue.symbols for order in await venue.exchange.fetch_open_orders(symbol)]
        except ExchangeError as exc:
            row.read_error = exc.message
            return
        row.read_error = ""
        row.currency, row.balance_free, row.balance_total = balance.currency, balance.free, balance.total
        self._orders[venue.exchange.name] = [
            OrderRow(
                exchange=venue.exchange.name,
                symbol=order.symbol,
                client_order_id=order.client_order_id,
                side=order.side,
                qty=order.qty,
                stop_price=order.stop_price,
                reduce_only=order.reduce_only,
            )
            for order in orders
        ]
        limiter = getattr(venue.exchange, "limiter", None)  # ccxt venues share one budget per key
        if limiter is not None:
            row.rate_limit_used, row.rate_limit_capacity = limiter.used, limiter.capacity

    def snapshot(self) -> Status:
        """The status as of now."""
        now_ns = self.clock.now_ns()
        now_ms = now_ns // 1_000_000
        positions = [
            PositionRow(
                exchange=held.exchange,
                symbol=held.symbol,
                side=held.side,
                qty=held.qty,
                entry_price=held.entry_price,
                stop_price=held.stop_price,
                mark_price=held.mark_price,
                unrealised_pnl=held.unrealised_pnl,
            )
            for held in self.book.positions.values()
        ]
        venues = []
        for row in self._venues.values():
            open_pnl = sum(p.unrealised_pnl for p in positions if p.exchange == row.exchange)
            equity = row.balance_total + open_pnl if row.currency else 0.0
            realised = self.book.realised_today(now_ns, row.exchange)
            venues.append(msgspec.structs.replace(row, equity=equity, realised_pnl_today=realised))
        feeds = [
            msgspec.structs.replace(
                row, age_ms=now_ms - row.last_open_time_ms - interval_ms(row.interval) if row.candles else 0
            )
            for row in self._feeds.values()
        ]
        return Status(
            kernel=self._kernel,
            time_ms=now_ms,
            entries=self._entries,
            entries_reason=self._entries_reason,
            breaches=list(self._breaches),
            venues=venues,
            feeds=feeds,
            positions=positions,
            orders=[order for orders in self._orders.values() for order in orders],
            recent=list(self._recent),
        )

    @property
    def kernel_state(self) -> str:
        """starting, running or stopping, as the kernel's events said."""
        return self._kernel

    @property
    def symbols(self) -> dict[str, tuple[str, ...]]:
        """The symbols each venue trades (what a flatten may name)."""
        return {venue.exchange.name: tuple(venue.symbols) for venue in self.venues}

    def __repr__(self) -> str:
        return (
            f"StatusModel(version={self.version}, kernel={self._kernel!r}, entries={self._entries!r}, "
            f"feeds={len(self._feeds)}, positions={len(self.book.positions)})"
        )
