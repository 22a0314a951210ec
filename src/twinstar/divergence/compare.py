"""Compare the decisions, fills and PnL of two event streams.

Timestamps are left out of the comparison: a live run's clock is the wall
clock, a replay's is simulated, so only what was decided must agree.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from twinstar.bus.events import Event, OrderFailed, OrderPlaced, PositionClosed, PositionOpened, SignalFired

DECISION_TYPES = (SignalFired, OrderPlaced, OrderFailed, PositionOpened, PositionClosed)


class Fill(msgspec.Struct, frozen=True, kw_only=True):
    client_order_id: str
    filled_qty: float
    avg_price: float


class Divergence(msgspec.Struct, frozen=True, kw_only=True):
    """The first differing decision (index into the decision lists, -1 if none) and both sides' totals."""

    index: int
    original: str
    replayed: str
    original_fills: list[Fill]
    replayed_fills: list[Fill]
    original_pnl: float
    replayed_pnl: float


def _decisions(events: Iterable[Event]) -> list[Event]:
    return [event for event in events if isinstance(event, DECISION_TYPES)]


def _describe(event: Event | None) -> str:
    if event is None:
        return "(nothing)"
    fields = msgspec.structs.asdict(event)
    fields.pop("ts_ns", None)
    return f"{type(event).__name__} {fields}"


def _fills(decisions: list[Event]) -> list[Fill]:
    return [
        Fill(client_order_id=e.client_order_id, filled_qty=e.filled_qty, avg_price=e.avg_price)
        for e in decisions
        if isinstance(e, OrderPlaced)
    ]


def _pnl(decisions: list[Event]) -> float:
    return sum(e.pnl for e in decisions if isinstance(e, PositionClosed))


def compare(original: Iterable[Event], replayed: Iterable[Event]) -> Divergence:
    """The first decision where `replayed` departs from `original`, with fills and PnL of both."""
    left, right = _decisions(original), _decisions(replayed)
    index = -1
    for position in range(max(len(left), len(right))):
        a = left[position] if position < len(left) else None
        b = right[position] if position < len(right) else None
        if _describe(a) != _describe(b):
            index = position
            break
    return Divergence(
        index=index,
        original=_describe(left[index]) if 0 <= index < len(left) else "",
        replayed=_describe(right[index]) if 0 <= index < len(right) else "",
        original_fills=_fills(left),
        replayed_fills=_fills(right),
        original_pnl=_pnl(left),
        replayed_pnl=_pnl(right),
    )
