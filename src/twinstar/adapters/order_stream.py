"""The venue's private order stream (ccxt.pro `watch_orders`) as `OrderUpdated` events.

A stop the exchange fills is pushed on this stream the moment it fills; the
position handler then settles that position from the exchange at once instead
of at the next routine check. The stream only hastens what reconciliation
finds anyway: when it breaks, the gap is covered by a full reconciliation
after it comes back (and by the periodic one meanwhile).

Its connection state is published as the feed events with `interval="orders"`
and `symbol="*"` (one stream for every symbol of the venue), so the position
handler's "reconcile after a reconnect" and the live log apply unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

import anyio

from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.adapters.supervision import cancelled_from_outside, reason_of
from twinstar.bus.bus import Bus
from twinstar.bus.events import FeedConnected, FeedDisconnected, OrderUpdated
from twinstar.clock import Clock

STREAM: Final = "orders"  # the `interval` of this stream's feed events
ALL_SYMBOLS: Final = "*"
ORDERS_KEPT: Final = 100
CCXT_KEPT: Final = 1_000  # ccxt.pro's own default for its order and trade caches


def streams_orders(exchange: CcxtExchange) -> bool:
    """Whether ccxt.pro streams this account's orders (it needs keys to log in)."""
    return bool(exchange.ccxt.has.get("watchOrders")) and bool(exchange.ccxt.apiKey)


class OrderStream:
    """Component: publish every update of an order in `symbols` the venue pushes."""

    def __init__(
        self,
        exchange: CcxtExchange,
        symbols: Sequence[str],
        clock: Clock,
        *,
        backoff_s: tuple[float, ...] = (1.0, 2.0, 5.0, 10.0, 30.0),
        settle_s: float = 1.0,
    ) -> None:
        self.exchange = exchange
        self.symbols = frozenset(symbols)
        self.clock = clock
        self.backoff_s = backoff_s
        self.settle_s = settle_s
        self.updates = 0
        # ccxt.pro keeps `ordersLimit` orders (1,000 by default, with their raw messages) and hands over only
        # the new ones, which are all this stream reads: a long run need not carry a thousand old orders.
        options = exchange.ccxt.options
        if "ordersLimit" not in exchange.config.options:  # the user's own setting wins
            options["ordersLimit"] = ORDERS_KEPT
        # The account's fills go into the `tradesLimit` cache too; a trade-built feed may have raised it for
        # public trades (same option), and then it stays.
        if "tradesLimit" not in exchange.config.options and int(options.get("tradesLimit") or 0) <= CCXT_KEPT:
            options["tradesLimit"] = ORDERS_KEPT
        self._bus: Bus | None = None
        self._stopped = False

    def attach(self, bus: Bus) -> None:
        """Remember the bus; this component only publishes."""
        self._bus = bus

    async def run(self) -> None:
        """Watch until `stop_intake`; after a break, back off, watch again and say when it is back."""
        attempt = 0
        while not self._stopped:
            self.exchange.fills_streamed = not attempt  # a broken stream brings no commissions
            try:
                if attempt:
                    updates = await self._watch_after_break()
                    attempt = 0
                    await self._publish(FeedConnected)
                else:
                    updates = await self.exchange.ccxt.watch_orders()
            except (Exception, asyncio.CancelledError) as exc:  # a dropped socket, an expired login, a closed client
                if cancelled_from_outside(exc):
                    raise  # our own shutdown
                if self._stopped:
                    return
                attempt += 1
                self.exchange.fills_streamed = False
                reason = self.exchange.scrub(reason_of(exc))
                wait = self.backoff_s[min(attempt, len(self.backoff_s)) - 1]
                await self._publish(FeedDisconnected, reason=reason, attempt=attempt, retry_in_s=wait)
                await self.clock.sleep(wait)
                continue
            self.exchange.order_updates_arrived()
            for order in updates or ():
                await self._order_updated(order)

    async def _watch_after_break(self) -> list[dict[str, Any]] | None:
        """Watch again; a watch that has not failed within `settle_s` has its socket up (None: no update yet).

        ccxt.pro resolves `watch_orders` only on the next update, which may be
        hours away; a login or connection failure raises within milliseconds.
        """
        with anyio.move_on_after(self.settle_s):  # a connection watchdog: real time by nature
            return list(await self.exchange.ccxt.watch_orders())
        return None

    async def _order_updated(self, order: dict[str, Any]) -> None:
        symbol = str(order.get("symbol") or "")
        if symbol not in self.symbols:
            return
        self.updates += 1
        trigger = order.get("triggerPrice") or order.get("stopPrice") or order.get("stopLossPrice")
        filled = float(order.get("filled") or 0.0)
        if self._bus is not None:
            await self._bus.publish(
                OrderUpdated(
                    ts_ns=self.clock.now_ns(),
                    exchange=self.exchange.name,
                    symbol=symbol,
                    client_order_id=str(order.get("clientOrderId") or ""),
                    order_id=str(order.get("id") or ""),
                    status=str(order.get("status") or ""),
                    side=str(order.get("side") or ""),
                    filled_qty=self.exchange.base_qty(symbol, filled),
                    avg_price=float(order.get("average") or order.get("price") or 0.0),
                    reduce_only=bool(order.get("reduceOnly")),
                    is_stop=bool(trigger),
                )
            )

    async def _publish(self, event_type: type[FeedConnected | FeedDisconnected], **fields: Any) -> None:
        if self._bus is not None:
            await self._bus.publish(
                event_type(
                    ts_ns=self.clock.now_ns(),
                    exchange=self.exchange.name,
                    symbol=ALL_SYMBOLS,
                    interval=STREAM,
                    **fields,
                )
            )

    async def stop_intake(self) -> None:
        """Stop watching; the kernel then cancels the task."""
        self._stopped = True
        self.exchange.fills_streamed = False

    def __repr__(self) -> str:
        return f"OrderStream({self.exchange.name}, symbols={sorted(self.symbols)}, updates={self.updates})"
