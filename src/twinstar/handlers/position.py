"""Positions from fills, and the stop-loss that must always protect them.

* An `OrderPlaced` for an entry opens a position with the FILLED quantity and
  places its stop for that quantity: the signal's stop, else `stop_loss_pct`
  from the fill price. An entry that carried its stop on the order
  (`OrderPlaced.stop_price`, venues that take one) is protected already: that
  stop is recorded as in force and adopted, and no second one is placed.
* A stop moves in place where the venue amends stops, else the new one goes in
  before the old one is cancelled (`Exchange.update_stop_loss`).
* A failed stop update is retried on the clock (1, 2, 3 s by default) and then
  reported as `SLUpdateFailed`; the previous stop stays in force.
* If a new position gets no stop at all, it is closed at market
  (`EmergencyExit`, then `PositionClosed`); a failed close is tried again on
  the clock until the position is flat or protected.
* The exchange is the truth: at start, periodically, after a reconnect and on
  the venue's private order stream, `Reconciler` compares positions, orders
  and stops with it and repairs what differs (`PositionReconciled`). The stop
  in force is written to the journal, so a restarted kernel knows its own.
* On every closed candle the stop trails the close (only ever tighter). When
  the candle touched the stop, the exchange's position is checked at once: a
  position gone flat was stopped out. Every `reconcile_every` candles it is
  checked anyway, and a different quantity is reconciled (`PositionReconciled`).
  Live, the routine check and the trailing move wait until the bus is idle,
  so they never delay the orders the same candle causes.
* Venues without native stops (spot Upbit, Bithumb, Lighter) get a synthetic
  stop: the stream's price (`PriceMoved`, a new low or high of the open
  candle) or a closed candle whose low (long) or high (short) reaches it
  closes the position at market, so a wick through the stop exits like a real
  stop. A position adopted without an entry price gets its stop from the next
  close; it is never sold blind.
* An exit whose reply did not say its fee (Binance USD-M without the private
  stream) is booked once its trades are read (`money.exit_fees`): a
  reversal's close after the new entry's stop is placed, so that stop never
  waits for the read; its `PositionClosed` still comes before the new
  position's events, with the exact fee.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Sequence
from typing import Final, Literal

import anyio
import msgspec

from twinstar.adapters.base import ErrorKind, Exchange, ExchangeError, OpenOrder, OrderResult
from twinstar.adapters.margin import MarginVenue
from twinstar.bus.bus import Bus
from twinstar.bus.events import (
    CandleClosed,
    EmergencyExit,
    Event,
    FeedConnected,
    FeedDisconnected,
    FeedStopped,
    FlattenRequested,
    OrderFailed,
    OrderPlaced,
    OrderUpdated,
    PositionClosed,
    PositionOpened,
    PositionReconciled,
    PositionSide,
    PriceMoved,
    Side,
    SignalFired,
    SLUpdated,
    SLUpdateFailed,
)
from twinstar.clock import Clock
from twinstar.config import RiskConfig
from twinstar.handlers.brackets import exit_reason, take_profit_cid
from twinstar.handlers.journal import Flat, Journal, StopInForce
from twinstar.handlers.leverage import settle_margin
from twinstar.handlers.reconcile import STOP_PREFIX, Reconciler
from twinstar.money.exit_fees import PendingExitFees
from twinstar.money.fees import FillFeeSource
from twinstar.money.funding import FundingSource

log: Final = logging.getLogger("twinstar.position")


@functools.cache
def _slug(symbol: str) -> str:
    """The symbol as it may appear in a client order id: [a-z0-9], at most 10 characters."""
    return "".join(ch for ch in symbol if ch.isalnum())[:10].lower()


def default_stop(side: Side | PositionSide, price: float, stop_loss_pct: float) -> float:
    """The stop `stop_loss_pct` away from `price` on the losing side of a long (buy) or short (sell)."""
    distance = stop_loss_pct / 100
    return price * (1 - distance) if side in ("long", "buy") else price * (1 + distance)


class OpenPosition(msgspec.Struct):
    """The handler's view of one open position."""

    exchange: str
    symbol: str
    side: PositionSide
    qty: float
    entry_price: float
    fees: float
    stop_price: float = 0.0
    stop_cid: str = ""
    stop_seq: int = 0
    candles_since_check: int = 0
    last_price: float = 0.0  # the latest close seen while open: books a close found on the exchange
    funded_ms: int = 0  # funding after this time (ms) is still to be booked: the open, then the last close
    slippage: float = 0.0  # the entry's simulated slippage not yet booked (like `fees`)
    take_profit_cid: str = ""  # the take-profit that may close it (attached, or the bracket handler's)
    take_profit_price: float = 0.0  # its trigger (0: none known)


class PositionHandler:
    """Owns the positions of one venue and their stop-losses; see the module docstring.

    A kernel trading several venues has one per venue: each takes only events
    naming its own venue, so `positions` keyed by symbol is keyed by (venue, symbol).
    """

    def __init__(
        self,
        exchange: Exchange,
        clock: Clock,
        risk: RiskConfig,
        *,
        journal: Journal | None = None,
        symbols: Sequence[str] = (),
        on_feed_stopped: Literal["protect", "close"] = "protect",
    ) -> None:
        self.exchange = exchange
        self.clock = clock
        self.risk = risk
        self.on_feed_stopped = on_feed_stopped  # see FeedConfig.on_stopped
        self.journal = journal if journal is not None else Journal()
        self.symbols = tuple(symbols)
        self.positions: dict[str, OpenPosition] = {}
        self.busy: set[str] = set()  # symbols whose fill or stop is being handled right now
        self._signal_stops: dict[str, float] = {}
        self._signal_take_profits: dict[str, float] = {}
        self._bus: Bus | None = None
        self._defer_checks = False  # live: routine checks and trailing run after the candle's decisions (`run`)
        self._due: dict[str, tuple[CandleClosed | None, bool]] = {}  # symbol -> (latest candle, check the exchange)
        self._maintenance_wanted = asyncio.Event()
        self._reconcile_wanted: str = ""  # why a full reconciliation is due ("" when none)
        self._disconnected: set[tuple[str, str]] = set()
        self.reconciler = Reconciler(self)
        self._funding = exchange if isinstance(exchange, FundingSource) else None
        self._fill_fee_source = exchange if isinstance(exchange, FillFeeSource) else None
        self._exit_fees = PendingExitFees()  # closes whose fee is read once the next stop is placed

    def attach(self, bus: Bus) -> None:
        """Subscribe to candles, signals (for their stops), fills and what calls for reconciliation."""
        self._bus = bus
        self._defer_checks = bus.mode == "live"
        name = f"PositionHandler[{self.exchange.name}]"
        bus.subscribe(CandleClosed, self.on_candle, name=f"{name}.on_candle")
        if not self.exchange.supports_native_stop:
            bus.subscribe(PriceMoved, self.on_price_moved, name=f"{name}.on_price_moved")
        bus.subscribe(SignalFired, self.on_signal, name=f"{name}.on_signal")
        bus.subscribe(OrderPlaced, self.on_order, name=f"{name}.on_order")
        bus.subscribe(FlattenRequested, self.on_flatten, name=f"{name}.on_flatten")
        if self._defer_checks:
            bus.subscribe(OrderUpdated, self.on_order_update, name=f"{name}.on_order_update")
            bus.subscribe(FeedDisconnected, self.on_feed_disconnected, name=f"{name}.on_feed_disconnected")
            bus.subscribe(FeedConnected, self.on_feed_connected, name=f"{name}.on_feed_connected")
            bus.subscribe(FeedStopped, self.on_feed_stopped_for_good, name=f"{name}.on_feed_stopped")
            bus.subscribe(OrderFailed, self.on_order_failed, name=f"{name}.on_order_failed")

    @property
    def live(self) -> bool:
        """Whether the bus runs live (replay keeps every check inline, in event order)."""
        return self._defer_checks

    async def start(self) -> None:
        """Set and verify leverage and margin mode, then reconcile, before the first candle can be traded."""
        if isinstance(self.exchange, MarginVenue):
            for check in await settle_margin(self.exchange, self.symbols):
                log.info("%s %s: %s", self.exchange.name, check.symbol, check.describe())
        await self.reconciler.reconcile("start")

    def request_reconciliation(self, trigger: str) -> None:
        """Ask the live maintenance loop for a full reconciliation as soon as the bus is idle."""
        self._reconcile_wanted = self._reconcile_wanted or trigger
        self._maintenance_wanted.set()

    def on_order_failed(self, event: OrderFailed) -> None:
        """An order whose outcome is unknown may have filled: settle it from the exchange now."""
        ambiguous = event.error_kind in ("unknown", "timeout", "network", "exchange_unavailable")
        if ambiguous and event.exchange == self.exchange.name:
            self.request_reconciliation("order_unknown")

    async def stop(self) -> None:
        """Close the journal (the bus has drained: nothing writes to it any more)."""
        self.journal.close()

    def on_feed_disconnected(self, event: FeedDisconnected) -> None:
        """Remember the outage: what happened meanwhile is read from the exchange on reconnect."""
        if event.exchange == self.exchange.name:
            self._disconnected.add((event.exchange, event.symbol))

    def on_feed_connected(self, event: FeedConnected) -> None:
        """A reconnect after an outage: reconcile, fills may have happened while we were away."""
        key = (event.exchange, event.symbol)
        if key in self._disconnected:
            self._disconnected.discard(key)
            self.request_reconciliation("reconnect")

    async def on_feed_stopped_for_good(self, event: FeedStopped) -> None:
        """A symbol's feed gave up: its stop stays on the exchange, or the position is closed as configured.

        A synthetic stop needs prices the stopped feed no longer brings, so that
        position is closed whatever the setting: it would have no stop at all.
        """
        position = self.positions.get(event.symbol)
        if event.reason == "shutdown" or position is None or position.exchange != event.exchange:
            return
        if self.on_feed_stopped == "close" or not self.exchange.supports_native_stop:
            await self._emergency_exit(position, f"its feed stopped: {event.reason}")
        else:
            log.error(
                "%s %s: no more candles (%s); its stop stays on the exchange",
                event.exchange,
                event.symbol,
                event.reason,
            )

    def on_order_update(self, event: OrderUpdated) -> None:
        """The venue says an order of a position's symbol filled or changed: check that position at once."""
        position = self.positions.get(event.symbol)
        if position is None or event.exchange != position.exchange:
            return
        if event.client_order_id == position.stop_cid or (event.reduce_only and event.filled_qty > 0):
            earlier = self._due.get(event.symbol)
            self._due[event.symbol] = (earlier[0] if earlier is not None else None, True)
            self._maintenance_wanted.set()

    async def _publish(self, event: Event) -> None:
        """Publish `event`, or queue it behind its symbol's close still waiting for its fee (`money.exit_fees`)."""
        if not self._exit_fees.defer(event):
            await self._emit(event)

    async def _emit(self, event: Event) -> None:
        if self._bus is not None:
            await self._bus.publish(event)

    def on_signal(self, signal: SignalFired) -> None:
        """Remember the stop a signal asked for; its entry fill arrives next."""
        if signal.exchange == self.exchange.name:
            self._signal_stops[signal.symbol] = signal.stop_price
            self._signal_take_profits[signal.symbol] = signal.take_profit_price

    # -- fills -------------------------------------------------------------

    async def on_order(self, order: OrderPlaced) -> None:
        """Open, reduce or close the position by what was actually filled."""
        if order.filled_qty <= 0 or order.exchange != self.exchange.name:
            return
        self.busy.add(order.symbol)
        try:
            if order.intent == "open":
                await self._open(order)
            else:
                await self._reduce(order, reason="signal" if order.intent == "close" else order.intent)
        finally:
            self.busy.discard(order.symbol)

    async def _open(self, order: OrderPlaced) -> None:
        side: PositionSide = "long" if order.side == "buy" else "short"
        position = OpenPosition(order.exchange, order.symbol, side, order.filled_qty, order.avg_price, order.fee)
        position.funded_ms, position.slippage = self.clock.now_ms(), order.slippage
        signal_stop = self._signal_stops.pop(order.symbol, 0.0)
        target = self._signal_take_profits.pop(order.symbol, 0.0)
        journaled = self.journal.resting_exits(order.exchange, order.symbol, order.client_order_id)
        if journaled is not None:  # a resting limit entry's own exits, known after a restart too
            signal_stop, target = journaled.stop_price, journaled.take_profit_price
        position.take_profit_price = order.take_profit_price or target
        if target > 0 or order.take_profit_cid:
            position.take_profit_cid = order.take_profit_cid or take_profit_cid(order.client_order_id)
        self.positions[order.symbol] = position
        await self._publish(
            PositionOpened(
                ts_ns=self.clock.now_ns(),
                exchange=order.exchange,
                symbol=order.symbol,
                side=side,
                qty=order.filled_qty,
                entry_price=order.avg_price,
                fee=order.fee,
            )
        )
        stop = signal_stop or self._default_stop(side, order.avg_price)
        if order.stop_price > 0 and self.exchange.supports_native_stop:
            await self._attached_stop(position, order)
        else:
            await self.protect(position, stop)
        # Once protected: where the replies had no fees, their trades do, the reversed position's exit first.
        await self._settle_exit_fee(order.symbol)
        fee = await self._fill_fees(order.symbol, order.order_id)
        if fee is not None and self.positions.get(order.symbol) is position:
            position.fees = fee

    async def _attached_stop(self, position: OpenPosition, order: OrderPlaced) -> None:
        """The stop rode on the entry: in force since the fill, for what filled. Placing another would double it."""
        closing: Side = "sell" if position.side == "long" else "buy"
        attached = OpenOrder(
            symbol=order.symbol,
            order_id="",
            client_order_id=order.stop_cid,
            side=closing,
            qty=order.filled_qty,
            stop_price=order.stop_price,
            reduce_only=True,
        )
        self.exchange.adopt_stop(order.symbol, attached)  # the next move amends or replaces this one
        await self._stop_in_force(position, order.stop_price, order.stop_cid)

    async def protect(self, position: OpenPosition, stop_price: float) -> None:
        """Place the stop; if none can be placed, close the position (emergency exit)."""
        if not await self._set_stop(position, stop_price):
            await self._emergency_exit(position, "no stop-loss could be placed")

    def _default_stop(self, side: PositionSide, price: float) -> float:
        return default_stop(side, price, self.risk.stop_loss_pct)

    def valid_stop(self, position: OpenPosition, stop_price: float) -> float:
        """`stop_price` if it is a price, else the default distance from the entry (0 is never a price)."""
        if stop_price > 0:
            return stop_price
        reference = position.entry_price or position.last_price
        return self._default_stop(position.side, reference) if reference > 0 else 0.0

    async def _reduce(self, order: OrderPlaced, reason: str) -> None:
        position = self.positions.get(order.symbol)
        if position is None:
            return
        qty = min(order.filled_qty, position.qty)
        # A signal's close may be a reversal's: its unknown fee is read after the new entry's stop (or once idle).
        await self._book_close(
            position,
            qty,
            order.avg_price,
            order.fee,
            reason,
            slippage=order.slippage,
            order_id=order.order_id,
            fee_later=order.intent == "close",
        )
        if position.qty > 1e-12:
            await self.protect(position, position.stop_price)  # protect what is left, at its size
            await self._settle_exit_fee(order.symbol)
        elif self.exchange.supports_native_stop:
            await self.exchange.cancel_stop_loss(order.symbol)
        if self._exit_fees and self._defer_checks:
            self._maintenance_wanted.set()

    async def _book_close(
        self,
        position: OpenPosition,
        qty: float,
        price: float,
        fee: float,
        reason: str,
        *,
        slippage: float = 0.0,
        order_id: str = "",
        fee_later: bool = False,
    ) -> None:
        """Realise `qty` at `price`; PnL includes the entry fee share, the exit fee and the funding since the open.

        `slippage` (the exit's) and the entry's share are reported beside the PnL, which holds them already.
        Where the reply of exit `order_id` did not say its fee, its trades are read for it (`money.exit_fees`):
        now, or with `fee_later` after what must not wait for them (a reversal's new stop).
        """
        funding = await self._funding_due(position)
        if self.positions.get(position.symbol) is not position:
            return  # booked meanwhile, by another path, while the venue was asked for funding
        qty = min(qty, position.qty)
        share = qty / position.qty
        entry_fee = position.fees * share
        move = price - position.entry_price
        gross = qty * (move if position.side == "long" else -move)
        fees = entry_fee + fee
        entry_slippage = position.slippage * share
        position.qty -= qty
        position.fees -= entry_fee
        position.slippage -= entry_slippage
        if position.qty <= 1e-12:
            self.forget(position)
        closed = PositionClosed(
            ts_ns=self.clock.now_ns(),
            exchange=position.exchange,
            symbol=position.symbol,
            side=position.side,
            qty=qty,
            entry_price=position.entry_price,
            exit_price=price,
            pnl=gross - fees + funding,
            fees=fees,
            reason=reason,
            funding=funding,
            slippage=entry_slippage + slippage,
        )
        source = self._fill_fee_source
        if not (order_id and fee == 0 and source is not None and not source.fills_carry_fees):
            await self._publish(closed)
            return
        while self._exit_fees.order_id(position.symbol):  # an earlier close of the symbol still waiting goes first
            await self._settle_exit_fee(position.symbol)
        self._exit_fees.hold(closed, order_id)
        if not fee_later:
            await self._settle_exit_fee(position.symbol)

    async def _settle_exit_fee(self, symbol: str) -> None:
        """Read the fee of `symbol`'s close waiting for it; publish that close, then what waited behind it."""
        order_id = self._exit_fees.order_id(symbol)
        if not order_id:
            return
        fee = await self._fill_fees(symbol, order_id)
        for event in self._exit_fees.settle(symbol, order_id, fee or 0.0):
            await self._emit(event)

    async def settle_exit_fees(self) -> None:
        """Book every close still waiting for its fee (the bus is idle, or the kernel stops)."""
        for symbol in self._exit_fees.symbols():
            await self._settle_exit_fee(symbol)

    async def stop_intake(self) -> None:
        """Before the bus drains at shutdown: no close is left unpublished for want of its fee."""
        await self.settle_exit_fees()

    async def _fill_fees(self, symbol: str, order_id: str) -> float | None:
        """Order `order_id`'s fees read from its trades where the venue's reply lacks them (None: the reply's stand)."""
        if self._fill_fee_source is None:
            return None
        try:
            return await self._fill_fee_source.fetch_fill_fees(symbol, order_id)
        except ExchangeError as exc:
            log.warning("fees of %s %s order %s unknown, booked as 0: %s", self.exchange.name, symbol, order_id, exc)
            return None

    async def _funding_due(self, position: OpenPosition) -> float:
        """Funding `position` received since it opened or was last partly closed (0 where none is charged)."""
        if self._funding is None:
            return 0.0
        since, position.funded_ms = position.funded_ms, self.clock.now_ms()
        try:
            return await self._funding.fetch_funding(position.symbol, since)
        except ExchangeError as exc:
            log.warning("funding of %s %s unknown, booked as 0: %s", position.exchange, position.symbol, exc)
            return 0.0

    def forget(self, position: OpenPosition) -> None:
        """The position is gone: drop it, and tell the journal no stop should rest for it."""
        if self.positions.get(position.symbol) is position:
            del self.positions[position.symbol]
        if self.journal.stop_for(position.exchange, position.symbol) is not None:
            self.journal.write(Flat(exchange=position.exchange, symbol=position.symbol))

    # -- stops -------------------------------------------------------------

    async def _set_stop(self, position: OpenPosition, stop_price: float) -> bool:
        """Place or move the stop, retrying on the clock; False if it never took."""
        stop_price = self.valid_stop(position, stop_price)
        if not self.exchange.supports_native_stop:  # synthetic: the kernel watches it on every closed candle
            if stop_price > 0:
                await self._stop_in_force(position, stop_price, "")
            else:  # a spot balance of unknown cost: armed from the next close (`on_candle`), never sold blind
                log.warning("%s: no entry price known; its stop is set from the next closed candle", position.symbol)
            return True
        if stop_price <= 0:
            log.error("no price to set a stop for %s from: no entry price and no candle yet", position.symbol)
            return False
        waits = list(self.risk.sl_retry_backoff_s)
        attempts = 0
        while True:
            attempts += 1
            position.stop_seq += 1
            cid = self._cid("s", position)
            sent_ms = self.clock.now_ms()
            result: OrderResult = await self.exchange.update_stop_loss(
                position.symbol, position.side, position.qty, stop_price, client_order_id=cid
            )
            if result.ok:  # an amended stop keeps its own client id
                await self._stop_in_force(position, stop_price, result.client_order_id or cid)
                return True
            ambiguous = result.error_kind is not None and result.error_kind.ambiguous
            if ambiguous and await self._reached_the_book(position, cid, stop_price, sent_ms):
                await self._stop_in_force(position, stop_price, cid)
                self.request_reconciliation("stop_settled")  # the replaced stop is swept, if it still rests
                return True
            if not waits:
                kind = result.error_kind or ErrorKind.UNKNOWN
                log.error(
                    "stop for %s at %s failed %d times: %s", position.symbol, stop_price, attempts, result.message
                )
                await self._publish(
                    SLUpdateFailed(
                        ts_ns=self.clock.now_ns(),
                        exchange=position.exchange,
                        symbol=position.symbol,
                        stop_price=stop_price,
                        attempts=attempts,
                        error_kind=kind.label,
                        message=result.message,
                    )
                )
                return False
            await self.clock.sleep(waits.pop(0))

    async def _reached_the_book(self, position: OpenPosition, cid: str, stop_price: float, sent_ms: int) -> bool:
        """Whether a stop whose reply was lost rests on the venue; never guessed, so never two.

        A lookup that does not find it counts only once the request's receive
        window has passed (it may still arrive before). Without a window, or
        while the lookup fails, it counts as not there: the next try places a
        new stop, and reconciliation sweeps the late one if it lands after all.
        """
        window = self.exchange.request_expiry_ms
        while True:
            found = await self.exchange.fetch_stop(position.symbol, cid)
            if found.ok:
                if found.status in ("open", "partial"):
                    closing: Side = "sell" if position.side == "long" else "buy"
                    resting = OpenOrder(
                        symbol=position.symbol,
                        order_id=found.order_id,
                        client_order_id=cid,
                        side=closing,
                        qty=position.qty,
                        stop_price=stop_price,
                        reduce_only=True,
                    )
                    self.exchange.adopt_stop(position.symbol, resting)
                    return True
                return False
            if found.error_kind is not ErrorKind.ORDER_NOT_FOUND or window is None:
                self.request_reconciliation("stop_unknown")
                return False
            remaining_ms = sent_ms + window - self.clock.now_ms()
            if remaining_ms <= 0:
                return False
            await self.clock.sleep(remaining_ms / 1000)

    async def _stop_in_force(self, position: OpenPosition, stop_price: float, cid: str) -> None:
        position.stop_price = stop_price
        position.stop_cid = cid
        self.journal.write(
            StopInForce(
                exchange=position.exchange,
                symbol=position.symbol,
                side=position.side,
                qty=position.qty,
                entry_price=position.entry_price,
                stop_price=stop_price,
                cid=cid,
                fees=position.fees,
                take_profit_price=position.take_profit_price,
                take_profit_cid=position.take_profit_cid,
            )
        )
        await self._publish(
            SLUpdated(
                ts_ns=self.clock.now_ns(),
                exchange=position.exchange,
                symbol=position.symbol,
                stop_price=stop_price,
                qty=position.qty,
            )
        )

    async def on_flatten(self, request: FlattenRequested) -> None:
        """Close this venue's positions (one symbol, or all) at market; a failed close goes on as an emergency exit."""
        if request.exchange not in ("", self.exchange.name):
            return
        for position in [p for symbol, p in self.positions.items() if request.symbol in ("", symbol)]:
            position.stop_seq += 1
            result = await self.exchange.close_position(position.symbol, client_order_id=self._cid("x", position))
            if not result.ok:
                await self._emergency_exit(position, f"flatten ({request.reason}) failed: {result.message}")
            elif self.positions.get(position.symbol) is position:
                qty = min(result.filled_qty, position.qty)
                await self._book_close(position, qty, result.avg_price, result.fee, "flatten", order_id=result.order_id)

    async def _emergency_exit(self, position: OpenPosition, reason: str) -> None:
        """Close at market; on failure try again on the clock until the position is flat or protected."""
        await self._publish(
            EmergencyExit(
                ts_ns=self.clock.now_ns(),
                exchange=position.exchange,
                symbol=position.symbol,
                qty=position.qty,
                reason=reason,
            )
        )
        waits = list(self.risk.emergency_retry_s)
        while self.positions.get(position.symbol) is position:
            position.stop_seq += 1
            result = await self.exchange.close_position(position.symbol, client_order_id=self._cid("x", position))
            if result.ok:
                qty = min(result.filled_qty, position.qty)
                await self._book_close(
                    position, qty, result.avg_price, result.fee, "emergency_exit", order_id=result.order_id
                )
                return
            log.critical("EMERGENCY EXIT FAILED for %s: %s; trying again", position.symbol, result.message)
            try:
                flat = await self.exchange.fetch_position(position.symbol) is None
            except ExchangeError:
                flat = False  # unknown: assume it is still open
            if flat:  # flat after all (closed by its stop, by hand, or the close did fill)
                await self._book_close(position, position.qty, position.last_price or position.stop_price, 0.0, reason)
                return
            if self.exchange.supports_native_stop and await self._place_stop_once(position):
                return  # protected again: the stop takes it from here
            await self.clock.sleep(waits.pop(0) if len(waits) > 1 else waits[0])

    async def _place_stop_once(self, position: OpenPosition) -> bool:
        """One try at a stop at the default distance from the last price (or the entry)."""
        reference = position.last_price or position.entry_price
        if reference <= 0:
            return False
        stop = self._default_stop(position.side, reference)
        position.stop_seq += 1
        cid = self._cid("s", position)
        result = await self.exchange.update_stop_loss(
            position.symbol, position.side, position.qty, stop, client_order_id=cid
        )
        if result.ok:
            await self._stop_in_force(position, stop, result.client_order_id or cid)
        return result.ok

    # -- every candle ------------------------------------------------------

    def on_candle(self, candle: CandleClosed) -> Awaitable[None] | None:
        """Detect stop fills and quantity drift, fire synthetic stops, trail the stop.

        Plain, not async: on most candles nothing needs the exchange, and
        those cost no coroutine. What does is returned for the bus to await.
        """
        if self._exit_fees and not self._defer_checks:  # replay: an exit's fee is read by the next candle
            return self._settle_then(candle)
        position = self.positions.get(candle.symbol)
        if position is None or position.exchange != candle.exchange:
            return None
        position.last_price = candle.close
        stop = position.stop_price
        # A stop of 0 is no stop (never a price): nothing can touch it.
        touched = stop > 0 and (candle.low <= stop if position.side == "long" else candle.high >= stop)
        if not self.exchange.supports_native_stop:
            if touched:  # a wick through the stop exits, as a resting stop would have
                return self._synthetic_stop(position)
            if stop <= 0:  # adopted without an entry price: this close is the reference
                return self._arm_synthetic_stop(position)
        else:
            position.candles_since_check += 1
            if touched:  # the stop may have filled: find out before anything else
                position.candles_since_check = 0
                return self._maintain(position, candle, check=True)
            check = position.candles_since_check >= self.risk.reconcile_every
            if check:
                position.candles_since_check = 0
            if self._defer_checks:
                # Live: the routine check and the trailing move wait until this candle's own orders
                # went out (`run`); a reversal then finds the position replaced and leaves it alone.
                if check or self._trail_to(position, candle) is not None:
                    earlier = self._due.get(position.symbol)
                    self._due[position.symbol] = (candle, check or (earlier is not None and earlier[1]))
                    self._maintenance_wanted.set()
                return None
            if check:
                return self._maintain(position, candle, check=True)
        if self._trail_to(position, candle) is None:
            return None
        return self._maintain(position, candle, check=False)

    async def _settle_then(self, candle: CandleClosed) -> None:
        await self.settle_exit_fees()
        pending = self.on_candle(candle)
        if pending is not None:
            await pending

    async def _arm_synthetic_stop(self, position: OpenPosition) -> None:
        await self._set_stop(position, 0.0)

    def on_price_moved(self, moved: PriceMoved) -> Awaitable[None] | None:
        """A synthetic stop fires on the stream's price at once, not at the candle's close."""
        position = self.positions.get(moved.symbol)
        if position is None or position.exchange != moved.exchange or position.stop_price <= 0:
            return None
        stop = position.stop_price
        touched = moved.low <= stop if position.side == "long" else moved.high >= stop
        if not touched:
            return None
        position.last_price = moved.price
        return self._synthetic_stop(position)

    def _trail_to(self, position: OpenPosition, candle: CandleClosed) -> float | None:
        """The tighter stop this close calls for, or None (trailing off, or under the minimum step)."""
        risk = self.risk
        if not risk.trailing_stop:
            return None
        close = candle.close
        step = close * risk.trail_step_pct / 100
        if position.side == "long":
            trail = close * (1 - risk.stop_loss_pct / 100)
            return trail if trail - position.stop_price >= step else None
        trail = close * (1 + risk.stop_loss_pct / 100)
        return trail if position.stop_price - trail >= step else None

    async def _maintain(self, position: OpenPosition, candle: CandleClosed | None, *, check: bool) -> None:
        """Check the exchange's position if asked, then trail the stop to `candle`."""
        if check and not await self._check_exchange(position):
            return
        trail = self._trail_to(position, candle) if candle is not None else None
        if trail is not None:
            await self._set_stop(position, trail)

    async def run(self) -> None:
        """Live: upkeep and reconciliation once the bus is idle, off the order path, and the reconcile timer."""
        if not self._defer_checks or self._bus is None:
            return  # replay maintains inline, in event order
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._reconcile_timer)
            await self._maintenance_loop(self._bus)

    async def _reconcile_timer(self) -> None:
        while True:
            await self.clock.sleep(self.risk.reconcile_interval_s)
            self.request_reconciliation("timer")

    async def _maintenance_loop(self, bus: Bus) -> None:
        while True:
            await self._maintenance_wanted.wait()
            self._maintenance_wanted.clear()
            await bus.idle()
            await self.settle_exit_fees()  # no reversal's stop is waiting any more: read what exits paid
            while self._due:
                symbol = next(iter(self._due))
                candle, check = self._due.pop(symbol)
                position = self.positions.get(symbol)
                if position is not None:
                    await self._maintain(position, candle, check=check)
            if self._reconcile_wanted:
                trigger, self._reconcile_wanted = self._reconcile_wanted, ""
                await self.reconciler.reconcile(trigger)

    async def _check_exchange(self, position: OpenPosition) -> bool:
        """Compare with the exchange's position; False when it is gone (stopped out) or was replaced."""
        try:
            actual = await self.exchange.fetch_position(position.symbol)
        except ExchangeError as exc:
            log.warning("cannot check position %s: %s", position.symbol, exc)
            return True
        if self.positions.get(position.symbol) is not position:
            return False  # closed or replaced by a fill while we asked: the answer is about another position
        if actual is None:
            await self.stopped_out(position)
            return False
        if abs(actual.qty - position.qty) > 1e-9:
            before, position.qty = position.qty, actual.qty
            await self.reconciled(position, before, actual.qty, "resized", "quantity differed from the exchange's")
            await self.protect(position, position.stop_price)
        return True

    async def reconciled(self, position: OpenPosition, before: float, after: float, action: str, detail: str) -> None:
        """Publish what reconciliation found or did for `position`."""
        log.warning("reconciled %s %s: %s (%s)", position.exchange, position.symbol, action, detail)
        await self._publish(
            PositionReconciled(
                ts_ns=self.clock.now_ns(),
                exchange=position.exchange,
                symbol=position.symbol,
                before=before,
                after=after,
                action=action,
                side=position.side,
                stop_price=position.stop_price,
                detail=detail,
            )
        )

    async def stopped_out(self, position: OpenPosition) -> None:
        """The exchange shows flat: book the close at the stop's real fill, or as closed outside the kernel."""
        fill_price, fee, reason = position.last_price or position.stop_price, 0.0, "closed_outside"
        exit_id = ""
        if position.stop_cid:
            found = await self.exchange.fetch_order(position.symbol, position.stop_cid)
            if found.ok and found.filled_qty > 0:  # a gap fills at the open, not at the stop
                exits = (position.stop_cid, position.stop_price), (position.take_profit_cid, position.take_profit_price)
                fill_price, fee, reason = found.avg_price, found.fee, exit_reason(found.avg_price, *exits)
                exit_id = found.order_id
            elif not found.ok and found.error_kind is not ErrorKind.ORDER_NOT_FOUND:
                fill_price, reason = position.stop_price, "stop_loss"  # cannot tell: the stop is the likeliest cause
        if reason == "closed_outside" and position.take_profit_cid:
            found = await self.exchange.fetch_order(position.symbol, position.take_profit_cid)
            if found.ok and found.filled_qty > 0:
                fill_price, fee, reason, exit_id = found.avg_price, found.fee, "take_profit", found.order_id
        if self.positions.get(position.symbol) is position:  # not booked meanwhile by a fill event
            await self._book_close(position, position.qty, fill_price, fee, reason, order_id=exit_id)

    def new_position(
        self, exchange: str, symbol: str, side: PositionSide, qty: float, entry_price: float, fees: float = 0.0
    ) -> OpenPosition:
        """Take a position found on the exchange into the handler's view."""
        position = OpenPosition(exchange, symbol, side, qty, entry_price, fees, funded_ms=self.clock.now_ms())
        self.positions[symbol] = position
        return position

    async def publish(self, event: Event) -> None:
        """Publish on the kernel's bus (the reconciler speaks through the handler)."""
        await self._publish(event)

    async def emergency_exit(self, position: OpenPosition, reason: str) -> None:
        """Close `position` at market, retried until flat or protected."""
        await self._emergency_exit(position, reason)

    def _cid(self, code: str, position: OpenPosition) -> str:
        """Client id for a stop ("s") or exit ("x"): unique per position, time and attempt."""
        symbol = _slug(position.symbol)
        cid = f"tw{code}-{symbol}-{self.clock.now_ms():x}-{position.stop_seq}"
        assert code != "s" or cid.startswith(STOP_PREFIX)
        return cid

    async def _synthetic_stop(self, position: OpenPosition) -> None:
        result = await self.exchange.close_position(position.symbol, client_order_id=self._cid("x", position))
        if result.ok:
            qty = min(result.filled_qty, position.qty)
            await self._book_close(position, qty, result.avg_price, result.fee, "stop_loss", order_id=result.order_id)
        else:
            log.error("synthetic stop for %s failed: %s; retrying on the next candle", position.symbol, result.message)

    def __repr__(self) -> str:
        return f"PositionHandler(positions={ {s: (p.side, p.qty, p.stop_price) for s, p in self.positions.items()} })"
