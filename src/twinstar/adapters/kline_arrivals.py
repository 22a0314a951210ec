"""Kline frames pushed to the feed that wants them, instead of a `watch_ohlcv` call per frame.

ccxt.pro resolves one future per `watch_ohlcv` call: for every frame the
feed must call again, and each call rebuilds the subscription's hashes and
futures. With tens of symbols closing at once that per-frame cost is what the
last symbol's order waits behind. `tap` wraps the client's `handle_ohlcv`
once: ccxt still parses every frame into its own cache (`ccxt.ohlcvs`), and
the feed subscribed to that (venue market id, venue interval) is told a frame
arrived; the feed reads the new rows from that cache. A socket that closes or
fails is told to the feeds it carried, so they reconnect as a failed watch
would have made them. Venues without a frame key (`KEYS`) keep calling
`watch_ohlcv`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Final

Key = tuple[str, str]  # (venue market id, venue interval code)


def binance_key(message: Any) -> Key:
    """A Binance kline frame's (market id, interval): `k.s`, `k.i`."""
    k = message["k"]
    return str(k.get("s") or message.get("s")), str(k["i"])


def bybit_key(message: Any) -> Key:
    """A Bybit kline frame's (market id, interval), from its topic `kline.<interval>.<market id>`."""
    _, interval, market_id = str(message["topic"]).split(".", 2)
    return market_id, interval


def okx_key(message: Any) -> Key:
    """An OKX candle frame's (market id, interval): `arg.instId`, the channel `candle<interval>`."""
    arg = message["arg"]
    return str(arg["instId"]), str(arg["channel"])[len("candle") :]


KEYS: Final[dict[str, Callable[[Any], Key]]] = {
    "binanceusdm": binance_key,
    "binance": binance_key,
    "bybit": bybit_key,
    "okx": okx_key,
}


class KlineListener:
    """What a subscribed feed is told: a frame for it arrived, or a socket closed."""

    def arrived(self) -> None:
        """A frame of this feed's (market id, interval) is in ccxt's cache."""

    def closed(self, client: Any, error: Any) -> None:
        """The ccxt.pro socket `client` closed or failed (`error`, if any)."""


class KlineArrivals:
    """The listeners of one ccxt.pro exchange, by frame key."""

    def __init__(self) -> None:
        self.listeners: dict[Key, KlineListener] = {}

    def listen(self, key: Key, listener: KlineListener) -> None:
        """Tell `listener` of every frame with `key` (one listener per key: one feed per series)."""
        self.listeners[key] = listener

    def forget(self, key: Key, listener: KlineListener) -> None:
        """Stop telling `listener` (if it is still the one listening)."""
        if self.listeners.get(key) is listener:
            del self.listeners[key]


def tap(exchange: Any) -> KlineArrivals | None:
    """Tell listeners of `exchange`'s (a ccxt.pro exchange) kline frames; None where frames have no known key.

    Must run before the exchange opens a socket: ccxt.pro binds the close and
    error callbacks when it creates a client.
    """
    existing: KlineArrivals | None = getattr(exchange, "_twinstar_kline_arrivals", None)
    if existing is not None:
        return existing
    key_of = KEYS.get(str(getattr(exchange, "id", "")))
    handle = getattr(exchange, "handle_ohlcv", None)
    if key_of is None or handle is None:
        return None
    arrivals = KlineArrivals()
    listeners = arrivals.listeners

    def handle_ohlcv(ws: Any, message: Any) -> Any:
        result = handle(ws, message)
        with contextlib.suppress(KeyError, TypeError, ValueError, AttributeError):  # not a kline: nobody's
            listener = listeners.get(key_of(message))
            if listener is not None:
                listener.arrived()
        return result

    on_close, on_error = exchange.on_close, exchange.on_error

    def closed(client: Any, error: Any) -> None:
        on_close(client, error)
        for listener in list(listeners.values()):
            listener.closed(client, error)

    def failed(client: Any, error: Any) -> None:
        on_error(client, error)
        for listener in list(listeners.values()):
            listener.closed(client, error)

    exchange.handle_ohlcv = handle_ohlcv
    exchange.on_close, exchange.on_error = closed, failed
    exchange._twinstar_kline_arrivals = arrivals
    return arrivals
