"""Risk limits and the kill switch: `[risk]` max_* limits checked on every event that can move them.

`RiskMonitor` follows positions, marks, orders and stop updates. When a limit
is exceeded it publishes `RiskLimitBreached` (the execution handlers then
send no new entry until `EntriesResumed`) and, with `flatten_on_breach`,
`FlattenRequested` for everything (and again for any position that opens
while breached: an entry already on its way when the breach came). Both are input events: a replay of the
recorded stream blocks and flattens at the same place without the monitor.
A limit breaches once until the next resume; still exceeded then, it
breaches again at the next event that checks it.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Awaitable
from typing import Final

from twinstar.bus.bus import Bus
from twinstar.bus.events import (
    CandleClosed,
    EntriesResumed,
    Event,
    FlattenRequested,
    OrderFailed,
    OrderPlaced,
    PositionClosed,
    PositionOpened,
    PositionReconciled,
    PriceMoved,
    RiskLimitBreached,
    SLUpdated,
    SLUpdateFailed,
)
from twinstar.clock import Clock
from twinstar.config import RiskConfig
from twinstar.control.book import PositionBook

log: Final = logging.getLogger("twinstar.risk")

_MINUTE_NS: Final = 60 * 1_000_000_000
_MOVES_EXPOSURE: Final = (CandleClosed, PriceMoved, PositionOpened, PositionClosed, PositionReconciled)


class RiskMonitor:
    """Component: checks the kill-switch limits of `risk` and publishes breaches."""

    def __init__(self, risk: RiskConfig, clock: Clock) -> None:
        self.risk = risk
        self.clock = clock
        self.book = PositionBook()
        self.breaches: list[RiskLimitBreached] = []
        self._breached: set[str] = set()  # limits that breached since the last resume
        self._orders: collections.deque[int] = collections.deque()  # ts_ns of recent orders
        self._failures: dict[tuple[str, str], int] = {}  # consecutive stop-update failures per (venue, symbol)
        self._bus: Bus | None = None

    def attach(self, bus: Bus) -> None:
        """Follow every event (positions, marks, orders, stops, resumes)."""
        self._bus = bus
        bus.subscribe(Event, self.handle, name="RiskMonitor")

    def handle(self, event: Event) -> Awaitable[None] | None:
        """Update what the limits measure; return the publishing of a breach, if `event` caused one."""
        self.book.apply(event)
        found: list[RiskLimitBreached] = []
        match event:
            case EntriesResumed():
                self._breached.clear()
                self._failures.clear()
                return None
            case OrderPlaced() | OrderFailed():
                self._orders.append(event.ts_ns)
                while self._orders and self._orders[0] <= event.ts_ns - _MINUTE_NS:
                    self._orders.popleft()
                limit = self.risk.max_orders_per_minute
                if limit and len(self._orders) > limit:
                    found.append(self._breach("orders_per_minute", len(self._orders), limit, event, ""))
            case SLUpdated():
                self._failures.pop((event.exchange, event.symbol), None)
            case SLUpdateFailed():
                key = (event.exchange, event.symbol)
                failures = self._failures[key] = self._failures.get(key, 0) + 1
                limit = self.risk.max_sl_update_failures
                if limit and failures >= limit:
                    found.append(self._breach("sl_update_failures", failures, limit, event))
            case _ if isinstance(event, _MOVES_EXPOSURE):
                found += self._exposure(event)
        fresh = [breach for breach in found if breach.limit not in self._breached]
        if not fresh:
            if isinstance(event, PositionOpened) and self._breached and self.risk.flatten_on_breach:
                return self._flatten(event.exchange, event.symbol)  # an entry that raced the breach to the venue
            return None
        self._breached.update(breach.limit for breach in fresh)
        return self._publish(fresh)

    def _exposure(self, event: Event) -> list[RiskLimitBreached]:
        risk, found = self.risk, []
        positions = list(self.book.positions.values())
        if risk.max_notional_per_symbol:
            for held in positions:
                if held.notional > risk.max_notional_per_symbol:
                    found.append(
                        self._breach(
                            "notional_per_symbol", held.notional, risk.max_notional_per_symbol, event, held.symbol
                        )
                    )
                    break
        total = sum(held.notional for held in positions)
        if risk.max_notional_total and total > risk.max_notional_total:
            found.append(self._breach("notional_total", total, risk.max_notional_total, event, ""))
        loss = -(self.book.realised_today(event.ts_ns) + sum(held.unrealised_pnl for held in positions))
        if risk.max_daily_loss and loss > risk.max_daily_loss:
            found.append(self._breach("daily_loss", loss, risk.max_daily_loss, event, ""))
        return found

    def _breach(
        self, limit: str, value: float, threshold: float, event: Event, symbol: str | None = None
    ) -> RiskLimitBreached:
        exchange = getattr(event, "exchange", "")
        symbol = getattr(event, "symbol", "") if symbol is None else symbol
        if symbol:
            exchange = next((e for (e, s) in self.book.positions if s == symbol), exchange)
        return RiskLimitBreached(
            ts_ns=self.clock.now_ns(),
            limit=limit,
            value=float(value),
            threshold=float(threshold),
            exchange=exchange if symbol else "",
            symbol=symbol,
        )

    async def _publish(self, breaches: list[RiskLimitBreached]) -> None:
        if self._bus is None:
            return
        for breach in breaches:
            log.critical(
                "RISK LIMIT %s breached: %.6g over %.6g; new entries blocked until resumed",
                breach.limit,
                breach.value,
                breach.threshold,
            )
            self.breaches.append(breach)
            await self._bus.publish(breach)
        if self.risk.flatten_on_breach:
            await self._flatten()

    async def _flatten(self, exchange: str = "", symbol: str = "") -> None:
        if self._bus is not None:
            reason = f"risk limit {', '.join(sorted(self._breached))} breached"
            await self._bus.publish(
                FlattenRequested(
                    ts_ns=self.clock.now_ns(), reason=reason, exchange=exchange, symbol=symbol, source="risk"
                )
            )

    def __repr__(self) -> str:
        return f"RiskMonitor(breached={sorted(self._breached)}, orders_last_minute={len(self._orders)})"
