"""Execution: SignalFired -> market orders, with a retry policy that never doubles an order.

Every order gets a deterministic client order id and is written to the
journal before it goes out. After an ambiguous failure (timeout, network,
exchange unavailable) the order is looked up by that id before anything is
resent: if it reached the book, that is the result. "Not found" right after a
timeout proves nothing (the request may still be on its way), so the order
is sent again only once the first request can no longer execute (its receive
window has passed, `Exchange.request_expiry_ms`) and a last lookup still does
not find it. On a venue without such a window it is never resent: the
outcome stays unknown and reconciliation settles it from the exchange. Rate limits back off on the
clock (5, 10, 15 s by default). Insufficient funds, invalid orders and auth
errors are final: one `OrderFailed` with the exchange's reason.

An entry is never sent on a stale signal: one older than
`execution.max_signal_age_s` when its turn comes (queued behind an outage or
a long backoff), or when a retry would resend it, is refused with an
`OrderFailed`; a close the same signal asks for still goes.

An entry carries its stop-loss (the signal's, else `stop_loss_pct` from the
signal's price) to venues that take one on the order, so the fill is protected
the instant it happens; the venue refuses the entry rather than the stop
alone, so a stop that would trigger at once means no entry (`OrderFailed`),
never an unprotected one. Elsewhere the position handler places the stop on
the fill.

A buy signal makes the position long: a short is closed first, then a long is
opened (and the mirror for sell), like backtesting.py's SmaCross example.

Which position there is comes from the exchange, the source of truth, the
first time; after that from what this handler's own fills left, which saves a
REST round trip before every order. That view is dropped, and the exchange
asked again, whenever something else may have changed the position: a stop or
emergency exit (`PositionClosed` not caused by a signal), a reconciliation,
an order whose outcome is unknown. If the view was stale anyway (a stop filled
on the exchange moments before the signal), the reduce-only close is
rejected; the exchange is then asked and the signal handled once more.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from typing import Final, Literal

import msgspec

from twinstar.adapters.base import ErrorKind, Exchange, ExchangeError, OrderResult, Position
from twinstar.bus.bus import Bus
from twinstar.bus.events import (
    EmergencyExit,
    EntriesPaused,
    EntriesResumed,
    OrderFailed,
    OrderIntent,
    OrderPlaced,
    PositionClosed,
    PositionReconciled,
    PositionSide,
    RiskLimitBreached,
    Side,
    SignalFired,
)
from twinstar.clock import Clock
from twinstar.config import ExecutionConfig, RiskConfig
from twinstar.handlers.journal import Journal, Resting, Sent
from twinstar.handlers.position import default_stop
from twinstar.handlers.sizing import Sizer, venue_leverage
from twinstar.orders.refusals import entry_refusal

log: Final = logging.getLogger("twinstar.execution")

_INTENT_CODE: Final[dict[OrderIntent, str]] = {
    "open": "o",
    "close": "c",
    "emergency_exit": "x",
    "stop_loss": "s",
    "take_profit": "t",
}


@functools.cache
def _series_digest(strategy: str, symbol: str) -> str:
    return hashlib.blake2s(f"{strategy}|{symbol}".encode(), digest_size=4).hexdigest()


def client_order_id(strategy: str, symbol: str, candle_open_time_ms: int, intent: OrderIntent) -> str:
    """Return a deterministic id, at most 32 chars of [a-z0-9-] (valid on every venue we trade)."""
    return f"tw{_INTENT_CODE[intent]}-{_series_digest(strategy, symbol)}-{candle_open_time_ms:x}"


def _entry_price(signal: SignalFired) -> float:
    """The price an entry is sized at: a limit's own price (it fills there or better), else the signal's."""
    limit = signal.limit_price if signal.order_type == "limit" else 0.0
    return limit if limit > 0 else signal.price


def _journal_status(result: OrderResult, *, limit: bool = False) -> Literal["filled", "failed", "unknown", "resting"]:
    """What the journal keeps of a result: unknown (still to settle) unless the venue said for sure."""
    if result.ok:
        if result.status == "open":
            return "resting" if limit else "unknown"  # a market order still open may fill yet
        return "filled" if result.filled_qty > 0 else "failed"
    kind = result.error_kind
    return "unknown" if kind is None or kind.ambiguous else "failed"


class ExecutionHandler:
    """Turns the signals of one venue into orders there; publishes OrderPlaced / OrderFailed.

    A kernel trading several venues has one per venue, each deaf to the
    others' signals: an order only ever goes to the venue whose candle caused it.
    """

    def __init__(
        self,
        exchange: Exchange,
        clock: Clock,
        execution: ExecutionConfig,
        risk: RiskConfig,
        *,
        journal: Journal | None = None,
        symbols: Sequence[str] = (),
    ) -> None:
        self.exchange = exchange
        self.clock = clock
        self.execution = execution
        self.risk = risk
        self.journal = journal if journal is not None else Journal()
        self.symbols = tuple(symbols)
        self._bus: Bus | None = None
        self.orders_sent = 0
        self.position_reads = 0
        self._held: dict[str, Position | None] = {}  # what our own fills left, by symbol; absent: ask
        self.sizer = Sizer(risk, self.symbols, venue_leverage(exchange, self.symbols))
        self._entering: set[str] = set()  # symbols whose entry is on its way: they hold a position slot
        self._resting: dict[str, str] = {}  # symbol -> client id of its resting limit entry: it holds a slot too
        self.entries_blocked = ""  # why new entries wait (a pause, a breached risk limit); "" while they may go
        self._started_ns = clock.now_ns()  # a signal's age counts from here at the earliest (`_stale`)

    def attach(self, bus: Bus) -> None:
        """Subscribe to signals, and to what can change a position behind our back."""
        self._bus = bus
        name = f"ExecutionHandler[{self.exchange.name}]"
        if self.symbols:
            # One mailbox per symbol: a backoff or a lookup for one symbol never holds another's orders
            # (live, each mailbox has its own task), while one symbol's orders stay strictly in order.
            for symbol in self.symbols:
                series = (self.exchange.name, symbol)
                bus.subscribe(SignalFired, self.handle, name=f"{name}[{symbol}]", series=series)
        else:
            bus.subscribe(SignalFired, self.handle, name=name)
        bus.subscribe(PositionClosed, self.on_position_closed, name=f"{name}.on_position_closed")
        bus.subscribe(PositionReconciled, self.forget_position, name=f"{name}.forget_position")
        bus.subscribe(EmergencyExit, self.forget_position, name=f"{name}.forget_position")
        bus.subscribe(EntriesPaused, self.on_entry_gate, name=f"{name}.on_entry_gate")
        bus.subscribe(EntriesResumed, self.on_entry_gate, name=f"{name}.on_entry_gate")
        bus.subscribe(RiskLimitBreached, self.on_entry_gate, name=f"{name}.on_entry_gate")

    def on_entry_gate(self, event: EntriesPaused | EntriesResumed | RiskLimitBreached) -> None:
        """A pause or a breached risk limit blocks new entries (closes still go); a resume lets them go again."""
        match event:
            case EntriesResumed():
                self.entries_blocked = ""
            case EntriesPaused():
                self.entries_blocked = f"paused: {event.reason}"
            case RiskLimitBreached():
                self.entries_blocked = f"risk limit {event.limit} breached"

    def on_position_closed(self, event: PositionClosed) -> None:
        """A close we did not order (stop, emergency exit): our view is out of date."""
        if event.reason != "signal" and event.exchange == self.exchange.name:
            self._held.pop(event.symbol, None)

    def forget_position(self, event: PositionReconciled | EmergencyExit) -> None:
        """Ask the exchange before the next order for this symbol."""
        if event.exchange == self.exchange.name:
            self._held.pop(event.symbol, None)

    async def handle(self, signal: SignalFired) -> None:
        """Make the position match the signal's side, if the signal is for this handler's venue."""
        if signal.exchange != self.exchange.name:
            return  # another venue's signal: its own execution handler acts on it
        entry = client_order_id(signal.strategy, signal.symbol, signal.candle_open_time_ms, "open")
        if self.journal.known(signal.exchange, signal.symbol, entry):
            # A restart re-deciding a candle already traded: the venue would take a filled order's id again.
            log.warning("signal on %s %s already acted on (%s): not sent again", signal.symbol, signal.side, entry)
            return
        refused = entry_refusal(
            signal.side,
            signal.price,
            order_type=signal.order_type,
            limit_price=signal.limit_price,
            time_in_force=signal.time_in_force,
            take_profit_price=signal.take_profit_price,
        )
        if refused is not None:  # before anything is sent, an opposite position's close included
            await self._failed(signal, signal.side, "open", ErrorKind.INVALID_ORDER, refused, 0, entry)
            return
        for _ in range(2):
            known = signal.symbol in self._held
            if not await self._follow(signal, known) or not known:
                return
            # The close was refused on a view of our own making: ask the exchange, then once more.
            self._held.pop(signal.symbol, None)

    async def _follow(self, signal: SignalFired, known: bool) -> bool:
        """Act on `signal`; True when a reduce-only close was refused as invalid."""
        want: PositionSide = "long" if signal.side == "buy" else "short"
        if known:
            position = self._held[signal.symbol]
        else:
            try:
                self.position_reads += 1
                position = await self.exchange.fetch_position(signal.symbol)
            except ExchangeError as exc:
                await self._failed(signal, signal.side, "open", exc.kind, f"cannot read position: {exc.message}", 1)
                return False
            self._held[signal.symbol] = position
        if position is not None:
            if position.side == want:
                return False  # already there: a repeated signal must not add to the position
            closed = await self._order(signal, signal.side, position.qty, "close", reduce_only=True)
            if not closed.ok:
                # Could not close: opening the other way would double the exposure.
                return closed.error_kind is ErrorKind.INVALID_ORDER
            left = position.qty - closed.filled_qty
            self._held[signal.symbol] = msgspec.structs.replace(position, qty=left) if left > 1e-12 else None
        if self.entries_blocked:
            log.warning("no new entry on %s %s: %s", signal.symbol, signal.side, self.entries_blocked)
            return False
        qty = self._capped(await self._entry_qty(signal), _entry_price(signal))
        if qty > 0 and not await self._refused_as_stale(signal):
            opened = await self._order(signal, signal.side, qty, "open", reduce_only=False)
            if opened.ok and opened.filled_qty > 0:
                self._held[signal.symbol] = Position(
                    symbol=signal.symbol, side=want, qty=opened.filled_qty, entry_price=opened.avg_price
                )
            elif opened.ok:
                self._held.pop(signal.symbol, None)  # a resting limit: it may fill at any time
                self._resting[signal.symbol] = opened.client_order_id
        self._entering.discard(signal.symbol)  # `_held` (or asking the exchange) counts it from here on
        return False

    def _stale(self, signal: SignalFired) -> str:
        """Why `signal` is too old to enter on now ("" while it is not): `execution.max_signal_age_s`.

        The age counts from the signal's time, or from this handler's start for one stamped before it
        (it cannot have waited here longer: it came from a recording or another host's clock).
        """
        bound = self.execution.max_signal_age_s
        age_s = (self.clock.now_ns() - max(signal.ts_ns, self._started_ns)) / 1e9
        if bound <= 0 or age_s <= bound:
            return ""
        return f"signal is {age_s:.0f} s old, over execution.max_signal_age_s ({bound:g} s): entry not sent"

    async def _refused_as_stale(self, signal: SignalFired) -> bool:
        """Refuse an entry on a stale signal (`OrderFailed`); a close it caused has gone already."""
        why = self._stale(signal)
        if why:
            entry = client_order_id(signal.strategy, signal.symbol, signal.candle_open_time_ms, "open")
            await self._failed(signal, signal.side, "open", ErrorKind.INVALID_ORDER, why, 0, entry)
        return bool(why)

    def _capped(self, qty: float, price: float) -> float:
        """At most `risk.max_notional_per_symbol` worth at `price` (0: no cap)."""
        cap = self.risk.max_notional_per_symbol
        return min(qty, cap / price) if cap > 0 and price > 0 else qty

    async def _entry_qty(self, signal: SignalFired) -> float:
        """The entry's size by `risk` (see `handlers.sizing`); 0 when no slot is free or the balance is unknown."""
        if not await self._room_for(signal):
            return 0.0
        if self.risk.order_qty > 0:
            return self.risk.order_qty
        try:
            balance = await self.exchange.fetch_balance()
        except ExchangeError as exc:
            await self._failed(signal, signal.side, "open", exc.kind, f"cannot read balance: {exc.message}", 1)
            return 0.0
        price = _entry_price(signal)
        stop = signal.stop_price or default_stop(signal.side, price, self.risk.stop_loss_pct)
        return self.sizer.qty(signal.symbol, balance, price, stop)

    async def _room_for(self, signal: SignalFired) -> bool:
        """Whether `risk.max_open_positions` leaves a slot for this entry; if so the slot is taken at once.

        Symbols whose position this handler does not know are asked for (not
        remembered: their own orders may be under way), so a position opened by
        a stop-out's reversal or by hand counts too.
        """
        symbol = signal.symbol
        if self.sizer.limits_positions:
            others = 0
            for other in self.symbols:
                if other == symbol:
                    continue
                held = other in self._entering or self._held.get(other) is not None
                if held or (other in self._resting and await self._still_resting(other)):
                    others += 1
                elif other not in self._held:
                    try:
                        self.position_reads += 1
                        others += await self.exchange.fetch_position(other) is not None
                    except ExchangeError as exc:
                        message = f"cannot count open positions ({other}): {exc.message}"
                        await self._failed(signal, signal.side, "open", exc.kind, message, 0)
                        return False
            if not self.sizer.has_room(others):
                message = f"risk.max_open_positions ({self.sizer.slots}) reached: no entry sent"
                await self._failed(signal, signal.side, "open", ErrorKind.INVALID_ORDER, message, 0)
                return False
        self._entering.add(symbol)  # no await since the count: no other symbol's entry slipped in between
        return True

    async def _still_resting(self, symbol: str) -> bool:
        """Whether `symbol`'s resting limit entry still rests (unreadable: it does); one that ended is forgotten."""
        found = await self.exchange.fetch_order(symbol, self._resting[symbol])
        if not found.ok and found.error_kind is not ErrorKind.ORDER_NOT_FOUND:
            return True
        if found.ok and found.status in ("open", "partial"):
            return True
        self._resting.pop(symbol, None)  # filled (then a position, asked for next), cancelled or expired
        return False

    async def _order(
        self, signal: SignalFired, side: Side, qty: float, intent: OrderIntent, *, reduce_only: bool
    ) -> OrderResult:
        cid = client_order_id(signal.strategy, signal.symbol, signal.candle_open_time_ms, intent)
        stop: tuple[float, str] | None = None
        if intent == "open":
            reference = signal.limit_price if signal.order_type == "limit" else signal.price
            price = signal.stop_price or default_stop(side, reference, self.risk.stop_loss_pct)
            if price > 0:
                stop = (price, client_order_id(signal.strategy, signal.symbol, signal.candle_open_time_ms, "stop_loss"))
        intended = Sent(
            cid=cid,
            exchange=self.exchange.name,
            symbol=signal.symbol,
            side=side,
            qty=qty,
            intent=intent,
            reduce_only=reduce_only,
            sent_ms=0,
        )
        result, attempts = await self._send_once(intended, stop, signal if intent == "open" else None)
        limit = intent == "open" and signal.order_type == "limit"
        if limit and result.ok and result.status in ("open", "partial"):
            # Its exits go with it: an entry adopted after a restart is protected as its signal asked.
            exits = Resting(
                cid=cid,
                exchange=self.exchange.name,
                symbol=signal.symbol,
                stop_price=signal.stop_price,
                take_profit_price=signal.take_profit_price,
            )
            self.journal.write(exits)
        self.journal.outcome(cid, _journal_status(result, limit=limit), result.filled_qty, result.avg_price)
        if result.ok:
            await self._placed(signal, side, intent, result, attempts)
            return result
        self._held.pop(signal.symbol, None)  # whatever happened, the exchange knows better now
        kind = result.error_kind or ErrorKind.UNKNOWN
        await self._failed(signal, side, intent, kind, result.message, attempts, cid)
        return result

    async def _send_once(
        self, intended: Sent, stop: tuple[float, str] | None, entry: SignalFired | None = None
    ) -> tuple[OrderResult, int]:
        """Send until the order is known placed or known failed; never twice on the book.

        `stop` (price, client id) rides on the order where the venue takes one;
        `entry` is the signal of an entry, whose order type and take-profit it says.
        """
        symbol, cid = intended.symbol, intended.cid
        rate_waits = list(self.execution.rate_limit_backoff_s)
        network_waits = list(self.execution.network_backoff_s)
        attempts = 0
        while True:
            attempts += 1
            why = self._stale(entry) if entry is not None and attempts > 1 else ""
            if why:  # an entry retried past the bound: its price is stale now
                return OrderResult.failure(ErrorKind.INVALID_ORDER, why, client_order_id=cid), attempts - 1
            self.orders_sent += 1
            sent_ms = self.clock.now_ms()
            window = self.exchange.request_expiry_ms
            expires_ms = sent_ms + window if window is not None else 0
            self.journal.sent(msgspec.structs.replace(intended, sent_ms=sent_ms, expires_ms=expires_ms))
            result = await self._submit(intended, stop, entry)
            if result.ok:
                return result, attempts
            kind = result.error_kind or ErrorKind.UNKNOWN
            if kind.ambiguous:
                found = await self._look_up(symbol, cid, network_waits, expires_ms if window is not None else None)
                if found is not None:
                    return found, attempts
                # Proven: the first request can no longer execute and never did. Sending again is safe.
            elif kind is ErrorKind.RATE_LIMIT:
                if not rate_waits:
                    return result, attempts
                wait = rate_waits.pop(0)
                log.warning("rate limited placing %s; retrying in %.0fs", cid, wait)
                await self.clock.sleep(wait)
                continue
            elif kind is ErrorKind.CLOCK_SKEW:
                pass  # the time-sync handler resyncs on the error; resend after a network backoff
            else:
                return result, attempts  # definitive: funds, invalid order, auth
            if not network_waits:
                return result, attempts
            await self.clock.sleep(network_waits.pop(0))

    async def _submit(self, intended: Sent, stop: tuple[float, str] | None, entry: SignalFired | None) -> OrderResult:
        """One request: a limit where the entry asks for one, else a market order; exits ride along."""
        profit = entry.take_profit_price or None if entry is not None else None
        if entry is not None and entry.order_type == "limit":
            return await self.exchange.place_limit_order(
                intended.symbol,
                intended.side,
                intended.qty,
                entry.limit_price,
                client_order_id=intended.cid,
                time_in_force=entry.time_in_force,
                stop_price=stop[0] if stop else None,
                stop_client_order_id=stop[1] if stop else "",
                take_profit_price=profit,
            )
        return await self.exchange.place_market_order(
            intended.symbol,
            intended.side,
            intended.qty,
            client_order_id=intended.cid,
            reduce_only=intended.reduce_only,
            stop_price=stop[0] if stop else None,
            stop_client_order_id=stop[1] if stop else "",
            take_profit_price=profit,
        )

    async def _look_up(self, symbol: str, cid: str, waits: list[float], expires_ms: int | None) -> OrderResult | None:
        """Find out whether `cid` reached the book; None means it surely did not and never will.

        "Not found" counts only once the request's receive window (`expires_ms`)
        has passed; before that, wait for it and ask again. Without a window
        (None) it never counts: the outcome stays unknown. While the lookup
        itself fails, keep asking (on the network backoff): resending before
        knowing could double the order.
        """
        while True:
            found = await self.exchange.fetch_order(symbol, cid)
            if found.ok:
                return found
            if found.error_kind is ErrorKind.ORDER_NOT_FOUND:
                if expires_ms is None:
                    return OrderResult.failure(
                        ErrorKind.UNKNOWN,
                        "not found after a timeout; the venue gives no receive window, so it is not resent "
                        "(reconciliation adopts it if it filled)",
                        client_order_id=cid,
                    )
                remaining_ms = expires_ms - self.clock.now_ms()
                if remaining_ms <= 0:
                    return None
                log.warning("%s not found yet; looking again when its window closes in %d ms", cid, remaining_ms)
                await self.clock.sleep(remaining_ms / 1000)
                continue
            if not waits:
                return OrderResult.failure(
                    found.error_kind or ErrorKind.UNKNOWN,
                    f"order state unknown after retries: {found.message}",
                    client_order_id=cid,
                )
            await self.clock.sleep(waits.pop(0))

    async def _placed(
        self, signal: SignalFired, side: Side, intent: OrderIntent, result: OrderResult, attempts: int
    ) -> None:
        ratio = result.filled_qty / result.requested_qty if result.requested_qty else 1.0
        partial = ratio < self.execution.partial_fill_warn_ratio
        if partial:
            log.warning(
                "order %s filled only %.1f%% (%s of %s)",
                result.client_order_id,
                100 * ratio,
                result.filled_qty,
                result.requested_qty,
            )
        if self._bus is not None:
            await self._bus.publish(
                OrderPlaced(
                    ts_ns=self.clock.now_ns(),
                    client_order_id=result.client_order_id,
                    order_id=result.order_id,
                    exchange=signal.exchange,
                    symbol=signal.symbol,
                    side=side,
                    intent=intent,
                    requested_qty=result.requested_qty,
                    filled_qty=result.filled_qty,
                    avg_price=result.avg_price,
                    fee=result.fee,
                    status=result.status,
                    attempts=attempts,
                    partial=partial,
                    stop_price=result.stop_price,
                    stop_cid=result.stop_client_order_id,
                    take_profit_price=result.take_profit_price,
                    take_profit_cid=result.take_profit_client_order_id,
                    slippage=result.slippage,
                )
            )

    async def _failed(
        self,
        signal: SignalFired,
        side: Side,
        intent: OrderIntent,
        kind: ErrorKind,
        message: str,
        attempts: int,
        cid: str = "",
    ) -> None:
        log.error("order for %s %s failed (%s): %s", signal.symbol, intent, kind, message)
        if self._bus is not None:
            await self._bus.publish(
                OrderFailed(
                    ts_ns=self.clock.now_ns(),
                    client_order_id=cid,
                    exchange=signal.exchange,
                    symbol=signal.symbol,
                    side=side,
                    intent=intent,
                    error_kind=kind.label,
                    message=message,
                    attempts=attempts,
                )
            )

    def __repr__(self) -> str:
        return f"ExecutionHandler(exchange={self.exchange.name!r}, orders_sent={self.orders_sent})"
