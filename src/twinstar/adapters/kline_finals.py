"""Which stream candles the venue itself marked final: Binance `k.x`, Bybit `confirm`, OKX's ninth field.

ccxt.pro drops that flag when it parses a kline frame, so a candle whose
final update was lost (frames lost without a disconnect) would look closed
with an intermediate close and volume. `track` wraps the client's
`handle_ohlcv` to note every final it sees; the stream feed publishes a
candle whose final was seen at once and confirms any other over REST first.
Venues without such a flag get every candle confirmed over REST.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Final

Key = tuple[str, str, int]  # (venue market id, venue interval code, open time ms)
KEPT: Final = 20_000  # finals remembered per client: hours of every symbol's candles


def _binance(message: Any) -> list[Key]:
    k = message.get("k") if isinstance(message, dict) else None
    if isinstance(k, dict) and k.get("x") is True:
        return [(str(k.get("s") or message.get("s")), str(k.get("i")), int(k["t"]))]
    return []


def _bybit(message: Any) -> list[Key]:
    topic = message.get("topic") if isinstance(message, dict) else None
    if not isinstance(topic, str) or not topic.startswith("kline."):
        return []
    _, interval, market_id = topic.split(".", 2)
    rows = message.get("data") or []
    return [(market_id, interval, int(r["start"])) for r in rows if isinstance(r, dict) and r.get("confirm") is True]


def _okx(message: Any) -> list[Key]:
    arg = message.get("arg") if isinstance(message, dict) else None
    if not isinstance(arg, dict) or not str(arg.get("channel", "")).startswith("candle"):
        return []
    interval, market_id = str(arg["channel"])[len("candle") :], str(arg.get("instId"))
    rows = message.get("data") or []
    return [(market_id, interval, int(r[0])) for r in rows if isinstance(r, list) and len(r) > 8 and r[8] == "1"]


EXTRACTORS: Final[dict[str, Callable[[Any], list[Key]]]] = {
    "binanceusdm": _binance,
    "binance": _binance,
    "bybit": _bybit,
    "okx": _okx,
}


class KlineFinals:
    """The finals one ccxt.pro client has seen (bounded, oldest forgotten first)."""

    def __init__(self) -> None:
        self._seen: dict[Key, None] = {}

    def record(self, keys: list[Key]) -> None:
        """Note these candles as final."""
        for key in keys:
            self._seen[key] = None
        while len(self._seen) > KEPT:
            del self._seen[next(iter(self._seen))]

    def seen(self, market_id: str, interval: str, open_ms: int) -> bool:
        """Whether the venue marked this candle final on the stream."""
        return (market_id, interval, open_ms) in self._seen


def track(client: Any) -> KlineFinals | None:
    """Note the finals `client` (a ccxt.pro exchange) receives from now on; None where its venue has no flag."""
    existing: KlineFinals | None = getattr(client, "_twinstar_kline_finals", None)
    if existing is not None:
        return existing
    extract = EXTRACTORS.get(str(getattr(client, "id", "")))
    handle = getattr(client, "handle_ohlcv", None)
    if extract is None or handle is None:
        return None
    finals = KlineFinals()

    def handle_ohlcv(ws: Any, message: Any) -> Any:
        with contextlib.suppress(KeyError, TypeError, ValueError):  # odd frame: no final, REST confirms it
            finals.record(extract(message))
        return handle(ws, message)

    client.handle_ohlcv = handle_ohlcv
    client._twinstar_kline_finals = finals
    return finals
