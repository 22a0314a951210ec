"""Exits whose fee the venue's reply did not say: booked once their trades are read, never as 0.

Binance USD-M's order reply has no commission; without the private order
stream it is on the order's trades only (`fetch_my_trades`). Reading them
between a reversal's close and its new entry's stop would hold that stop one
round trip, so the close's `PositionClosed` waits (`hold`) until the new stop
is placed, or the bus is idle, and then goes out with its real fee
(`settle`). Everything the position handler publishes for that symbol
meanwhile (the new `PositionOpened`, its `SLUpdated`, ...) waits behind it
(`defer`), so every reader still sees the close before what followed it, and
PnL is exact in every reader without a correction event.
"""

from __future__ import annotations

import msgspec

from twinstar.bus.events import Event, PositionClosed


class _Due(msgspec.Struct):
    closed: PositionClosed
    order_id: str
    held: list[Event] = msgspec.field(default_factory=list)


class PendingExitFees:
    """Closes waiting for their fee, by symbol, and the events that must follow each."""

    def __init__(self) -> None:
        self._due: dict[str, _Due] = {}

    def __bool__(self) -> bool:
        return bool(self._due)

    def hold(self, closed: PositionClosed, order_id: str) -> None:
        """Keep `closed` until the fee of exit order `order_id` is known (one per symbol: settle the last first)."""
        if closed.symbol in self._due:
            raise ValueError(f"{closed.symbol}: an earlier close still waits for its fee; settle it first")
        self._due[closed.symbol] = _Due(closed, order_id)

    def order_id(self, symbol: str) -> str:
        """The exit order whose fee `symbol`'s held close waits for ("" when none waits)."""
        due = self._due.get(symbol)
        return due.order_id if due is not None else ""

    def defer(self, event: Event) -> bool:
        """Queue `event` behind its symbol's held close; False when none is held (publish it now)."""
        due = self._due.get(str(getattr(event, "symbol", "")))
        if due is None:
            return False
        due.held.append(event)
        return True

    def symbols(self) -> list[str]:
        """The symbols whose close waits for its fee."""
        return list(self._due)

    def settle(self, symbol: str, order_id: str, fee: float) -> list[Event]:
        """The held close with `fee` added, then what waited behind it; [] if that close was settled meanwhile."""
        due = self._due.get(symbol)
        if due is None or due.order_id != order_id:
            return []
        del self._due[symbol]
        closed = msgspec.structs.replace(due.closed, fees=due.closed.fees + fee, pnl=due.closed.pnl - fee)
        return [closed, *due.held]

    def __repr__(self) -> str:
        return f"PendingExitFees({ {s: (d.order_id, len(d.held)) for s, d in self._due.items()} })"
