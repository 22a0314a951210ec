"""Resting entries and kernel-managed exits: what the venue does not do for a bracket, the kernel does.

* A limit entry that rests (`OrderPlaced`, intent open, nothing filled) is
  looked up by client id on every candle of its symbol and on every order
  update naming it. Once it has filled, in full or in part, what is left is
  cancelled and the fill is published as the entry (`OrderPlaced`, intent
  open): the position handler opens and protects it like any other. An
  entry cancelled or expired with nothing filled is forgotten.
* An entry fill whose take-profit the venue did not take on the order gets a
  reduce-only take-profit for what filled (`place_take_profit`). Once a
  candle reaches its price, or the venue's stream names it, it is looked up;
  its fill is published (`OrderPlaced`, intent take_profit), so the position
  handler books the close at the real fill price and cancels the stop.
* When the position closes (its stop, a signal, an emergency exit, or the
  take-profit itself), the take-profit left behind is cancelled: the two exits
  cancel each other. Where the venue attached both exits (Bybit's position
  TP/SL, OKX's attached algo order) the venue does this itself.
* After a restart, the start reconciliation reports our resting entries and
  take-profits (`PositionReconciled` ``resting_found`` / ``take_profit_found``):
  a take-profit of the open position is adopted; a resting entry is cancelled
  (``resting_cancelled``: it was decided before the restart) or, with
  `orders.resting_on_restart = "adopt"`, watched again (``resting_adopted``):
  its fill gets the stop and take-profit its signal asked for, journaled
  with the resting entry (`handlers.journal.Resting`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Final, Literal

import msgspec

from twinstar.adapters.base import ErrorKind, Exchange, OpenOrder, OrderResult
from twinstar.bus.bus import Bus
from twinstar.bus.events import (
    CandleClosed,
    OrderFailed,
    OrderPlaced,
    OrderUpdated,
    PositionClosed,
    PositionReconciled,
    PositionSide,
    Side,
    SignalFired,
)
from twinstar.clock import Clock

log: Final = logging.getLogger("twinstar.brackets")


def take_profit_cid(entry_cid: str) -> str:
    """The take-profit's client id, derived from its entry's (``two-...`` -> ``twt-...``)."""
    return f"twt{entry_cid[3:]}"


def exit_reason(
    fill_price: float, stop: tuple[str, float], take_profit: tuple[str, float]
) -> Literal["stop_loss", "take_profit"]:
    """Which exit filled the stop's order (`stop`, `take_profit`: each exit's client id and trigger price).

    Where the venue keeps both exits in one order under the stop's id (OKX's
    attached algo order), the fill tells: it is nearer the trigger that fired,
    a gap through either included (a long's stop is below, its take-profit above).
    """
    (stop_cid, stop_price), (profit_cid, target) = stop, take_profit
    if profit_cid != stop_cid or target <= 0:
        return "stop_loss"
    return "take_profit" if abs(fill_price - target) < abs(fill_price - stop_price) else "stop_loss"


class _TakeProfit(msgspec.Struct, frozen=True):
    order: OpenOrder
    position_side: PositionSide


class BracketHandler:
    """Watches one venue's resting entries and keeps its take-profits; see the module docstring."""

    def __init__(
        self, exchange: Exchange, clock: Clock, *, resting_on_restart: Literal["cancel", "adopt"] = "cancel"
    ) -> None:
        self.exchange = exchange
        self.clock = clock
        self.resting_on_restart = resting_on_restart
        self._bus: Bus | None = None
        self._wanted: dict[str, float] = {}  # symbol -> take-profit price the latest signal asked for
        self._resting: dict[str, OrderPlaced] = {}  # symbol -> its resting entry
        self._take_profits: dict[str, _TakeProfit] = {}  # symbol -> the take-profit the kernel placed

    def attach(self, bus: Bus) -> None:
        """Subscribe to signals, entries, candles, order updates and closes of this venue."""
        self._bus = bus
        name = f"BracketHandler[{self.exchange.name}]"
        bus.subscribe(SignalFired, self.on_signal, name=f"{name}.on_signal")
        bus.subscribe(OrderPlaced, self.on_order, name=f"{name}.on_order")
        bus.subscribe(CandleClosed, self.on_candle, name=f"{name}.on_candle")
        bus.subscribe(OrderUpdated, self.on_order_update, name=f"{name}.on_order_update")
        bus.subscribe(PositionClosed, self.on_position_closed, name=f"{name}.on_position_closed")
        bus.subscribe(PositionReconciled, self.on_reconciled, name=f"{name}.on_reconciled")

    def on_signal(self, signal: SignalFired) -> Awaitable[None] | None:
        """Remember the take-profit a signal asked for; a new signal replaces the symbol's resting entry."""
        if signal.exchange != self.exchange.name:
            return None
        self._wanted[signal.symbol] = signal.take_profit_price
        return self._replace_resting(signal.symbol) if signal.symbol in self._resting else None

    async def _replace_resting(self, symbol: str) -> None:
        """Book what the resting entry filled so far; cancel the rest: the newer decision stands."""
        await self._check_resting(symbol)
        resting = self._resting.pop(symbol, None)
        if resting is None:
            return  # it had filled (now booked) or ended
        order = OpenOrder(
            symbol=symbol,
            order_id=resting.order_id,
            client_order_id=resting.client_order_id,
            side=resting.side,
            qty=resting.requested_qty,
            price=resting.avg_price,
        )
        cancelled = await self.exchange.cancel_order(symbol, order)
        if cancelled.ok or cancelled.error_kind is ErrorKind.ORDER_NOT_FOUND:
            log.info("%s %s: resting entry %s replaced by a new signal", self.exchange.name, symbol, order)
            return
        log.warning("%s %s: cancelling replaced entry %s failed: %s", self.exchange.name, symbol, order, cancelled)
        self._resting[symbol] = resting  # still followed: a fill is booked, never lost

    async def on_order(self, order: OrderPlaced) -> None:
        """Watch an entry that rests; give a filled entry its take-profit where the venue did not."""
        if order.exchange != self.exchange.name or order.intent != "open":
            return
        if order.filled_qty <= 0:
            if order.status in ("open", "partial"):
                self._resting[order.symbol] = order
            return
        target = self._wanted.get(order.symbol, 0.0)
        if target > 0 and not order.take_profit_price:
            await self._place_take_profit(order, target)

    def on_candle(self, candle: CandleClosed) -> Awaitable[None] | None:
        """Look up a resting entry, or a take-profit the candle reached (plain: most candles need neither)."""
        if (not self._resting and not self._take_profits) or candle.exchange != self.exchange.name:
            return None
        symbol = candle.symbol
        if symbol in self._resting:
            return self._check_resting(symbol)
        kept = self._take_profits.get(symbol)
        if kept is not None and (
            candle.high >= kept.order.stop_price
            if kept.position_side == "long"
            else candle.low <= kept.order.stop_price
        ):
            return self._check_take_profit(symbol)
        return None

    def on_order_update(self, event: OrderUpdated) -> Awaitable[None] | None:
        """The venue's stream named a resting entry or a take-profit: look it up now."""
        if event.exchange != self.exchange.name:
            return None
        resting, kept = self._resting.get(event.symbol), self._take_profits.get(event.symbol)
        if resting is not None and event.client_order_id == resting.client_order_id:
            return self._check_resting(event.symbol)
        if kept is not None and event.client_order_id == kept.order.client_order_id:
            return self._check_take_profit(event.symbol)
        return None

    async def _check_take_profit(self, symbol: str) -> None:
        kept = self._take_profits[symbol]
        found = await self.exchange.fetch_order(symbol, kept.order.client_order_id)
        if not found.ok or found.filled_qty <= 0 or self._take_profits.get(symbol) is not kept:
            return  # not filled (yet), unreadable now, or settled meanwhile
        del self._take_profits[symbol]
        await self._publish(
            OrderPlaced(
                ts_ns=self.clock.now_ns(),
                client_order_id=kept.order.client_order_id,
                order_id=found.order_id,
                exchange=self.exchange.name,
                symbol=symbol,
                side=kept.order.side,
                intent="take_profit",
                requested_qty=kept.order.qty,
                filled_qty=found.filled_qty,
                avg_price=found.avg_price,
                fee=found.fee,
                status=found.status,
                attempts=1,
                partial=found.filled_qty < kept.order.qty - 1e-12,
            )
        )

    async def _check_resting(self, symbol: str) -> None:
        resting = self._resting[symbol]
        found = await self.exchange.fetch_order(symbol, resting.client_order_id)
        if not found.ok or found.status == "open" or self._resting.get(symbol) is not resting:
            return  # unreadable now (asked again on the next candle), still resting, or settled meanwhile
        del self._resting[symbol]
        if found.status == "partial":  # the rest is cancelled: the part that filled is the entry
            order = OpenOrder(
                symbol=symbol,
                order_id=found.order_id,
                client_order_id=found.client_order_id,
                side=resting.side,
                qty=found.requested_qty - found.filled_qty,
            )
            cancelled = await self.exchange.cancel_order(symbol, order)
            if not cancelled.ok and cancelled.error_kind is not ErrorKind.ORDER_NOT_FOUND:
                log.warning("%s %s: cancelling the rest of %s failed: %s", self.exchange.name, symbol, order, cancelled)
            found = await self.exchange.fetch_order(symbol, resting.client_order_id) if cancelled.ok else found
        if found.filled_qty <= 0:
            log.info("%s %s: resting entry %s ended unfilled", self.exchange.name, symbol, resting.client_order_id)
            return
        await self._publish(
            msgspec.structs.replace(
                resting,
                ts_ns=self.clock.now_ns(),
                filled_qty=found.filled_qty,
                avg_price=found.avg_price,
                fee=found.fee,
                status=found.status,
            )
        )

    async def _place_take_profit(self, entry: OrderPlaced, target: float) -> None:
        side: PositionSide = "long" if entry.side == "buy" else "short"
        cid = take_profit_cid(entry.client_order_id)
        placed = await self.exchange.place_take_profit(
            entry.symbol, side, entry.filled_qty, target, client_order_id=cid
        )
        if not placed.ok:
            await self._failed(entry, placed)
            return
        order = OpenOrder(
            symbol=entry.symbol,
            order_id=placed.order_id,
            client_order_id=cid,
            side="sell" if side == "long" else "buy",
            qty=entry.filled_qty,
            stop_price=target,
            reduce_only=True,
            take_profit=True,
        )
        replaced = self._take_profits.get(entry.symbol)
        self._take_profits[entry.symbol] = _TakeProfit(order, side)
        if replaced is not None and replaced.position_side != side:
            # A reversal whose close is booked after the new entry (its fee is read once the new stop rests,
            # `money.exit_fees`): the reversed position's take-profit goes now.
            await self._cancel(entry.symbol, replaced)

    async def on_position_closed(self, event: PositionClosed) -> None:
        """The position is gone: cancel its take-profit (already gone if it was what closed it)."""
        if event.exchange != self.exchange.name:
            return
        kept = self._take_profits.get(event.symbol)
        if kept is None or kept.position_side != event.side:
            return  # none, or the take-profit of the position a reversal opened since
        del self._take_profits[event.symbol]
        await self._cancel(event.symbol, kept)

    async def _cancel(self, symbol: str, kept: _TakeProfit) -> None:
        cancelled = await self.exchange.cancel_order(symbol, kept.order)
        if not cancelled.ok and cancelled.error_kind is not ErrorKind.ORDER_NOT_FOUND:
            log.warning("%s %s: take-profit %s left resting: %s", self.exchange.name, symbol, kept, cancelled)

    def on_reconciled(self, event: PositionReconciled) -> Awaitable[None] | None:
        """Take over what the start reconciliation found resting of ours."""
        if event.exchange != self.exchange.name or event.action not in ("resting_found", "take_profit_found"):
            return None
        side: Side = "buy" if event.side == "buy" else "sell"
        order = OpenOrder(
            symbol=event.symbol,
            order_id="",
            client_order_id=event.detail,
            side=side,
            qty=event.after,
            stop_price=event.stop_price if event.action == "take_profit_found" else 0.0,
            reduce_only=event.action == "take_profit_found",
            take_profit=event.action == "take_profit_found",
            price=0.0 if event.action == "take_profit_found" else event.stop_price,
        )
        if event.action == "take_profit_found":
            self._take_profits[event.symbol] = _TakeProfit(order, "long" if side == "sell" else "short")
            return None
        return self._found_resting(order, event.take_profit_price)

    async def _found_resting(self, order: OpenOrder, take_profit_price: float) -> None:
        """A resting entry of ours from before the restart: cancel or watch it, as configured.

        An adopted one gets, once it fills, the take-profit its signal asked for (journaled with it).
        """
        symbol, cid = order.symbol, order.client_order_id
        found = await self.exchange.fetch_order(symbol, cid)
        if not found.ok or found.status not in ("open", "partial"):
            return  # gone meanwhile, or unreadable: a fill shows up as a position the reconciler adopts
        if self.resting_on_restart == "adopt":
            self._wanted[symbol] = take_profit_price
            self._resting[symbol] = OrderPlaced(
                ts_ns=self.clock.now_ns(),
                client_order_id=cid,
                order_id=found.order_id,
                exchange=self.exchange.name,
                symbol=symbol,
                side=order.side,
                intent="open",
                requested_qty=found.requested_qty or order.qty,
                filled_qty=0.0,
                avg_price=0.0,
                fee=0.0,
                status=found.status,
                attempts=0,
                partial=False,
            )
            action = "resting_adopted"
        else:
            cancelled = await self.exchange.cancel_order(
                symbol, msgspec.structs.replace(order, order_id=found.order_id)
            )
            if not cancelled.ok and cancelled.error_kind is not ErrorKind.ORDER_NOT_FOUND:
                log.warning("%s %s: cancelling resting entry %s failed: %s", self.exchange.name, symbol, cid, cancelled)
                return
            action = "resting_cancelled"
        log.warning("%s %s: resting entry %s from before the restart: %s", self.exchange.name, symbol, cid, action)
        await self._publish(
            PositionReconciled(
                ts_ns=self.clock.now_ns(),
                exchange=self.exchange.name,
                symbol=symbol,
                before=order.qty,
                after=order.qty if action == "resting_adopted" else 0.0,
                action=action,
                side=order.side,
                stop_price=order.price,
                detail=cid,
            )
        )

    async def _failed(self, entry: OrderPlaced, result: OrderResult) -> None:
        kind = result.error_kind or ErrorKind.UNKNOWN
        log.error("%s %s: take-profit not placed (%s): %s", entry.exchange, entry.symbol, kind, result.message)
        await self._publish(
            OrderFailed(
                ts_ns=self.clock.now_ns(),
                client_order_id=result.client_order_id,
                exchange=entry.exchange,
                symbol=entry.symbol,
                side="sell" if entry.side == "buy" else "buy",
                intent="take_profit",
                error_kind=kind.label,
                message=result.message,
                attempts=1,
            )
        )

    async def _publish(self, event: OrderPlaced | OrderFailed | PositionReconciled) -> None:
        if self._bus is not None:
            await self._bus.publish(event)

    def __repr__(self) -> str:
        return (
            f"BracketHandler(exchange={self.exchange.name!r}, resting={sorted(self._resting)}, "
            f"take_profits={sorted(self._take_profits)})"
        )
