"""The Exchange protocol answered from a live recording: a replay gets what the venue said, not a simulation.

An order is answered by its deterministic client id with the recorded outcome
(fill quantity, average price, fee, status, stop that rode on it; or the
classified failure, once per recorded attempt). Stop placements get the
recorded `SLUpdated` / `SLUpdateFailed` of their symbol in order, closes the
recorded `PositionClosed` (price, fees, funding). Positions and resting stops
are what these answers left, plus the exits the venue made on its own (a stop
that triggered): such an exit shows from the input event after which the
recording learnt of it.

A request the recording holds no answer for (the replayed kernel decided
something live did not) is answered with a refusal and remembered as the
`departure`, which the replay reports as a divergence: never a silent
simulation.
"""

from __future__ import annotations

import collections
import typing
from typing import Final

import msgspec

from twinstar.adapters.base import Balance, Bar, ErrorKind, OpenOrder, OrderResult, OrderStatus, Position
from twinstar.bus.bus import Bus
from twinstar.bus.events import (
    OrderFailed,
    OrderPlaced,
    PositionClosed,
    PositionSide,
    Side,
    SignalFired,
    SLUpdated,
    TimeInForce,
)
from twinstar.clock import Clock
from twinstar.handlers.execution import client_order_id
from twinstar.replay.answers import VenueAnswers

_KINDS: Final = {kind.label: kind for kind in ErrorKind}
_STATUSES: Final[dict[str, OrderStatus]] = {status: status for status in typing.get_args(OrderStatus)}
_FLAT: Final = 1e-12


class _Held(msgspec.Struct):
    side: PositionSide
    qty: float
    entry_price: float
    fees: float  # what the position handler booked as the entry's fees


def _closing(side: PositionSide) -> Side:
    return "sell" if side == "long" else "buy"


class RecordedExchange:
    """One venue of a live recording, answering a replay as it answered live (see the module docstring)."""

    def __init__(
        self, answers: VenueAnswers, clock: Clock, *, native_stop: bool = True, balance: float = 10_000.0
    ) -> None:
        self.answers = answers
        self.clock = clock
        self._native_stop = native_stop
        self._balance = balance
        self.segment = 0  # input events the replay has fed in so far
        self.departure = ""  # the first request the recording had no answer for
        self._held: dict[str, _Held] = {}
        self._stops: dict[str, OpenOrder] = {}  # symbol -> the stop resting for it
        self._stop_exits: dict[str, tuple[PositionClosed, float]] = {}  # stop client id -> (its exit, the exit fee)
        self._answered: dict[str, tuple[int, OrderResult]] = {}  # client id -> (recorded answer given, result)
        self._sends: collections.Counter[str] = collections.Counter()  # client id -> calls so far
        self._last_close: dict[str, PositionClosed] = {}  # symbol -> the close being booked (its funding)
        self._stops_given: collections.Counter[str] = collections.Counter()  # symbol -> stop answers taken
        self._signal: SignalFired | None = None  # the latest signal: its entry is what a balance read sizes

    # -- replay hooks --------------------------------------------------------

    def attach(self, bus: Bus) -> None:
        """See each signal before execution does: a balance read is answered for the entry it sizes."""
        bus.subscribe(SignalFired, self.on_signal, name=f"RecordedExchange[{self.name}].on_signal")

    def on_signal(self, signal: SignalFired) -> None:
        """Remember the signal whose entry the next balance read sizes."""
        if signal.exchange == self.name:
            self._signal = signal

    def exit_due(self) -> bool:
        """Whether a recorded exit the venue made on its own is known by now but not yet asked for."""
        return any(self._venue_exit(symbol) is not None for symbol in self._held)

    def _venue_exit(self, symbol: str) -> PositionClosed | None:
        """The next recorded close of the held `symbol` if the venue made it on its own and live knew of it by now."""
        closes = self.answers.closes.get(symbol)
        if not closes or symbol not in self._held:
            return None
        head = closes[0]
        closed = head.event
        assert isinstance(closed, PositionClosed)
        known = head.segment <= self.segment and head.stops_before <= self._stops_given[symbol]
        return closed if known and head.venue_exit else None

    def _depart(self, what: str, client_order_id: str) -> OrderResult:
        message = f"{what} (client id {client_order_id or '-'}): the live recording has no answer for it"
        self.departure = self.departure or message
        return OrderResult.failure(ErrorKind.INVALID_ORDER, f"replay: {message}", client_order_id=client_order_id)

    # -- the venue's own exits -----------------------------------------------

    def _settle(self, symbol: str) -> None:
        """Apply the exit the venue made on its own, once the replay has reached where live learnt of it."""
        closed = self._venue_exit(symbol)
        if closed is None:
            return
        stop = self._stops.pop(symbol, None)
        if stop is not None:
            self._stop_exits[stop.client_order_id] = (closed, self._exit_fee(symbol, closed))
        self._reduce(symbol, closed.qty)

    def _reduce(self, symbol: str, qty: float) -> None:
        """Take the next recorded close of `symbol` for a fill of `qty`: it is the one the handler books next."""
        held = self._held.get(symbol)
        closes = self.answers.closes.get(symbol)
        closed = closes.popleft().event if closes else None
        if isinstance(closed, PositionClosed):
            self._last_close[symbol] = closed
        if held is not None:
            share = min(qty, held.qty) / held.qty
            held.fees -= held.fees * share
            held.qty -= min(qty, held.qty)
            if held.qty <= _FLAT:
                del self._held[symbol]
                self._stops.pop(symbol, None)

    def _exit_fee(self, symbol: str, closed: PositionClosed) -> float:
        """The exit's fee that makes the handler's booked fees (entry share + exit) equal the recorded ones."""
        held = self._held.get(symbol)
        entry_share = held.fees * (min(closed.qty, held.qty) / held.qty) if held is not None and held.qty > 0 else 0.0
        return closed.fees - entry_share  # a float sum's part subtracted adds back to the same sum

    # -- protocol ------------------------------------------------------------

    @property
    def name(self) -> str:
        """The recorded venue's name."""
        return self.answers.name

    @property
    def supports_native_stop(self) -> bool:
        """As the live adapter of this venue."""
        return self._native_stop

    @property
    def fills_carry_fees(self) -> bool:
        """Each recorded reply carries the fee live booked; an entry's fee read later comes by `fetch_fill_fees`."""
        return True

    @property
    def request_expiry_ms(self) -> int | None:
        """Every answer is known: a failed request can no longer execute."""
        return 0

    async def place_market_order(
        self,
        symbol: str,
        side: Side,
        qty: float,
        *,
        client_order_id: str,
        reduce_only: bool = False,
        stop_price: float | None = None,
        stop_client_order_id: str = "",
        take_profit_price: float | None = None,
    ) -> OrderResult:
        """The recorded outcome of `client_order_id`."""
        return self._order(symbol, side, client_order_id)

    async def place_limit_order(
        self,
        symbol: str,
        side: Side,
        qty: float,
        price: float,
        *,
        client_order_id: str,
        time_in_force: TimeInForce = "gtc",
        reduce_only: bool = False,
        stop_price: float | None = None,
        stop_client_order_id: str = "",
        take_profit_price: float | None = None,
    ) -> OrderResult:
        """The recorded outcome of `client_order_id` (a resting limit's first answer)."""
        return self._order(symbol, side, client_order_id)

    def _order(self, symbol: str, side: Side, cid: str) -> OrderResult:
        self._settle(symbol)
        recorded = self.answers.orders.get(cid)
        if not recorded:
            return self._depart(f"a {side} order on {symbol}", cid)
        first = recorded[0].event
        assert isinstance(first, OrderPlaced | OrderFailed)
        if first.side != side or first.symbol != symbol:
            return self._depart(f"a {side} order on {symbol} where live sent {first.side} on {first.symbol}", cid)
        if isinstance(first, OrderFailed):  # every try refused as live's were
            kind = _KINDS.get(first.error_kind, ErrorKind.UNKNOWN)
            return OrderResult.failure(kind, first.message, client_order_id=cid, timestamp_ms=self.clock.now_ms())
        self._sends[cid] += 1
        calls = self._sends[cid]
        if calls < first.attempts:  # live needed more tries: the earlier ones are refused as retryable
            message = "rate limited (as recorded: live needed more tries)"
            return OrderResult.failure(ErrorKind.RATE_LIMIT, message, client_order_id=cid)
        if calls > first.attempts:
            return self._depart(f"a {side} order on {symbol} sent once more than live sent it", cid)
        result = self._result(first)
        self._answered[cid] = (0, result)
        self._fill(first)
        return result

    def _result(self, placed: OrderPlaced) -> OrderResult:
        return OrderResult(
            ok=True,
            client_order_id=placed.client_order_id,
            order_id=placed.order_id,
            status=_STATUSES.get(placed.status, "unknown"),
            requested_qty=placed.requested_qty,
            filled_qty=placed.filled_qty,
            avg_price=placed.avg_price,
            fee=placed.fee,
            timestamp_ms=self.clock.now_ms(),
            stop_price=placed.stop_price,
            stop_client_order_id=placed.stop_cid,
            take_profit_price=placed.take_profit_price,
            take_profit_client_order_id=placed.take_profit_cid,
            slippage=placed.slippage,
        )

    def _fill(self, placed: OrderPlaced) -> None:
        """What a fill leaves on the venue: a position opened, or one reduced (and its recorded close taken)."""
        if placed.filled_qty <= 0:
            return
        symbol = placed.symbol
        if placed.intent == "open":
            side: PositionSide = "long" if placed.side == "buy" else "short"
            fees = self.answers.fill_fees.get(placed.order_id, placed.fee)
            self._held[symbol] = _Held(side, placed.filled_qty, placed.avg_price, fees)
            if placed.stop_price > 0:
                self._stops[symbol] = OpenOrder(
                    symbol=symbol,
                    order_id="",
                    client_order_id=placed.stop_cid,
                    side=_closing(side),
                    qty=placed.filled_qty,
                    stop_price=placed.stop_price,
                    reduce_only=True,
                )
        else:
            self._reduce(symbol, placed.filled_qty)

    async def place_take_profit(
        self, symbol: str, position_side: PositionSide, qty: float, price: float, *, client_order_id: str
    ) -> OrderResult:
        """Rested, as live (its fill, if any, is the recorded take-profit `OrderPlaced`)."""
        return OrderResult.success(
            client_order_id=client_order_id,
            order_id=client_order_id,
            status="open",
            requested_qty=qty,
            filled_qty=0.0,
            avg_price=0.0,
            timestamp_ms=self.clock.now_ms(),
        )

    async def update_stop_loss(
        self,
        symbol: str,
        position_side: PositionSide,
        qty: float,
        stop_price: float,
        *,
        client_order_id: str,
    ) -> OrderResult:
        """The next recorded stop answer of `symbol`, if it is for this price."""
        self._settle(symbol)
        queue = self.answers.stops.get(symbol)
        if not queue:
            return self._depart(f"a stop for {symbol} at {stop_price:g}", client_order_id)
        answer = queue[0]
        if abs(answer.stop_price - stop_price) > 1e-9 * max(1.0, abs(stop_price)):
            return self._depart(
                f"a stop for {symbol} at {stop_price:g} where live placed one at {answer.stop_price:g}",
                client_order_id,
            )
        if not isinstance(answer, SLUpdated):
            left = answer.attempts - 1
            if left > 0:
                queue[0] = msgspec.structs.replace(answer, attempts=left)
            else:
                queue.popleft()
                self._stops_given[symbol] += 1
            kind = _KINDS.get(answer.error_kind, ErrorKind.UNKNOWN)
            return OrderResult.failure(kind, answer.message, client_order_id=client_order_id, requested_qty=qty)
        queue.popleft()
        self._stops_given[symbol] += 1
        self._stops[symbol] = OpenOrder(
            symbol=symbol,
            order_id=client_order_id,
            client_order_id=client_order_id,
            side=_closing(position_side),
            qty=qty,
            stop_price=stop_price,
            reduce_only=True,
        )
        return OrderResult.success(
            client_order_id=client_order_id,
            order_id=client_order_id,
            status="open",
            requested_qty=qty,
            filled_qty=0.0,
            avg_price=0.0,
            timestamp_ms=self.clock.now_ms(),
        )

    async def cancel_stop_loss(self, symbol: str) -> OrderResult:
        """Cancelled, as live (a cancel's answer is not recorded)."""
        self._stops.pop(symbol, None)
        return OrderResult.success(
            client_order_id="", order_id="", status="canceled", requested_qty=0.0, filled_qty=0.0, avg_price=0.0
        )

    async def close_position(self, symbol: str, *, client_order_id: str) -> OrderResult:
        """The next recorded close of `symbol` (an emergency exit, a flatten, a synthetic stop)."""
        self._settle(symbol)
        held = self._held.get(symbol)
        closes = self.answers.closes.get(symbol)
        if held is None or not closes:
            return self._depart(f"a close of {symbol}", client_order_id)
        closed = closes[0].event
        assert isinstance(closed, PositionClosed)
        fee = self._exit_fee(symbol, closed)
        self._reduce(symbol, closed.qty)
        return OrderResult.success(
            client_order_id=client_order_id,
            order_id=client_order_id,
            status="filled",
            requested_qty=closed.qty,
            filled_qty=closed.qty,
            avg_price=closed.exit_price,
            fee=fee,
            timestamp_ms=self.clock.now_ms(),
        )

    async def fetch_open_orders(self, symbol: str) -> list[OpenOrder]:
        """The stop resting for `symbol`, if any."""
        self._settle(symbol)
        stop = self._stops.get(symbol)
        return [stop] if stop is not None else []

    async def cancel_order(self, symbol: str, order: OpenOrder) -> OrderResult:
        """Cancelled, as live."""
        if self._stops.get(symbol) == order:
            del self._stops[symbol]
        return OrderResult.success(
            client_order_id=order.client_order_id,
            order_id=order.order_id,
            status="canceled",
            requested_qty=order.qty,
            filled_qty=0.0,
            avg_price=0.0,
        )

    def adopt_stop(self, symbol: str, order: OpenOrder | None) -> None:
        """Take `order` as the stop in force for `symbol`, or forget it."""
        if order is None:
            self._stops.pop(symbol, None)
        else:
            self._stops[symbol] = order

    async def fetch_position(self, symbol: str) -> Position | None:
        """The position the recorded answers (and the venue's own exits so far) left."""
        self._settle(symbol)
        held = self._held.get(symbol)
        if held is None:
            return None
        return Position(symbol=symbol, side=held.side, qty=held.qty, entry_price=held.entry_price)

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderResult:
        """A stop's recorded fill, an order's latest recorded state by now, else ORDER_NOT_FOUND."""
        self._settle(symbol)
        exit_ = self._stop_exits.get(client_order_id)
        if exit_ is not None:
            return self._stop_fill(client_order_id, *exit_)
        if any(stop.client_order_id == client_order_id for stop in self._stops.values()):
            return self._resting(client_order_id)
        recorded = self.answers.orders.get(client_order_id, [])
        latest = max(
            (i for i, r in enumerate(recorded) if r.segment <= self.segment and isinstance(r.event, OrderPlaced)),
            default=-1,
        )
        answered = self._answered.get(client_order_id)
        if latest >= 0 and (answered is None or answered[0] < latest):  # a fill the venue made later (a limit, a TP)
            placed = recorded[latest].event
            assert isinstance(placed, OrderPlaced)
            answered = self._answered[client_order_id] = (latest, self._result(placed))
            self._fill(placed)
        if answered is not None:
            return answered[1]
        return OrderResult.failure(
            ErrorKind.ORDER_NOT_FOUND, f"{client_order_id} not found", client_order_id=client_order_id
        )

    def _stop_fill(self, cid: str, closed: PositionClosed, fee: float) -> OrderResult:
        if closed.reason != "stop_loss":  # a take-profit or a hand close: the stop went unfilled
            return OrderResult.success(
                client_order_id=cid, order_id=cid, status="canceled", requested_qty=0.0, filled_qty=0.0, avg_price=0.0
            )
        return OrderResult.success(
            client_order_id=cid,
            order_id=cid,
            status="filled",
            requested_qty=closed.qty,
            filled_qty=closed.qty,
            avg_price=closed.exit_price,
            fee=fee,
        )

    def _resting(self, cid: str) -> OrderResult:
        return OrderResult.success(
            client_order_id=cid, order_id=cid, status="open", requested_qty=0.0, filled_qty=0.0, avg_price=0.0
        )

    async def fetch_stop(self, symbol: str, client_order_id: str) -> OrderResult:
        """As `fetch_order`: stops and orders share one book here."""
        return await self.fetch_order(symbol, client_order_id)

    async def fetch_funding(self, symbol: str, since_ms: int) -> float:
        """The funding the close being booked for `symbol` received live."""
        closed = self._last_close.get(symbol)
        return closed.funding if closed is not None else 0.0

    async def fetch_fill_fees(self, symbol: str, order_id: str) -> float | None:
        """The fees an entry was booked with live, where its close shows them (None: its reply's)."""
        return self.answers.fill_fees.get(order_id)

    async def fetch_ohlcv(
        self, symbol: str, interval: str, *, since_ms: int | None = None, limit: int = 500
    ) -> list[Bar]:
        """No history: a replay's candles are its recording's."""
        return []

    async def fetch_balance(self) -> Balance:
        """What live's balance led to, as far as the recording tells: the entry it sized went out, or none did.

        The balance itself is not recorded; the size live asked comes with the recorded fill whatever this says.
        An entry live never sent (too little left to size one) finds nothing here either.
        """
        signal = self._signal
        if signal is not None:
            entry = client_order_id(signal.strategy, signal.symbol, signal.candle_open_time_ms, "open")
            if entry not in self.answers.orders:
                return Balance(currency="", free=0.0, total=0.0)
        return Balance(currency="", free=self._balance, total=self._balance)

    async def server_time(self) -> int:
        """The replay's clock."""
        return self.clock.now_ms()

    async def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        held = {symbol: (h.side, h.qty) for symbol, h in self._held.items()}
        return (
            f"RecordedExchange(name={self.name!r}, segment={self.segment}, held={held}, departure={self.departure!r})"
        )
