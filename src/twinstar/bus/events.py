"""Every event that crosses the bus.

Events are frozen msgspec Structs tagged with a fixed string, so a recorded
stream decodes back to the exact types even after a class is renamed. New
fields go last and carry a default, so older recordings still decode.
"""

from __future__ import annotations

import typing
from typing import Final, Literal, TypeAlias

import msgspec

Side: TypeAlias = Literal["buy", "sell"]
PositionSide: TypeAlias = Literal["long", "short"]
#: How an entry goes out; a limit's `TimeInForce` says what becomes of what does not fill at once.
OrderType: TypeAlias = Literal["market", "limit"]
TimeInForce: TypeAlias = Literal["gtc", "ioc", "post_only"]


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Base of every event: `ts_ns` is the kernel clock's time of the fact."""

    ts_ns: int


# --- market -----------------------------------------------------------------


class CandleClosed(Event, frozen=True, kw_only=True, tag="candle_closed"):
    """A candle whose interval is over: its values will not change again.

    `late`: published well after its close (backfilled after a reconnect or a
    missed close); it updates indicators, and trades only where
    `feed.trade_late_candles` allows.
    """

    exchange: str
    symbol: str
    interval: str
    open_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    late: bool = False


class PriceMoved(Event, frozen=True, kw_only=True, tag="price_moved"):
    """The open candle reached a new low or high (venues whose stops the kernel keeps, from their stream).

    Published only on a new extreme, not per trade: a synthetic stop fires on
    it at once instead of at the candle's close.
    """

    exchange: str
    symbol: str
    interval: str
    open_time_ms: int
    low: float
    high: float
    price: float


class FeedConnected(Event, frozen=True, kw_only=True, tag="feed_connected"):
    """A candle feed (re)connected to its exchange stream."""

    exchange: str
    symbol: str
    interval: str


class FeedDisconnected(Event, frozen=True, kw_only=True, tag="feed_disconnected"):
    """A feed lost its stream; it tries again in `retry_in_s`, `attempt` counts tries.

    `interval="orders"` (symbol "*") is the account's private order stream.
    """

    exchange: str
    symbol: str
    interval: str
    reason: str
    attempt: int
    retry_in_s: float = 0.0


class FeedStopped(Event, frozen=True, kw_only=True, tag="feed_stopped"):
    """A candle feed ended for good (shutdown, or retries exhausted)."""

    exchange: str
    symbol: str
    interval: str
    reason: str


class FeedDegraded(Event, frozen=True, kw_only=True, tag="feed_degraded"):
    """A feed receives frames but nothing usable comes of them (every row or trade refused)."""

    exchange: str
    symbol: str
    interval: str
    reason: str


class FeedLagging(Event, frozen=True, kw_only=True, tag="feed_lagging"):
    """A trade-built feed trails the market by `lag_ms` (`behind`), or caught up again (`behind` False)."""

    exchange: str
    symbol: str
    interval: str
    lag_ms: int
    behind: bool = True


class FeedGapDetected(Event, frozen=True, kw_only=True, tag="feed_gap_detected"):
    """Candles between `from_ms` and `to_ms` (open times) are missing."""

    exchange: str
    symbol: str
    interval: str
    from_ms: int
    to_ms: int


class FeedBackfilled(Event, frozen=True, kw_only=True, tag="feed_backfilled"):
    """A detected gap was filled with `count` candles fetched over REST."""

    exchange: str
    symbol: str
    interval: str
    count: int


class CandleRejected(Event, frozen=True, kw_only=True, tag="candle_rejected"):
    """Bad market input that was refused (NaN, duplicate, out of order)."""

    exchange: str
    symbol: str
    interval: str
    open_time_ms: int
    reason: str


# --- strategy ---------------------------------------------------------------


class SignalFired(Event, frozen=True, kw_only=True, tag="signal_fired"):
    """A strategy wants a position on `side`; `stop_price` 0 means no stop."""

    strategy: str
    exchange: str
    symbol: str
    side: Side
    price: float
    stop_price: float
    reason: str
    candle_open_time_ms: int
    #: How the entry goes out (see `twinstar.orders`): at market, or a limit at `limit_price`.
    order_type: OrderType = "market"
    limit_price: float = 0.0
    time_in_force: TimeInForce = "gtc"
    #: A take-profit for the entry (0: none); with `stop_price` the exits form a bracket (one cancels the other).
    take_profit_price: float = 0.0


# --- execution --------------------------------------------------------------

OrderIntent: TypeAlias = Literal["open", "close", "emergency_exit", "stop_loss", "take_profit"]


class OrderPlaced(Event, frozen=True, kw_only=True, tag="order_placed"):
    """An order reached the exchange; `filled_qty` is the truth, not `requested_qty`."""

    client_order_id: str
    order_id: str
    exchange: str
    symbol: str
    side: Side
    intent: OrderIntent
    requested_qty: float
    filled_qty: float
    avg_price: float
    fee: float
    status: str
    attempts: int
    partial: bool
    #: An entry's stop-loss the venue took on the order itself (0: none): in force from the fill on.
    stop_price: float = 0.0
    stop_cid: str = ""  # the id that attached stop is listed under on the venue
    #: An entry's take-profit the venue took on the order itself (0: none), one-cancels-the-other with its stop.
    take_profit_price: float = 0.0
    take_profit_cid: str = ""  # the id that attached take-profit is listed under on the venue
    #: Simulated slippage and spread paid on the fill, in the quote currency (0 live: it is in `avg_price`).
    slippage: float = 0.0


class OrderFailed(Event, frozen=True, kw_only=True, tag="order_failed"):
    """An order could not be placed; `error_kind` says whether retrying could help."""

    client_order_id: str
    exchange: str
    symbol: str
    side: Side
    intent: OrderIntent
    error_kind: str
    message: str
    attempts: int


# --- position ---------------------------------------------------------------


class PositionOpened(Event, frozen=True, kw_only=True, tag="position_opened"):
    """A position exists on the exchange with the filled quantity."""

    exchange: str
    symbol: str
    side: PositionSide
    qty: float
    entry_price: float
    fee: float


class PositionClosed(Event, frozen=True, kw_only=True, tag="position_closed"):
    """A position was closed; `pnl` is realised after all fees of the trade."""

    exchange: str
    symbol: str
    side: PositionSide
    qty: float
    entry_price: float
    exit_price: float
    pnl: float
    fees: float
    reason: str
    #: Funding of a perpetual received over the position's life (negative: paid); in `pnl` already.
    funding: float = 0.0
    #: Simulated slippage and spread of the entry's share and the exit, in the quote currency; in `pnl` already.
    slippage: float = 0.0


class SLUpdated(Event, frozen=True, kw_only=True, tag="sl_updated"):
    """The exchange-side stop-loss is now at `stop_price` for `qty`."""

    exchange: str
    symbol: str
    stop_price: float
    qty: float


class SLUpdateFailed(Event, frozen=True, kw_only=True, tag="sl_update_failed"):
    """A stop-loss move failed after retries; the previous stop stays in force."""

    exchange: str
    symbol: str
    stop_price: float
    attempts: int
    error_kind: str
    message: str


class EmergencyExit(Event, frozen=True, kw_only=True, tag="emergency_exit"):
    """No stop-loss could be placed, so the position is closed at market."""

    exchange: str
    symbol: str
    qty: float
    reason: str


class PositionReconciled(Event, frozen=True, kw_only=True, tag="position_reconciled"):
    """The kernel's view was compared with the exchange and something was found or repaired.

    `before`/`after` are the position quantity in the kernel's view and on the
    exchange; `action` says what was found or done: ``resized`` (quantity
    drift), ``adopted`` (a position the kernel did not know), ``stop_adopted``,
    ``protected`` (a stop placed for an unprotected position), ``closed``
    (closed because unprotected and `on_unprotected = "close"`),
    ``orphan_cancelled`` (a stop of ours with nothing to protect),
    ``stop_restored`` (our stop was missing), ``pending_resolved`` (an order
    left unresolved by a crash, found by client id, never resent),
    ``closed_outside`` (flat on the exchange: stopped out or closed by hand),
    ``unreadable`` (the exchange's answer could not be understood: nothing
    was changed, the position stays protected); at start, ``resting_found``
    and ``take_profit_found`` (a limit entry or take-profit of ours resting,
    `detail` its client id), then ``resting_cancelled`` or ``resting_adopted``.
    """

    exchange: str
    symbol: str
    before: float
    after: float
    action: str = "resized"
    side: str = ""
    stop_price: float = 0.0
    detail: str = ""
    #: ``resting_found``: the take-profit the entry's signal asked for, from the journal (0: none).
    take_profit_price: float = 0.0


class OrderUpdated(Event, frozen=True, kw_only=True, tag="order_updated"):
    """The venue's private stream reported an order's state (fills, triggered stops, cancels)."""

    exchange: str
    symbol: str
    client_order_id: str
    order_id: str
    status: str
    side: str
    filled_qty: float
    avg_price: float
    reduce_only: bool
    is_stop: bool


class ReconciliationCompleted(Event, frozen=True, kw_only=True, tag="reconciliation_completed"):
    """One pass comparing the kernel with the exchange ended (`trigger`: start, timer, reconnect, stream)."""

    exchange: str
    trigger: str
    symbols: int
    repairs: int
    failures: int


# --- control ----------------------------------------------------------------
# Commands from the operator (the control API) and the kill switch enter the kernel from
# outside, so they are input events: a replay feeds them back and reproduces what they did.


class EntriesPaused(Event, frozen=True, kw_only=True, tag="entries_paused"):
    """New entries are paused; closes, stops and flattening go on."""

    reason: str
    source: str = "api"


class EntriesResumed(Event, frozen=True, kw_only=True, tag="entries_resumed"):
    """New entries may go again: clears a pause and every breached risk limit."""

    source: str = "api"


class FlattenRequested(Event, frozen=True, kw_only=True, tag="flatten_requested"):
    """Close positions at market now; an empty `exchange` or `symbol` means every one."""

    reason: str
    exchange: str = ""
    symbol: str = ""
    source: str = "api"


class RiskLimitBreached(Event, frozen=True, kw_only=True, tag="risk_limit_breached"):
    """A `[risk]` limit was exceeded (`value` over `threshold`): new entries are blocked until resumed.

    `limit` is one of notional_per_symbol, notional_total, daily_loss,
    orders_per_minute, sl_update_failures.
    """

    limit: str
    value: float
    threshold: float
    exchange: str = ""
    symbol: str = ""


# --- system -----------------------------------------------------------------


class ClockSynced(Event, frozen=True, kw_only=True, tag="clock_synced"):
    """The exchange clock offset was measured (offset = server - local midpoint)."""

    exchange: str
    offset_ms: float
    rtt_ms: float


class HandlerFailed(Event, frozen=True, kw_only=True, tag="handler_failed"):
    """A handler raised; it keeps receiving events."""

    handler: str
    event_type: str
    error: str


class KernelStarted(Event, frozen=True, kw_only=True, tag="kernel_started"):
    """The kernel is up: every handler is subscribed and every task started."""


class KernelStopping(Event, frozen=True, kw_only=True, tag="kernel_stopping"):
    """The kernel begins shutdown: intake stops, mailboxes drain."""

    reason: str


AnyEvent: TypeAlias = (
    CandleClosed
    | PriceMoved
    | FeedConnected
    | FeedDisconnected
    | FeedStopped
    | FeedDegraded
    | FeedLagging
    | FeedGapDetected
    | FeedBackfilled
    | CandleRejected
    | SignalFired
    | OrderPlaced
    | OrderFailed
    | PositionOpened
    | PositionClosed
    | SLUpdated
    | SLUpdateFailed
    | EmergencyExit
    | PositionReconciled
    | OrderUpdated
    | ReconciliationCompleted
    | ClockSynced
    | HandlerFailed
    | KernelStarted
    | KernelStopping
    | EntriesPaused
    | EntriesResumed
    | FlattenRequested
    | RiskLimitBreached
)

EVENT_TYPES: Final[tuple[type[Event], ...]] = typing.get_args(AnyEvent)

# Events that enter the kernel from outside (market data, operator commands). Replay feeds these
# back in; everything else in a stream is a decision the kernel makes again.
INPUT_EVENT_TYPES: Final[tuple[type[Event], ...]] = (
    CandleClosed,
    PriceMoved,
    FeedConnected,
    FeedDisconnected,
    FeedStopped,
    FeedDegraded,
    FeedLagging,
    FeedGapDetected,
    FeedBackfilled,
    EntriesPaused,
    EntriesResumed,
    FlattenRequested,
    RiskLimitBreached,
)

_encoder: Final = msgspec.msgpack.Encoder()
_decoder: Final[msgspec.msgpack.Decoder[AnyEvent]] = msgspec.msgpack.Decoder(AnyEvent)


def encode(event: Event) -> bytes:
    """Encode one event to msgpack (tagged, so `decode` restores its type)."""
    return _encoder.encode(event)


def decode(data: bytes) -> AnyEvent:
    """Decode one event encoded by `encode`; raise msgspec.DecodeError if bad."""
    return _decoder.decode(data)
