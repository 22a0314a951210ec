"""What a live recording says each venue answered, indexed for a replay that asks again.

A live stream holds the venue's answers as the events the kernel made of
them: an order's `OrderPlaced` or `OrderFailed` (by its deterministic client
id), each stop placement's `SLUpdated` or `SLUpdateFailed` (in order, per
symbol: a stop's client id carries the wall-clock time it went out), and every
close's `PositionClosed` (its fill price, fees and funding). Each answer keeps
its segment: how many input events the recording had fed in before it, so a
replay can tell when an exit the venue made on its own (a stop that triggered)
had become known live.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from typing import Final, TypeAlias

import msgspec

from twinstar.bus.events import (
    INPUT_EVENT_TYPES,
    Event,
    OrderFailed,
    OrderPlaced,
    PositionClosed,
    SLUpdated,
    SLUpdateFailed,
)

OrderAnswer: TypeAlias = OrderPlaced | OrderFailed
StopAnswer: TypeAlias = SLUpdated | SLUpdateFailed

#: Closes the venue made without an order call of the kernel: found afterwards by a check or reconciliation.
VENUE_EXITS: Final = frozenset({"stop_loss", "take_profit", "closed_outside"})


class Segmented(msgspec.Struct, frozen=True):
    """A recorded answer, the number of input events recorded before it and its symbol's stop answers before it.

    `venue_exit`: a close the venue made on its own (no fill event of the kernel's came with it). It closed
    what the stops placed before it protected, so it cannot come earlier than `stops_before` stop answers.
    """

    segment: int
    event: Event
    stops_before: int = 0
    venue_exit: bool = False


class VenueAnswers:
    """One venue's recorded answers (see the module docstring)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.orders: dict[str, list[Segmented]] = {}  # client id -> its OrderPlaced / OrderFailed, in order
        self.stops: dict[str, collections.deque[StopAnswer]] = {}  # symbol -> stop answers still to give
        self.closes: dict[str, collections.deque[Segmented]] = {}  # symbol -> PositionClosed still to give
        self.fill_fees: dict[str, float] = {}  # entry order id -> the fees its trades were booked with

    def __repr__(self) -> str:
        stops = sum(map(len, self.stops.values()))
        closes = sum(map(len, self.closes.values()))
        return f"VenueAnswers(name={self.name!r}, orders={len(self.orders)}, stops={stops}, closes={closes})"


class _Indexer:
    def __init__(self) -> None:
        self.venues: dict[str, VenueAnswers] = {}
        self.entries: dict[tuple[str, str], OrderPlaced] = {}  # (venue, symbol) -> entry whose close is to come
        self.close_orders: dict[tuple[str, str], OrderPlaced] = {}  # (venue, symbol) -> the latest close order
        self.attached: set[tuple[str, str]] = set()  # an entry carried its stop: its SLUpdated had no call
        self.stop_count: collections.Counter[tuple[str, str]] = collections.Counter()  # stop answers so far
        self.take_profits: set[tuple[str, str]] = set()  # a take-profit's fill was published: its close follows

    def venue(self, name: str) -> VenueAnswers:
        answers = self.venues.get(name)
        if answers is None:
            answers = self.venues[name] = VenueAnswers(name)
        return answers

    def add(self, segment: int, event: Event) -> None:
        match event:
            case OrderPlaced() | OrderFailed():
                self.venue(event.exchange).orders.setdefault(event.client_order_id, []).append(
                    Segmented(segment, event)
                )
                if isinstance(event, OrderPlaced) and event.filled_qty > 0:
                    self._fill(event)
            case SLUpdated() | SLUpdateFailed():
                key = (event.exchange, event.symbol)
                if isinstance(event, SLUpdated) and key in self.attached:
                    self.attached.discard(key)  # published for the stop the entry carried: no call asked it
                    return
                self.venue(event.exchange).stops.setdefault(event.symbol, collections.deque()).append(event)
                self.stop_count[key] += 1
            case PositionClosed():
                self._close(segment, event)
            case _:
                pass

    def _fill(self, order: OrderPlaced) -> None:
        key = (order.exchange, order.symbol)
        if order.intent == "open":
            self.entries[key] = order
            if order.stop_price > 0:
                self.attached.add(key)
        elif order.intent == "close":
            self.close_orders[key] = order
        elif order.intent == "take_profit":  # its close comes by this fill, not by the venue alone
            self.take_profits.add(key)

    def _close(self, segment: int, closed: PositionClosed) -> None:
        key = (closed.exchange, closed.symbol)
        answers = self.venue(closed.exchange)
        by_fill = key in self.take_profits and closed.reason == "take_profit"
        self.take_profits.discard(key)
        venue_exit = closed.reason in VENUE_EXITS and not by_fill
        recorded = Segmented(segment, closed, self.stop_count[key], venue_exit)
        answers.closes.setdefault(closed.symbol, collections.deque()).append(recorded)
        entry = self.entries.pop(key, None)
        close_order = self.close_orders.pop(key, None)
        if entry is None or closed.reason != "signal" or close_order is None or closed.qty <= 0:
            return
        # Fees the entry was booked with (its trades', read after the fill where the reply had none):
        # what the close's fees hold beyond the close order's own, for the whole entry.
        share = closed.qty / entry.filled_qty
        if share >= 1.0:
            answers.fill_fees[entry.order_id] = closed.fees - close_order.fee  # adding back gives closed.fees


def index_answers(events: Iterable[Event]) -> tuple[list[Event], dict[str, VenueAnswers]]:
    """Split a live recording into its input events and each venue's recorded answers."""
    indexer = _Indexer()
    inputs: list[Event] = []
    for event in events:
        if isinstance(event, INPUT_EVENT_TYPES):
            inputs.append(event)
        else:
            indexer.add(len(inputs), event)
    return inputs, indexer.venues
