"""Compare the decisions, fills and PnL of two event streams.

Timestamps are left out of the comparison: a live run's clock is the wall
clock, a replay's is simulated, so only what was decided must agree. So is the
interleaving of different kinds of decision, and of different symbols: live,
handlers run concurrently (a close may be booked before or after the reversing
entry goes out), while a replay runs them in turn. Each kind of decision of
each symbol is compared in its own order; the first departure is the earliest
of theirs.
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


def _threads(decisions: list[Event]) -> dict[tuple[str, str, str], list[int]]:
    """Positions of the decisions of each kind and symbol (their own order), keyed by (kind, venue, symbol)."""
    threads: dict[tuple[str, str, str], list[int]] = {}
    for position, event in enumerate(decisions):
        key = (type(event).__name__, getattr(event, "exchange", ""), getattr(event, "symbol", ""))
        threads.setdefault(key, []).append(position)
    return threads


def _first_departure(left: list[Event], right: list[Event]) -> tuple[int, int]:
    """(position in `left`, in `right`) of the earliest decision that differs in its own thread; -1 where absent."""
    ours, theirs = _threads(left), _threads(right)
    best: tuple[int, int] | None = None
    for key in dict.fromkeys([*ours, *theirs]):
        a, b = ours.get(key, []), theirs.get(key, [])
        for step in range(max(len(a), len(b))):
            i = a[step] if step < len(a) else -1
            j = b[step] if step < len(b) else -1
            if _describe(left[i] if i >= 0 else None) != _describe(right[j] if j >= 0 else None):
                if best is None or (i if i >= 0 else j) < (best[0] if best[0] >= 0 else best[1]):
                    best = (i, j)
                break
    return best if best is not None else (-1, -1)


def compare(original: Iterable[Event], replayed: Iterable[Event]) -> Divergence:
    """The first decision where `replayed` departs from `original`, with fills and PnL of both.

    `index` is the departing decision's position among the original's
    decisions (the replayed one's where the original made none there).
    """
    left, right = _decisions(original), _decisions(replayed)
    i, j = _first_departure(left, right)
    return Divergence(
        index=i if i >= 0 else j,
        original=_describe(left[i]) if i >= 0 else "",
        replayed=_describe(right[j]) if j >= 0 else "",
        original_fills=_fills(left),
        replayed_fills=_fills(right),
        original_pnl=_pnl(left),
        replayed_pnl=_pnl(right),
    )
