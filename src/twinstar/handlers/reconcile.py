"""Reconciliation: the exchange is the truth about positions, orders and stops.

At start (before the first candle is traded), on a timer, after a reconnect
and when the private order stream says so, `Reconciler.reconcile` reads, for
every symbol the kernel trades or knows of, the position and the resting
orders, and repairs what differs from the position handler's view:

* orders a crash left unresolved (journal: sent, no outcome) are looked up by
  client id, never resent; one not found is given up only once its request
  can no longer execute (its receive window passed);
* a position the kernel did not know is adopted; our own stop (client id
  `STOP_PREFIX`, or the venue's own stop of the position, `OpenOrder.position_stop`:
  a stop attached to the entry, or the id the journal recorded for the stop in
  force) is adopted with it; a position with no stop gets one
  (`risk.on_unprotected = "protect"`) or is closed (`"close"`);
* stops of ours that protect nothing, or that a newer stop replaced, are
  cancelled; so are take-profits of ours (`TAKE_PROFIT_PREFIX`) with no
  position to close;
* at start, limit entries of ours found resting (`ENTRY_PREFIX`) and our
  take-profits of an open position are reported (``resting_found``,
  ``take_profit_found``): the bracket handler cancels or adopts them
  (`orders.resting_on_restart`);
* a position gone on the exchange is booked closed (by its stop's fill, or
  as closed outside the kernel); a size drift resizes the stop.

Each finding is a `PositionReconciled`; each pass ends with a
`ReconciliationCompleted`. An answer that cannot be read changes nothing (the
position keeps its stop) and is reported as ``unreadable``. Reconciliation
belongs to the position handler, whose state it repairs; it lives here to
keep one concept per module.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Final

from twinstar.adapters.base import ErrorKind, ExchangeError, OpenOrder, Position
from twinstar.bus.events import PositionClosed, PositionReconciled, PositionSide, ReconciliationCompleted
from twinstar.handlers.brackets import exit_reason
from twinstar.handlers.journal import Flat, Outcome, Sent

if TYPE_CHECKING:
    from twinstar.handlers.position import OpenPosition, PositionHandler

log: Final = logging.getLogger("twinstar.reconcile")

#: Every stop this kernel places has a client id starting so: reconciliation knows its own by it.
STOP_PREFIX: Final = "tws-"
#: The same for entries and take-profits (see `handlers.execution.client_order_id`, `handlers.brackets`).
ENTRY_PREFIX: Final = "two-"
TAKE_PROFIT_PREFIX: Final = "twt-"
#: A pending order on a venue without a receive window is given up after this long unseen.
NO_WINDOW_GIVE_UP_MS: Final = 60_000
#: Start-up reconciliation tries this often before trading starts anyway (the timer retries later).
START_ATTEMPTS: Final = 3


class _UnsettledError(Exception):
    """This symbol cannot be decided now (an order may still be in flight); try again later."""


class Reconciler:
    """Compares one position handler's view with its exchange and repairs the difference."""

    def __init__(self, handler: PositionHandler) -> None:
        self.handler = handler
        self.passes = 0
        self.repairs = 0

    @property
    def _exchange_name(self) -> str:
        return self.handler.exchange.name

    def _symbols(self) -> list[str]:
        name = self._exchange_name
        known = [*self.handler.symbols, *self.handler.positions]
        known += [symbol for (exchange, symbol) in self.handler.journal.state.stops if exchange == name]
        known += [s.symbol for s in self.handler.journal.state.pending.values() if s.exchange == name]
        return list(dict.fromkeys(known))

    async def reconcile(self, trigger: str) -> int:
        """One pass over every symbol; return how many repairs it made."""
        handler = self.handler
        repairs = failures = 0
        symbols = self._symbols()
        down: ExchangeError | None = None  # the venue did not answer: the pass asks it no more
        for symbol in symbols:
            if down is not None:
                failures += 1
                await self._unreadable(symbol, down, logged=True)
                continue
            attempts = START_ATTEMPTS if trigger == "start" else 1
            for attempt in range(1, attempts + 1):
                try:
                    repairs += await self._symbol(symbol, wait_for_expiry=trigger == "start")
                    break
                except _UnsettledError as exc:
                    log.info("reconciling %s %s deferred: %s", self._exchange_name, symbol, exc)
                    break
                except ExchangeError as exc:
                    if attempt < attempts:
                        await handler.clock.sleep(float(attempt))
                        continue
                    failures += 1
                    if exc.kind in (ErrorKind.NETWORK, ErrorKind.TIMEOUT, ErrorKind.EXCHANGE_UNAVAILABLE):
                        down = exc  # every other symbol would wait on the same dead venue, each for its timeout
                        rest = len(symbols) - symbols.index(symbol) - 1
                        log.error(
                            "cannot reconcile %s %s: %s; nothing changed%s",
                            self._exchange_name,
                            symbol,
                            exc.message,
                            f" (nor for {rest} more symbol{'s' * (rest > 1)}: the venue is not answering)"
                            if rest
                            else "",
                        )
                    await self._unreadable(symbol, exc, logged=down is not None)
        self.passes += 1
        self.repairs += repairs
        if handler.live or repairs or failures:
            await handler.publish(
                ReconciliationCompleted(
                    ts_ns=handler.clock.now_ns(),
                    exchange=self._exchange_name,
                    trigger=trigger,
                    symbols=len(symbols),
                    repairs=repairs,
                    failures=failures,
                )
            )
        return repairs

    async def _unreadable(self, symbol: str, exc: ExchangeError, *, logged: bool = False) -> None:
        if not logged:
            log.error("cannot reconcile %s %s: %s; nothing changed", self._exchange_name, symbol, exc.message)
        position = self.handler.positions.get(symbol)
        await self.handler.publish(
            PositionReconciled(
                ts_ns=self.handler.clock.now_ns(),
                exchange=self._exchange_name,
                symbol=symbol,
                before=position.qty if position is not None else 0.0,
                after=position.qty if position is not None else 0.0,
                action="unreadable",
                side=position.side if position is not None else "",
                stop_price=position.stop_price if position is not None else 0.0,
                detail=exc.message,
            )
        )

    # -- one symbol ----------------------------------------------------------

    async def _symbol(self, symbol: str, *, wait_for_expiry: bool) -> int:
        handler, journal, name = self.handler, self.handler.journal, self._exchange_name
        repairs = await self._resolve_pending(symbol, wait_for_expiry=wait_for_expiry)
        generation = journal.generation(name, symbol)
        local = handler.positions.get(symbol)
        actual = await handler.exchange.fetch_position(symbol)
        orders = await handler.exchange.fetch_open_orders(symbol)
        if symbol in handler.busy or journal.generation(name, symbol) != generation:
            raise _UnsettledError("an order or stop moved while the exchange was read")
        if handler.positions.get(symbol) is not local or journal.pending_for(name, symbol):
            raise _UnsettledError("the position changed while the exchange was read")
        known = self._known_stop_ids(symbol, local)
        ours = [o for o in orders if o.is_stop and (o.position_stop or o.client_order_id in known or _prefixed(o))]
        repairs += await self._resting(symbol, orders, actual, start=wait_for_expiry)  # the start pass waits
        if actual is None:
            return repairs + await self._flat(symbol, local, ours)
        return repairs + await self._open(symbol, local, actual, ours)

    def _known_stop_ids(self, symbol: str, local: OpenPosition | None) -> set[str]:
        """The ids the kernel and its journal know `symbol`'s stop in force by.

        So an attached stop the venue gave no client id of ours (BingX lists it
        by its order id) is known as ours after a restart too.
        """
        recorded = self.handler.journal.stop_for(self._exchange_name, symbol)
        return {local.stop_cid if local is not None else "", recorded.cid if recorded is not None else ""} - {""}

    async def _resolve_pending(self, symbol: str, *, wait_for_expiry: bool) -> int:
        """Settle orders the journal lists as sent without an outcome; never resend them."""
        handler, journal, name = self.handler, self.handler.journal, self._exchange_name
        resolved = 0
        for sent in journal.pending_for(name, symbol):
            if sent.cid in journal.in_flight:
                raise _UnsettledError(f"order {sent.cid} is being sent")
            found = await handler.exchange.fetch_order(symbol, sent.cid)
            wait_ms = self._expiry(sent) - handler.clock.now_ms()
            if found.error_kind is ErrorKind.ORDER_NOT_FOUND and wait_ms > 0:
                if not wait_for_expiry:
                    raise _UnsettledError(f"order {sent.cid} may still arrive for {wait_ms} ms")
                await handler.clock.sleep(wait_ms / 1000)  # the request may still be on its way
                found = await handler.exchange.fetch_order(symbol, sent.cid)
            if found.ok:
                journal.write(
                    Outcome(
                        cid=sent.cid,
                        status="filled" if found.filled_qty > 0 else "failed",
                        filled_qty=found.filled_qty,
                        avg_price=found.avg_price,
                    )
                )
                detail = f"{sent.cid} ({sent.intent}) found: {found.status}, filled {found.filled_qty:g}"
            elif found.error_kind is ErrorKind.ORDER_NOT_FOUND:
                journal.write(Outcome(cid=sent.cid, status="failed"))
                detail = f"{sent.cid} ({sent.intent}) never reached the exchange; not resent"
            else:
                raise ExchangeError(found.error_kind or ErrorKind.UNKNOWN, found.message)
            resolved += 1
            log.warning("reconciled %s %s: pending order resolved: %s", name, symbol, detail)
            await handler.publish(
                PositionReconciled(
                    ts_ns=handler.clock.now_ns(),
                    exchange=name,
                    symbol=symbol,
                    before=0.0,
                    after=found.filled_qty if found.ok else 0.0,
                    action="pending_resolved",
                    side=sent.side,
                    detail=detail,
                )
            )
        return resolved

    def _expiry(self, sent: Sent) -> int:
        """When `sent` can no longer execute on the venue."""
        return sent.expires_ms if sent.expires_ms > 0 else sent.sent_ms + NO_WINDOW_GIVE_UP_MS

    async def _flat(self, symbol: str, local: OpenPosition | None, ours: list[OpenOrder]) -> int:
        """Nothing open on the exchange: book what the kernel still holds, cancel stops left behind."""
        handler, name = self.handler, self._exchange_name
        repairs = 0
        if local is not None:
            await handler.reconciled(local, local.qty, 0.0, "closed_outside", "flat on the exchange")
            await handler.stopped_out(local)
            repairs += 1
        else:
            recorded = handler.journal.stop_for(name, symbol)
            if recorded is not None:  # it was open when the kernel went down
                repairs += await self._closed_while_down(symbol, recorded.cid)
        for order in ours:
            repairs += await self._cancel_orphan(symbol, order, "no position to protect")
        return repairs

    async def _closed_while_down(self, symbol: str, stop_cid: str) -> int:
        handler, name = self.handler, self._exchange_name
        recorded = handler.journal.stop_for(name, symbol)
        assert recorded is not None
        found = await handler.exchange.fetch_order(symbol, stop_cid) if stop_cid else None
        handler.journal.write(Flat(exchange=name, symbol=symbol))
        stopped = found is not None and found.ok and found.filled_qty > 0
        detail = "its stop filled while the kernel was down" if stopped else "closed while the kernel was down"
        log.warning("reconciled %s %s: %s", name, symbol, detail)
        await handler.publish(
            PositionReconciled(
                ts_ns=handler.clock.now_ns(),
                exchange=name,
                symbol=symbol,
                before=recorded.qty,
                after=0.0,
                action="closed_outside",
                side=recorded.side,
                stop_price=recorded.stop_price,
                detail=detail,
            )
        )
        if stopped and found is not None:
            fired = exit_reason(
                found.avg_price,
                (recorded.cid, recorded.stop_price),
                (recorded.take_profit_cid, recorded.take_profit_price),
            )
            move = found.avg_price - recorded.entry_price
            gross = recorded.qty * (move if recorded.side == "long" else -move)
            await handler.publish(
                PositionClosed(
                    ts_ns=handler.clock.now_ns(),
                    exchange=name,
                    symbol=symbol,
                    side=recorded.side,
                    qty=recorded.qty,
                    entry_price=recorded.entry_price,
                    exit_price=found.avg_price,
                    pnl=gross - recorded.fees - found.fee,
                    fees=recorded.fees + found.fee,
                    reason=fired,
                )
            )
        return 1

    async def _open(self, symbol: str, local: OpenPosition | None, actual: Position, ours: list[OpenOrder]) -> int:
        """A position on the exchange: make the kernel's view match it and make sure one stop of ours guards it."""
        handler, name = self.handler, self._exchange_name
        repairs = 0
        if local is None or local.side != actual.side:
            if local is not None:
                handler.forget(local)
            recorded = handler.journal.stop_for(name, symbol)
            fees = recorded.fees if recorded is not None and recorded.side == actual.side else 0.0
            entry = actual.entry_price or (recorded.entry_price if recorded is not None else 0.0)
            local = handler.new_position(name, symbol, actual.side, actual.qty, entry, fees)
            await handler.reconciled(local, 0.0, actual.qty, "adopted", f"{actual.side} {actual.qty:g} @ {entry:g}")
            repairs += 1
        elif abs(local.qty - actual.qty) > 1e-9:
            before, local.qty = local.qty, actual.qty
            await handler.reconciled(local, before, actual.qty, "resized", "quantity differed from the exchange's")
            repairs += 1
        if not handler.exchange.supports_native_stop:
            return repairs + await self._synthetic(local)
        guarding = [o for o in ours if o.side == _closing_side(actual.side)]
        keep = self._stop_to_keep(local, guarding)
        for order in ours:
            if order is not keep:
                repairs += await self._cancel_orphan(symbol, order, "another stop of ours guards the position")
        if keep is None:
            return repairs + await self._unprotected(local)
        if keep.client_order_id != local.stop_cid:
            handler.exchange.adopt_stop(symbol, keep)
            local.stop_price, local.stop_cid = keep.stop_price, keep.client_order_id
            await handler.reconciled(local, local.qty, actual.qty, "stop_adopted", f"{keep.client_order_id}")
            repairs += 1
        if abs(keep.qty - actual.qty) > 1e-9:
            await handler.reconciled(local, keep.qty, actual.qty, "stop_resized", "the stop's size differed")
            await handler.protect(local, keep.stop_price)
            repairs += 1
        return repairs

    def _stop_to_keep(self, local: OpenPosition, guarding: list[OpenOrder]) -> OpenOrder | None:
        """The stop in force: the kernel's own, else the journal's, else the most protective one of ours."""
        recorded = self.handler.journal.stop_for(self._exchange_name, local.symbol)
        for cid in (local.stop_cid, recorded.cid if recorded is not None else ""):
            for order in guarding:
                if cid and order.client_order_id == cid:
                    return order
        if not guarding:
            return None
        tightest = max if local.side == "long" else min
        return tightest(guarding, key=lambda o: o.stop_price)

    async def _unprotected(self, local: OpenPosition) -> int:
        """No stop of ours rests for the position: protect it (or close it, as configured)."""
        handler = self.handler
        recorded = handler.journal.stop_for(self._exchange_name, local.symbol)
        stop = local.stop_price or (
            recorded.stop_price if recorded is not None and recorded.side == local.side else 0.0
        )
        action = "stop_restored" if local.stop_cid else "protected"
        if handler.risk.on_unprotected == "close":
            await handler.reconciled(local, local.qty, local.qty, "closed", "no stop of ours; on_unprotected = close")
            await handler.emergency_exit(local, "unprotected position found by reconciliation")
            return 1
        await handler.reconciled(local, local.qty, local.qty, action, "no stop of ours rested for it")
        await handler.protect(local, stop)
        return 1

    async def _synthetic(self, local: OpenPosition) -> int:
        """Venues without stop orders: the kernel's own stop must be set."""
        if local.stop_price > 0:
            return 0
        recorded = self.handler.journal.stop_for(self._exchange_name, local.symbol)
        stop = recorded.stop_price if recorded is not None and recorded.side == local.side else 0.0
        await self.handler.protect(local, stop)
        armed = local.stop_price > 0
        detail = f"synthetic stop at {local.stop_price:g}" if armed else "synthetic stop set at next close"
        await self.handler.reconciled(local, local.qty, local.qty, "protected", detail)
        return 1

    async def _resting(self, symbol: str, orders: list[OpenOrder], actual: Position | None, *, start: bool) -> int:
        """Cancel our take-profits with nothing to close; at start, report our resting entries and take-profits."""
        repairs = 0
        for order in orders:
            cid = order.client_order_id
            profit = order.take_profit and cid.startswith(TAKE_PROFIT_PREFIX)
            guards = actual is not None and order.side == _closing_side(actual.side)
            if profit and not guards:
                repairs += await self._cancel_orphan(symbol, order, "no position to take profit on")
            elif start and (profit or (cid.startswith(ENTRY_PREFIX) and not order.is_trigger)):
                action = "take_profit_found" if profit else "resting_found"
                exits = self.handler.journal.resting_exits(self._exchange_name, symbol, cid)
                await self.handler.publish(
                    PositionReconciled(
                        ts_ns=self.handler.clock.now_ns(),
                        exchange=self._exchange_name,
                        symbol=symbol,
                        before=0.0,
                        after=order.qty,
                        action=action,
                        side=order.side,
                        stop_price=order.stop_price or order.price,
                        detail=cid,
                        take_profit_price=exits.take_profit_price if exits is not None and not profit else 0.0,
                    )
                )
        return repairs

    async def _cancel_orphan(self, symbol: str, order: OpenOrder, why: str) -> int:
        handler, name = self.handler, self._exchange_name
        result = await handler.exchange.cancel_order(symbol, order)
        if not result.ok and result.error_kind is not ErrorKind.ORDER_NOT_FOUND:
            kind = result.error_kind or ErrorKind.UNKNOWN
            raise ExchangeError(kind, f"cancel {order.client_order_id}: {result.message}")
        log.warning("reconciled %s %s: cancelled stop %s (%s)", name, symbol, order.client_order_id, why)
        await handler.publish(
            PositionReconciled(
                ts_ns=handler.clock.now_ns(),
                exchange=name,
                symbol=symbol,
                before=order.qty,
                after=0.0,
                action="orphan_cancelled",
                side="long" if order.side == "sell" else "short",
                stop_price=order.stop_price,
                detail=f"{order.client_order_id}: {why}",
            )
        )
        return 1

    def __repr__(self) -> str:
        return f"Reconciler(exchange={self._exchange_name!r}, passes={self.passes}, repairs={self.repairs})"


def _prefixed(order: OpenOrder) -> bool:
    return order.client_order_id.startswith(STOP_PREFIX)


def _closing_side(side: PositionSide) -> str:
    return "sell" if side == "long" else "buy"
