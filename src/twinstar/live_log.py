"""One human-readable log line per thing a live session does.

`LiveLog` is a component that subscribes to every event and writes one line
on the ``twinstar.live`` logger for each order, fill, stop placed or moved,
reconciliation, feed (re)connect or outage, clock sync and handler failure.
Candles and signals are DEBUG (shown with ``-v``); trouble is WARNING or
ERROR; an event type this module does not know yet still gets a generic line,
so new events are never silent. The lines go wherever the host's logging
sends them; the CLI prints them on stderr.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Final

import msgspec

from twinstar.bus.bus import Bus
from twinstar.bus.events import (
    CandleClosed,
    CandleRejected,
    ClockSynced,
    EmergencyExit,
    Event,
    FeedBackfilled,
    FeedConnected,
    FeedDegraded,
    FeedDisconnected,
    FeedGapDetected,
    FeedStopped,
    HandlerFailed,
    KernelStarted,
    KernelStopping,
    OrderFailed,
    OrderPlaced,
    OrderUpdated,
    PositionClosed,
    PositionOpened,
    PositionReconciled,
    PriceMoved,
    ReconciliationCompleted,
    SignalFired,
    SLUpdated,
    SLUpdateFailed,
)

log: Final = logging.getLogger("twinstar.live")

# Words in a feed's failure that mean the venue could not be reached at all (ccxt's network errors).
_UNREACHABLE: Final = ("ExchangeNotAvailable", "RequestTimeout", "NetworkError", "DDoSProtection", "connect")


def num(value: float) -> str:
    """A price or quantity as a person reads it: thousands separated, no float noise (30,012.5; 0.001)."""
    return format(value, ",.10g")


def _feed(event: FeedConnected | FeedDisconnected | FeedStopped) -> str:
    """What a feed event is about: a symbol's candle feed, or the account's order stream."""
    return "order stream" if event.interval == "orders" else f"{event.symbol} {event.interval} feed"


def _feed_line(event: FeedConnected | FeedStopped, what: str) -> str:
    if event.interval == "orders":
        return f"{event.exchange}  order stream {what}"
    return f"{event.exchange} {event.symbol}  {event.interval} feed {what}"


def _clock(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _times(n: int) -> str:
    return f"{n} attempt{'s' if n != 1 else ''}"


def _generic(event: Event) -> str:
    fields = msgspec.structs.asdict(event)
    fields.pop("ts_ns", None)
    where = " ".join(str(value) for key in ("exchange", "symbol") if key in fields and (value := fields.pop(key)))
    body = ", ".join(f"{key}={num(v) if isinstance(v, float) else v}" for key, v in fields.items())
    return f"{where}  {type(event).__name__}: {body}" if where else f"{type(event).__name__}: {body}"


def _context(event: Event) -> dict[str, str]:
    """What a structured log line carries besides its text: venue, symbol, event type, order id."""
    found = {"event": str(type(event).__struct_config__.tag)}
    for field, key in (("exchange", "venue"), ("symbol", "symbol"), ("client_order_id", "event_id")):
        value = getattr(event, field, "")
        if value:
            found[key] = value
    return found


class LiveLog:
    """Component: logs every event of a live session as one line on ``twinstar.live``."""

    def __init__(self) -> None:
        self._stops: dict[tuple[str, str], float] = {}  # (exchange, symbol) -> the stop price last logged
        self.lines = 0

    def attach(self, bus: Bus) -> None:
        """Subscribe to every event: types added later get the generic line instead of none."""
        bus.subscribe(Event, self.handle, name="LiveLog", eager=False)

    def handle(self, event: Event) -> None:
        """Log `event` as one line, at the level it deserves."""
        if isinstance(event, CandleClosed | SignalFired | PriceMoved) and not log.isEnabledFor(logging.DEBUG):
            return  # the busiest events, and DEBUG lines: not even formatted unless shown
        line = self.describe(event)
        if line is not None and log.isEnabledFor(line[0]):
            log.log(line[0], "%s", line[1], extra=_context(event))
            self.lines += 1

    def describe(self, event: Event) -> tuple[int, str] | None:
        """The (level, text) of `event`'s line, or None for events not worth a line."""
        info, warn = logging.INFO, logging.WARNING
        match event:
            case CandleClosed():
                return logging.DEBUG, (
                    f"{event.exchange} {event.symbol}  {event.interval} candle {_clock(event.open_time_ms)} "
                    f"O {num(event.open)} H {num(event.high)} L {num(event.low)} C {num(event.close)} "
                    f"V {num(event.volume)}{' (late)' if event.late else ''}"
                )
            case PriceMoved():
                return logging.DEBUG, (
                    f"{event.exchange} {event.symbol}  {event.interval} candle {_clock(event.open_time_ms)} "
                    f"reached L {num(event.low)} H {num(event.high)}"
                )
            case FeedDegraded():
                return warn, f"{event.exchange} {event.symbol}  {event.interval} feed degraded: {event.reason}"
            case SignalFired():
                stop = f", stop {num(event.stop_price)}" if event.stop_price else ""
                return logging.DEBUG, (
                    f"{event.exchange} {event.symbol}  signal {event.side.upper()} @ {num(event.price)}{stop} "
                    f"({event.strategy}: {event.reason})"
                )
            case OrderPlaced():
                qty = num(event.filled_qty)
                if event.filled_qty != event.requested_qty:
                    qty = f"{qty} of {num(event.requested_qty)}"
                price = f" @ {num(event.avg_price)}" if event.avg_price else ""
                retried = f", {_times(event.attempts)}" if event.attempts > 1 else ""
                return warn if event.partial else info, (
                    f"{event.exchange} {event.symbol}  {event.side.upper()} {qty} {event.status}{price} "
                    f"({event.intent}, cid {event.client_order_id}{retried})"
                )
            case OrderFailed():
                return warn, (
                    f"{event.exchange} {event.symbol}  {event.side.upper()} order failed "
                    f"({event.intent}, {event.error_kind}, {_times(event.attempts)}, cid {event.client_order_id}): "
                    f"{event.message}"
                )
            case OrderUpdated():
                # The venue's own stream: a stop that fired or was cancelled is news; our own fills are
                # already a line from OrderPlaced.
                level = info if event.is_stop else logging.DEBUG
                filled = f" {num(event.filled_qty)} @ {num(event.avg_price)}" if event.filled_qty else ""
                return level, (
                    f"{event.exchange} {event.symbol}  {'stop' if event.is_stop else 'order'} "
                    f"{event.side.upper()} {event.status}{filled} (venue update, cid {event.client_order_id})"
                )
            case PositionOpened():
                return info, (
                    f"{event.exchange} {event.symbol}  {event.side.upper()} {num(event.qty)} opened "
                    f"@ {num(event.entry_price)} (fee {num(event.fee)})"
                )
            case PositionClosed():
                self._stops.pop((event.exchange, event.symbol), None)
                return info, (
                    f"{event.exchange} {event.symbol}  {event.side.upper()} {num(event.qty)} closed "
                    f"@ {num(event.exit_price)} (entry {num(event.entry_price)}, pnl {event.pnl:+,.2f}, "
                    f"fees {num(event.fees)}, {event.reason})"
                )
            case SLUpdated():
                key = (event.exchange, event.symbol)
                previous = self._stops.get(key)
                self._stops[key] = event.stop_price
                what = "placed at" if previous is None else f"moved {num(previous)} ->"
                return info, (
                    f"{event.exchange} {event.symbol}  stop {what} {num(event.stop_price)} for {num(event.qty)}"
                )
            case SLUpdateFailed():
                return warn, (
                    f"{event.exchange} {event.symbol}  stop to {num(event.stop_price)} failed after "
                    f"{_times(event.attempts)} ({event.error_kind}): {event.message}; the previous stop stays"
                )
            case EmergencyExit():
                return logging.ERROR, (
                    f"{event.exchange} {event.symbol}  EMERGENCY EXIT: closing {num(event.qty)} at market: "
                    f"{event.reason}"
                )
            case PositionReconciled():
                side = f" {event.side}" if event.side else ""
                stop = f", stop {num(event.stop_price)}" if event.stop_price else ""
                detail = f": {event.detail}" if event.detail else ""
                return warn if event.action == "unreadable" else info, (
                    f"{event.exchange} {event.symbol}  reconciled: {event.action}{side} "
                    f"{num(event.before)} -> {num(event.after)}{stop}{detail}"
                )
            case ReconciliationCompleted():
                parts = [f"{event.repairs} repaired"] if event.repairs else []
                parts += [f"{event.failures} unreadable"] if event.failures else []
                outcome = ", ".join(parts) or "in sync"
                return warn if event.failures else info, (
                    f"{event.exchange}  reconciliation ({event.trigger}): {event.symbols} symbol"
                    f"{'s' if event.symbols != 1 else ''}, {outcome}"
                )
            case FeedConnected():
                return info, _feed_line(event, "connected")
            case FeedDisconnected():
                down = any(word in event.reason for word in _UNREACHABLE)
                what = "unreachable" if down else "feed down"
                when = f" in {event.retry_in_s:.1f}s" if event.retry_in_s else ""
                return warn, (
                    f"{event.exchange} {what} ({_feed(event)}): {event.reason}; "
                    f"retrying{when} (attempt {event.attempt})"
                )
            case FeedStopped():
                return info if event.reason == "shutdown" else warn, _feed_line(event, f"stopped: {event.reason}")
            case FeedGapDetected():
                return info, (
                    f"{event.exchange} {event.symbol}  {event.interval} candles missing "
                    f"{_clock(event.from_ms)} .. {_clock(event.to_ms)}; backfilling"
                )
            case FeedBackfilled():
                return info, f"{event.exchange} {event.symbol}  {event.interval} backfilled {event.count} candles"
            case CandleRejected():
                return warn, (
                    f"{event.exchange} {event.symbol}  {event.interval} candle {_clock(event.open_time_ms)} "
                    f"rejected: {event.reason}"
                )
            case ClockSynced():
                return (
                    info,
                    f"{event.exchange}  clock offset {event.offset_ms:+,.1f} ms (round trip {event.rtt_ms:,.1f} ms)",
                )
            case HandlerFailed():
                return logging.ERROR, f"handler {event.handler} failed on {event.event_type}: {event.error}"
            case KernelStarted():
                return logging.DEBUG, "kernel started"
            case KernelStopping():
                return info, f"stopping ({event.reason}); stop-losses stay on the exchange"
            case _:
                return info, _generic(event)

    def __repr__(self) -> str:
        return f"LiveLog(lines={self.lines}, stops={self._stops})"
