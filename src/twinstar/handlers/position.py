"""Positions from fills, and the stop-loss that must always protect them.

* An `OrderPlaced` for an entry opens a position with the FILLED quantity and
  places its stop for that quantity: the signal's stop, else `stop_loss_pct`
  from the fill price.
* A failed stop update is retried on the clock (1, 2, 3 s by default) and then
  reported as `SLUpdateFailed`; the previous stop stays in force.
* If a new position gets no stop at all, it is closed at market
  (`EmergencyExit`, then `PositionClosed`).
* On every closed candle the stop trails the close (only ever tighter). When
  the candle touched the stop, the exchange's position is checked at once: a
  position gone flat was stopped out. Every `reconcile_every` candles it is
  checked anyway, and a different quantity is reconciled (`PositionReconciled`).
  Live, the routine check and the trailing move wait until the bus is idle,
  so they never delay the orders the same candle causes.
* Venues without native stops (spot Upbit, Bithumb) get a synthetic stop: a
  closed candle crossing it closes the position at market.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable
from typing import Final

import msgspec

from twinstar.adapters.base import ErrorKind, Exchange, ExchangeError, OrderResult
from twinstar.bus.bus import Bus
from twinstar.bus.events import (
    CandleClosed,
    EmergencyExit,
    OrderPlaced,
    PositionClosed,
    PositionOpened,
    PositionReconciled,
    PositionSide,
    SignalFired,
    SLUpdated,
    SLUpdateFailed,
)
from twinstar.clock import Clock
from twinstar.config import RiskConfig

log: Final = logging.getLogger("twinstar.position")


@functools.cache
def _slug(symbol: str) -> str:
    """The symbol as it may appear in a client order id: [a-z0-9], at most 10 characters."""
    return "".join(ch for ch in symbol if ch.isalnum())[:10].lower()


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


class PositionHandler:
    """Owns positions and their stop-losses; see the module docstring."""

    def __init__(self, exchange: Exchange, clock: Clock, risk: RiskConfig) -> None:
        self.exchange = exchange
        self.clock = clock
        self.risk = risk
        self.positions: dict[str, OpenPosition] = {}
        self._signal_stops: dict[str, float] = {}
        self._bus: Bus | None = None
        self._defer_checks = False  # live: routine checks and trailing run after the candle's decisions (`run`)
        self._due: dict[str, tuple[CandleClosed, bool]] = {}  # symbol -> (latest candle, check the exchange too)
        self._maintenance_wanted = asyncio.Event()

    def attach(self, bus: Bus) -> None:
        """Subscribe to candles, signals (for their stops) and fills."""
        self._bus = bus
        self._defer_checks = bus.mode == "live"
        bus.subscribe(CandleClosed, self.on_candle, name="PositionHandler.on_candle")
        bus.subscribe(SignalFired, self.on_signal, name="PositionHandler.on_signal")
        bus.subscribe(OrderPlaced, self.on_order, name="PositionHandler.on_order")

    async def _publish(self, event: msgspec.Struct) -> None:
        if self._bus is not None:
            await self._bus.publish(event)  # type: ignore[arg-type]

    def on_signal(self, signal: SignalFired) -> None:
        """Remember the stop a signal asked for; its entry fill arrives next."""
        self._signal_stops[signal.symbol] = signal.stop_price

    # -- fills -------------------------------------------------------------

    async def on_order(self, order: OrderPlaced) -> None:
        """Open, reduce or close the position by what was actually filled."""
        if order.filled_qty <= 0:
            return
        if order.intent == "open":
            await self._open(order)
        else:
            await self._reduce(order, reason="signal" if order.intent == "close" else order.intent)

    async def _open(self, order: OrderPlaced) -> None:
        side: PositionSide = "long" if order.side == "buy" else "short"
        position = OpenPosition(order.exchange, order.symbol, side, order.filled_qty, order.avg_price, order.fee)
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
        stop = self._signal_stops.pop(order.symbol, 0.0) or self._default_stop(side, order.avg_price)
        if not await self._set_stop(position, stop):
            await self._emergency_exit(position, "no stop-loss could be placed")

    def _default_stop(self, side: PositionSide, price: float) -> float:
        distance = self.risk.stop_loss_pct / 100
        return price * (1 - distance) if side == "long" else price * (1 + distance)

    async def _reduce(self, order: OrderPlaced, reason: str) -> None:
        position = self.positions.get(order.symbol)
        if position is None:
            return
        qty = min(order.filled_qty, position.qty)
        await self._book_close(position, qty, order.avg_price, order.fee, reason)
        if position.qty > 1e-12:
            await self._set_stop(position, position.stop_price)  # protect what is left, at its size
        elif self.exchange.supports_native_stop:
            await self.exchange.cancel_stop_loss(order.symbol)

    async def _book_close(self, position: OpenPosition, qty: float, price: float, fee: float, reason: str) -> None:
        """Realise `qty` at `price`; PnL includes the entry fee share and the exit fee."""
        share = qty / position.qty
        entry_fee = position.fees * share
        move = price - position.entry_price
        gross = qty * (move if position.side == "long" else -move)
        fees = entry_fee + fee
        position.qty -= qty
        position.fees -= entry_fee
        if position.qty <= 1e-12:
            self.positions.pop(position.symbol, None)
        await self._publish(
            PositionClosed(
                ts_ns=self.clock.now_ns(),
                exchange=position.exchange,
                symbol=position.symbol,
                side=position.side,
                qty=qty,
                entry_price=position.entry_price,
                exit_price=price,
                pnl=gross - fees,
                fees=fees,
                reason=reason,
            )
        )

    # -- stops -------------------------------------------------------------

    async def _set_stop(self, position: OpenPosition, stop_price: float) -> bool:
        """Place or move the stop, retrying on the clock; False if it never took."""
        if not self.exchange.supports_native_stop:
            await self._stop_in_force(position, stop_price, "")  # synthetic: watched on every closed candle
            return True
        waits = list(self.risk.sl_retry_backoff_s)
        attempts = 0
        while True:
            attempts += 1
            position.stop_seq += 1
            cid = self._cid("s", position)
            result: OrderResult = await self.exchange.update_stop_loss(
                position.symbol, position.side, position.qty, stop_price, client_order_id=cid
            )
            if result.ok:
                await self._stop_in_force(position, stop_price, cid)
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

    async def _stop_in_force(self, position: OpenPosition, stop_price: float, cid: str) -> None:
        position.stop_price = stop_price
        position.stop_cid = cid
        await self._publish(
            SLUpdated(
                ts_ns=self.clock.now_ns(),
                exchange=position.exchange,
                symbol=position.symbol,
                stop_price=stop_price,
                qty=position.qty,
            )
        )

    async def _emergency_exit(self, position: OpenPosition, reason: str) -> None:
        await self._publish(
            EmergencyExit(
                ts_ns=self.clock.now_ns(),
                exchange=position.exchange,
                symbol=position.symbol,
                qty=position.qty,
                reason=reason,
            )
        )
        result = await self.exchange.close_position(position.symbol, client_order_id=self._cid("x", position))
        if result.ok:
            await self._book_close(
                position, min(result.filled_qty, position.qty), result.avg_price, result.fee, "emergency_exit"
            )
        else:
            log.critical("EMERGENCY EXIT FAILED for %s: %s", position.symbol, result.message)

    # -- every candle ------------------------------------------------------

    def on_candle(self, candle: CandleClosed) -> Awaitable[None] | None:
        """Detect stop fills and quantity drift, fire synthetic stops, trail the stop.

        Plain, not async: on most candles nothing needs the exchange, and
        those cost no coroutine. What does is returned for the bus to await.
        """
        position = self.positions.get(candle.symbol)
        if position is None or position.exchange != candle.exchange:
            return None
        stop = position.stop_price
        if position.side == "long":
            crossed, touched = candle.close <= stop, candle.low <= stop
        else:
            crossed, touched = candle.close >= stop, candle.high >= stop
        if not self.exchange.supports_native_stop:
            if crossed:
                return self._synthetic_stop(position)
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

    async def _maintain(self, position: OpenPosition, candle: CandleClosed, *, check: bool) -> None:
        """Check the exchange's position if asked, then trail the stop to `candle`."""
        if check and not await self._check_exchange(position):
            return
        trail = self._trail_to(position, candle)
        if trail is not None:
            await self._set_stop(position, trail)

    async def run(self) -> None:
        """Live: routine checks and trailing once the bus is idle, off the order path."""
        if not self._defer_checks or self._bus is None:
            return  # replay maintains inline, in event order
        while True:
            await self._maintenance_wanted.wait()
            self._maintenance_wanted.clear()
            await self._bus.idle()
            while self._due:
                symbol = next(iter(self._due))
                candle, check = self._due.pop(symbol)
                position = self.positions.get(symbol)
                if position is not None:
                    await self._maintain(position, candle, check=check)

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
            await self._stopped_out(position)
            return False
        if abs(actual.qty - position.qty) > 1e-9:
            before, position.qty = position.qty, actual.qty
            await self._publish(
                PositionReconciled(
                    ts_ns=self.clock.now_ns(),
                    exchange=position.exchange,
                    symbol=position.symbol,
                    before=before,
                    after=actual.qty,
                )
            )
            await self._set_stop(position, position.stop_price)
        return True

    async def _stopped_out(self, position: OpenPosition) -> None:
        """The exchange shows flat: the resting stop filled; book it at its real fill price."""
        fill_price, fee = position.stop_price, 0.0
        found = await self.exchange.fetch_order(position.symbol, position.stop_cid)
        if found.ok and found.filled_qty > 0:  # a gap fills at the open, not at the stop
            fill_price, fee = found.avg_price, found.fee
        if self.positions.get(position.symbol) is position:  # not booked meanwhile by a fill event
            await self._book_close(position, position.qty, fill_price, fee, "stop_loss")

    def _cid(self, code: str, position: OpenPosition) -> str:
        """Client id for a stop ("s") or exit ("x"): unique per position, time and attempt."""
        symbol = _slug(position.symbol)
        return f"tw{code}-{symbol}-{self.clock.now_ms():x}-{position.stop_seq}"

    async def _synthetic_stop(self, position: OpenPosition) -> None:
        result = await self.exchange.close_position(position.symbol, client_order_id=self._cid("x", position))
        if result.ok:
            await self._book_close(
                position, min(result.filled_qty, position.qty), result.avg_price, result.fee, "stop_loss"
            )
        else:
            log.error("synthetic stop for %s failed: %s; retrying on the next candle", position.symbol, result.message)

    def __repr__(self) -> str:
        return f"PositionHandler(positions={ {s: (p.side, p.qty, p.stop_price) for s, p in self.positions.items()} })"
