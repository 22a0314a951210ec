"""The contract between handlers and exchanges.

Handlers only ever see `Exchange`, `OrderResult` and `ErrorKind`; an adapter
translates one venue (or the simulator) into them. Adapters never raise for
exchange errors: every order call returns an `OrderResult`, whose `error_kind`
tells the caller whether a retry can help and whether the order might exist.
"""

from __future__ import annotations

import enum
from typing import Any, Literal, Protocol, TypeAlias, runtime_checkable

import msgspec

from twinstar.bus.events import PositionSide, Side, TimeInForce

OrderStatus: TypeAlias = Literal["filled", "partial", "open", "canceled", "rejected", "unknown"]


class ErrorKind(enum.Enum):
    """Why an exchange call failed, classified once, in the adapter."""

    #: (value, retryable, ambiguous): ambiguous means the order may exist anyway.
    RATE_LIMIT = ("rate_limit", True, False)
    NETWORK = ("network", True, True)
    TIMEOUT = ("timeout", True, True)
    EXCHANGE_UNAVAILABLE = ("exchange_unavailable", True, True)
    INSUFFICIENT_FUNDS = ("insufficient_funds", False, False)
    INVALID_ORDER = ("invalid_order", False, False)
    ORDER_NOT_FOUND = ("order_not_found", False, False)
    AUTH = ("auth", False, False)
    CLOCK_SKEW = ("clock_skew", True, False)
    NOT_SUPPORTED = ("not_supported", False, False)
    UNKNOWN = ("unknown", False, True)

    def __init__(self, label: str, retryable: bool, ambiguous: bool) -> None:
        self.label = label
        self.retryable = retryable
        self.ambiguous = ambiguous

    def __str__(self) -> str:
        return self.label


class OrderResult(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of one order call; truthy exactly when `ok`."""

    ok: bool
    client_order_id: str
    order_id: str = ""
    status: OrderStatus = "unknown"
    requested_qty: float = 0.0
    filled_qty: float = 0.0
    avg_price: float = 0.0
    fee: float = 0.0
    error_kind: ErrorKind | None = None
    message: str = ""
    timestamp_ms: int = 0
    #: An entry's stop-loss the venue took on the order itself (0: none); in force from the fill on.
    stop_price: float = 0.0
    #: The id that attached stop is listed under (`fetch_open_orders`, `fetch_order`).
    stop_client_order_id: str = ""
    #: An entry's take-profit the venue took on the order itself (0: none), one-cancels-the-other with its stop.
    take_profit_price: float = 0.0
    #: The id that attached take-profit is listed under (`fetch_order`); "" where the venue gives it none.
    take_profit_client_order_id: str = ""
    #: What the fill cost beyond its fee against the price it was decided at (the simulator's slippage and spread).
    slippage: float = 0.0

    def __bool__(self) -> bool:
        return self.ok

    @classmethod
    def success(
        cls,
        *,
        client_order_id: str,
        order_id: str,
        status: OrderStatus,
        requested_qty: float,
        filled_qty: float,
        avg_price: float,
        fee: float = 0.0,
        timestamp_ms: int = 0,
        stop_price: float = 0.0,
        stop_client_order_id: str = "",
    ) -> OrderResult:
        """Build the result of an order the exchange accepted."""
        return cls(
            ok=True,
            client_order_id=client_order_id,
            order_id=order_id,
            status=status,
            requested_qty=requested_qty,
            filled_qty=filled_qty,
            avg_price=avg_price,
            fee=fee,
            timestamp_ms=timestamp_ms,
            stop_price=stop_price,
            stop_client_order_id=stop_client_order_id,
        )

    @classmethod
    def failure(
        cls,
        kind: ErrorKind,
        message: str,
        *,
        client_order_id: str,
        requested_qty: float = 0.0,
        timestamp_ms: int = 0,
    ) -> OrderResult:
        """Build the result of a call that failed with `kind`."""
        return cls(
            ok=False,
            client_order_id=client_order_id,
            status="rejected" if not kind.ambiguous else "unknown",
            requested_qty=requested_qty,
            error_kind=kind,
            message=message,
            timestamp_ms=timestamp_ms,
        )


class Bar(msgspec.Struct, frozen=True, array_like=True):
    """One OHLCV candle as fetched over REST (`open_time_ms` is its start)."""

    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


def bar_from_row(row: Any) -> Bar | None:
    """A `[open_ms, open, high, low, close, volume]` row from the wire as a Bar; None when it is not one."""
    try:
        open_ms = row[0]
        if isinstance(open_ms, bool) or not isinstance(open_ms, int | float) or not float(open_ms).is_integer():
            return None
        return Bar(int(open_ms), float(row[1]), float(row[2]), float(row[3]), float(row[4]), float(row[5] or 0))
    except (TypeError, ValueError, IndexError, KeyError, OverflowError):
        return None


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """An open position as the exchange reports it."""

    symbol: str
    side: PositionSide
    qty: float
    entry_price: float


class OpenOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An order resting on the venue: a plain order, a stop (`stop_price` > 0) or a take-profit.

    A take-profit is a trigger order too (`stop_price` is its trigger), told
    apart by `take_profit`; `price` is a limit order's price (0: at market).

    `position_stop` marks the venue's own stop-loss of the position (Bybit's
    position TP/SL): at most one per position, sized with it and removed with
    it by the venue, so it is the kernel's to manage whatever its client id.
    """

    symbol: str
    order_id: str
    client_order_id: str
    side: Side
    qty: float  # base units, as the kernel counts
    stop_price: float = 0.0
    reduce_only: bool = False
    position_stop: bool = False
    take_profit: bool = False
    price: float = 0.0

    @property
    def is_trigger(self) -> bool:
        """Whether this order waits for a trigger price (a stop or a take-profit)."""
        return self.stop_price > 0

    @property
    def is_stop(self) -> bool:
        """Whether this is a stop-loss (a trigger order that is not a take-profit)."""
        return self.stop_price > 0 and not self.take_profit


class Balance(msgspec.Struct, frozen=True, kw_only=True):
    """Free and total amount of the quote (margin) currency."""

    currency: str
    free: float
    total: float


class ExchangeError(Exception):
    """A non-order call (fetch_*, server_time) failed; `kind` classifies it."""

    def __init__(self, kind: ErrorKind, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


@runtime_checkable
class Exchange(Protocol):
    """What every exchange adapter (and the simulator) provides.

    Order calls return `OrderResult` and never raise for exchange errors.
    Fetch calls raise `ExchangeError` with a classified `kind`.
    """

    @property
    def name(self) -> str:
        """The venue as events name it: the exchange id (``"binanceusdm"``) or the config's `name`."""
        ...

    @property
    def supports_native_stop(self) -> bool:
        """Whether stops rest on the exchange; if not, the kernel keeps a synthetic stop."""
        ...

    @property
    def request_expiry_ms(self) -> int | None:
        """How long after it was signed a request can still execute (its receive window).

        None when the venue gives no such guarantee: an order whose outcome is
        unknown is then never sent again, only looked up.
        """
        ...

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
        """Send a market order tagged with `client_order_id`.

        With `stop_price`, an entry carries its stop-loss where the venue takes
        one on the order (`stop_client_order_id` names it where the venue keeps
        a client id for it): the result's `stop_price` then says it is in force
        from the fill on, for what filled. A venue that refuses the stop refuses
        the whole order, so an entry never goes out unprotected. Where no stop
        can ride on the order, it is ignored (result `stop_price` 0) and the
        caller places one on the fill. `take_profit_price` rides along with the
        stop the same way (result `take_profit_price`), the venue cancelling
        one exit when the other fills; elsewhere the caller places it on the fill.
        """
        ...

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
        """Send a limit order at `price`: what is marketable fills at once, the rest rests.

        `gtc` rests until filled or cancelled (result status "open" or
        "partial"); `ioc` cancels what did not fill at once; `post_only` is
        refused (INVALID_ORDER, nothing filled) when it would take liquidity.
        A price off the market's tick or a size under its minimum is refused
        before any request. Exits ride on the order as for `place_market_order`.
        """
        ...

    async def place_take_profit(
        self, symbol: str, position_side: PositionSide, qty: float, price: float, *, client_order_id: str
    ) -> OrderResult:
        """Rest a reduce-only take-profit for the position: at market once the price reaches `price`."""
        ...

    async def update_stop_loss(
        self,
        symbol: str,
        position_side: PositionSide,
        qty: float,
        stop_price: float,
        *,
        client_order_id: str,
    ) -> OrderResult:
        """Move the position's stop, or place one; never a moment without one, never two.

        Where the venue amends a stop in place, it is amended (the result keeps
        the stop's own client id); otherwise the new stop goes in before the
        old one is cancelled, so a failure at any point leaves at least the
        previous stop in force.
        """
        ...

    async def cancel_stop_loss(self, symbol: str) -> OrderResult:
        """Cancel every stop-loss order resting for `symbol`."""
        ...

    async def close_position(self, symbol: str, *, client_order_id: str) -> OrderResult:
        """Close the whole position at market (reduce-only) and cancel its stops."""
        ...

    async def fetch_open_orders(self, symbol: str) -> list[OpenOrder]:
        """Return every order resting for `symbol`, plain and stop orders alike."""
        ...

    async def cancel_order(self, symbol: str, order: OpenOrder) -> OrderResult:
        """Cancel one resting order (ORDER_NOT_FOUND when it is no longer open)."""
        ...

    def adopt_stop(self, symbol: str, order: OpenOrder | None) -> None:
        """Take `order` as the stop in force for `symbol` (found by reconciliation or on an entry), or forget it."""
        ...

    async def fetch_position(self, symbol: str) -> Position | None:
        """Return the open position for `symbol`, or None when flat."""
        ...

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderResult:
        """Look an order up by client id; ORDER_NOT_FOUND when it never arrived."""
        ...

    async def fetch_stop(self, symbol: str, client_order_id: str) -> OrderResult:
        """Look a stop up by client id (ORDER_NOT_FOUND when it never arrived), wherever the venue keeps stops."""
        ...

    async def fetch_ohlcv(
        self, symbol: str, interval: str, *, since_ms: int | None = None, limit: int = 500
    ) -> list[Bar]:
        """Return closed and current candles, oldest first."""
        ...

    async def fetch_balance(self) -> Balance:
        """Return the balance of the margin (quote) currency."""
        ...

    async def server_time(self) -> int:
        """Return the exchange's clock in milliseconds."""
        ...

    async def close(self) -> None:
        """Release sessions and sockets; leave resting stop-losses in place."""
        ...
