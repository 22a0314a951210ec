"""Which stream candles the venue itself marked final: Binance `k.x`, Bybit `confirm`, OKX's ninth field.

ccxt.pro drops that flag when it parses a kline frame, so a candle whose
final update was lost (frames lost without a disconnect) would look closed
with an intermediate close and volume. `track` wraps the client's
`handle_ohlcv` to note every final it sees; the stream feed publishes a
candle on its final frame and confirms any other over REST first.
Venues without such a flag get every candle confirmed over REST.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Final

from twinstar.adapters.kline_arrivals import binance_key, bybit_key, okx_key

Key = tuple[str, str, int]  # (venue market id, venue interval code, open time ms)
# Finals remembered per client. A feed asks on the final frame itself, or at the latest on the candle's next
# frame, seconds later; one that asks later (it was reconnecting) confirms over REST instead. 2,000 is 40 s
# of 50 symbols on 1 s candles: a larger memory only grows the heap of a long run (at 20,000, 5 MB per venue
# within minutes).
KEPT: Final = 2_000


def _binance(message: Any) -> list[Key]:
    k = message.get("k") if isinstance(message, dict) else None
    if isinstance(k, dict) and k.get("x") is True:
        return [(*binance_key(message), int(k["t"]))]
    return []


def _bybit(message: Any) -> list[Key]:
    topic = message.get("topic") if isinstance(message, dict) else None
    if not isinstance(topic, str) or not topic.startswith("kline."):
        return []
    rows = message.get("data") or []
    return [(*bybit_key(message), int(r["start"])) for r in rows if isinstance(r, dict) and r.get("confirm") is True]


def _okx(message: Any) -> list[Key]:
    arg = message.get("arg") if isinstance(message, dict) else None
    if not isinstance(arg, dict) or not str(arg.get("channel", "")).startswith("candle"):
        return []
    rows = message.get("data") or []
    return [(*okx_key(message), int(r[0])) for r in rows if isinstance(r, list) and len(r) > 8 and r[8] == "1"]


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
