"""The positions of a kernel as its events tell them: side, size, entry, stop, mark price, PnL today.

A passive follower of the bus: the position handlers own the positions; a
`PositionBook` only reads what they publish, so the status page and the risk
limits each keep their own book without reaching into a handler.
"""

from __future__ import annotations

import msgspec

from twinstar.bus.events import (
    CandleClosed,
    Event,
    PositionClosed,
    PositionOpened,
    PositionReconciled,
    PositionSide,
    PriceMoved,
    SLUpdated,
)

DAY_NS = 86_400 * 1_000_000_000
_DUST = 1e-12


class HeldPosition(msgspec.Struct, kw_only=True):
    """One open position as the events describe it; `mark_price` is the latest close (or stream price)."""

    exchange: str
    symbol: str
    side: PositionSide
    qty: float
    entry_price: float
    stop_price: float = 0.0
    mark_price: float = 0.0

    @property
    def unrealised_pnl(self) -> float:
        """PnL at the mark price before exit fees (0 while no entry price or mark is known)."""
        if self.entry_price <= 0 or self.mark_price <= 0:
            return 0.0
        move = self.mark_price - self.entry_price
        return self.qty * (move if self.side == "long" else -move)

    @property
    def notional(self) -> float:
        """Size in quote currency at the mark price (the entry price until a mark is known)."""
        return self.qty * (self.mark_price or self.entry_price)


class PositionBook:
    """Open positions keyed by (venue, symbol), marks, and realised PnL of the current UTC day per venue."""

    def __init__(self) -> None:
        self.positions: dict[tuple[str, str], HeldPosition] = {}
        self.marks: dict[tuple[str, str], float] = {}
        self._day = -1
        self._realised: dict[str, float] = {}

    def apply(self, event: Event) -> bool:
        """Follow `event`; True when it changed a position, a mark or the day's PnL."""
        match event:
            case CandleClosed() | PriceMoved():
                key = (event.exchange, event.symbol)
                price = event.close if isinstance(event, CandleClosed) else event.price
                self.marks[key] = price
                if (held := self.positions.get(key)) is not None:
                    held.mark_price = price
            case PositionOpened():
                key = (event.exchange, event.symbol)
                self.positions[key] = HeldPosition(
                    exchange=event.exchange,
                    symbol=event.symbol,
                    side=event.side,
                    qty=event.qty,
                    entry_price=event.entry_price,
                    mark_price=self.marks.get(key, event.entry_price),
                )
            case PositionClosed():
                self._book(event.exchange, event.ts_ns, event.pnl)
                key = (event.exchange, event.symbol)
                if (held := self.positions.get(key)) is not None:
                    held.qty -= event.qty
                    if held.qty <= _DUST:
                        del self.positions[key]
            case SLUpdated():
                if (held := self.positions.get((event.exchange, event.symbol))) is not None:
                    held.stop_price = event.stop_price
            case PositionReconciled():
                self._reconciled(event)
            case _:
                return False
        return True

    def _reconciled(self, event: PositionReconciled) -> None:
        key = (event.exchange, event.symbol)
        held = self.positions.get(key)
        if event.after <= _DUST:
            self.positions.pop(key, None)
        elif held is not None:
            held.qty = event.after
            held.stop_price = event.stop_price or held.stop_price
        elif event.side in ("long", "short"):  # adopted: found on the exchange
            side: PositionSide = "long" if event.side == "long" else "short"
            self.positions[key] = HeldPosition(
                exchange=event.exchange,
                symbol=event.symbol,
                side=side,
                qty=event.after,
                entry_price=0.0,
                stop_price=event.stop_price,
                mark_price=self.marks.get(key, 0.0),
            )

    def _book(self, exchange: str, ts_ns: int, pnl: float) -> None:
        day = ts_ns // DAY_NS
        if day != self._day:
            self._day, self._realised = day, {}
        self._realised[exchange] = self._realised.get(exchange, 0.0) + pnl

    def realised_today(self, now_ns: int, exchange: str | None = None) -> float:
        """Realised PnL (after fees) of the UTC day of `now_ns`, of one venue or of all."""
        if now_ns // DAY_NS != self._day:
            return 0.0
        if exchange is not None:
            return self._realised.get(exchange, 0.0)
        return sum(self._realised.values())

    def __repr__(self) -> str:
        held = {f"{e}:{s}": (p.side, p.qty) for (e, s), p in self.positions.items()}
        return f"PositionBook(positions={held}, realised={self._realised})"
