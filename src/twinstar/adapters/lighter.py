"""Lighter (zkLighter): orders are signed by the lighter-sdk signer library.

ccxt's `lighter` class signs transactions with the Go signer shipped in the
`lighter-sdk` wheel, whose own dependencies (urllib3<2.1) cannot be installed
beside ccxt's. The library is all we need, so install it alone:

    pip install --no-deps lighter-sdk

and TwinStar points ccxt's `options['libraryPath']` at the signer for this
platform inside the installed package (an `options.libraryPath` in the config
wins). Without it, order calls fail with a clear NOT_SUPPORTED result; market
data works. lighter-sdk 1.1.8's signer binds to ccxt 4.5.90's FFI signatures.

Candles: ccxt 4.5.90 reads `GET /api/v1/candles` as `{"c": [{"t","o","h","l","c","v",...}]}`.
Lighter's earlier candle body, `{"candlesticks": [{"timestamp","open",...,"volume0",...}]}`
(ccxt's own fixture from Nov 2025), parses to nothing in ccxt 4.5.90, so
`fetch_ohlcv` reads that shape itself (`parse_candles`): both are supported.

Orders: a Lighter market order carries a worst acceptable price (ccxt requires one), so
`market_order_price` takes the best opposite price of the book and allows `market_slippage`
through it. Lighter's client id is an integer (`ClientOrderIndex`, 48 bits): the kernel's
client id is sent as its `client_order_index` (a hash, see `client_order_index`).
`sendTx` answers with a transaction hash only, so the fill is read back: ccxt 4.5.90 has
no fetchOrder for Lighter, and `find_order` looks the index up among the account's active,
then inactive orders. ccxt 4.5.90 has no trigger orders for Lighter either
(`createTriggerOrder` False): stops are synthetic, `update_stop_loss` says NOT_SUPPORTED
and sends nothing.

Beware: ccxt 4.5.90 signs with an API key it generates itself. On the first signed call of
a process it creates a new API key, registers it at `apiKeyIndex` (254 unless 4..254 is
configured) with an L1-signed ChangePubKey transaction, and, on a non-standard account
tier, approves ccxt's integrator builder fee (`options.builderFee` False turns that off).
"""

from __future__ import annotations

import hashlib
import importlib.util
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import ccxt

from twinstar.adapters.base import Bar
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.bus.events import Side
from twinstar.clock import Clock
from twinstar.config import ExchangeConfig

_SIGNERS = {
    ("Linux", "x86_64"): "lighter-signer-linux-amd64.so",
    ("Linux", "aarch64"): "lighter-signer-linux-arm64.so",
    ("Darwin", "x86_64"): "lighter-signer-darwin-amd64.dylib",
    ("Darwin", "arm64"): "lighter-signer-darwin-arm64.dylib",
    ("Windows", "AMD64"): "lighter-signer-windows-amd64.dll",
}


def signer_library_path() -> Path | None:
    """Find the signer of the installed lighter-sdk for this platform, or None."""
    spec = importlib.util.find_spec("lighter")
    if spec is None or not spec.submodule_search_locations:
        return None
    name = _SIGNERS.get((platform.system(), platform.machine()))
    if name is None:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / "signers" / name
        if candidate.exists():
            return candidate
    return None


def client_order_index(client_order_id: str) -> int:
    """The kernel's client id as Lighter's integer ClientOrderIndex (1 .. 2**48 - 1), stable across runs."""
    digest = int.from_bytes(hashlib.blake2b(client_order_id.encode(), digest_size=6).digest(), "big")
    return digest or 1  # 0 means "no client index" to Lighter


class Lighter(CcxtExchange):
    """Lighter perpetuals (ccxt `lighter`)."""

    exchange_id = "lighter"
    native_stop = False  # ccxt 4.5.90: createTriggerOrder False for lighter; the kernel keeps the stop
    read_back_fills = True  # sendTx answers with a transaction hash only
    #: How far through the best opposite price a market order may fill (its worst price).
    market_slippage: ClassVar[float] = 0.05

    def __init__(
        self,
        exchange_id: str | None = None,
        *,
        config: ExchangeConfig | None = None,
        clock: Clock,
        ccxt_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(exchange_id, config=config, clock=clock, ccxt_options=ccxt_options)
        # A libraryPath from the config (or ccxt_options) wins over the one found in lighter-sdk.
        if not self.ccxt.options.get("libraryPath"):
            library = signer_library_path()
            self.ccxt.options["libraryPath"] = None if library is None else str(library)
        configured = self.ccxt.options.get("libraryPath")
        self.signer: Path | None = Path(configured) if configured else None
        self.ccxt.enableLastJsonResponse = True  # fetch_ohlcv reads an earlier candle body ccxt cannot parse

    def order_params(self, client_order_id: str, reduce_only: bool) -> dict[str, Any]:
        """Send the client id as Lighter's integer index: ccxt would put a random one for a text id."""
        params = super().order_params(client_order_id, reduce_only)
        return {**params, "clientOrderId": client_order_index(client_order_id)}

    async def market_order_price(self, symbol: str, side: Side) -> float | None:
        """A market order's worst price: `market_slippage` through the best opposite price of the book."""
        book = await self.ccxt.fetch_order_book(symbol, 1)
        best = float((book["asks"] if side == "buy" else book["bids"])[0][0])
        worst = best * (1 + self.market_slippage) if side == "buy" else best * (1 - self.market_slippage)
        return self._price(symbol, worst)

    async def find_order(self, symbol: str, client_order_id: str) -> dict[str, Any]:
        """Find the order by its client index among the active, then the inactive orders."""
        index = str(client_order_index(client_order_id))
        for method in (self.ccxt.fetch_open_orders, self.ccxt.fetch_closed_orders):
            for order in await method(symbol):
                if str((order.get("info") or {}).get("client_order_index")) == index:
                    return {**order, "clientOrderId": client_order_id}
        raise ccxt.OrderNotFound(f"lighter: no order with client_order_index {index} ({client_order_id})")

    async def fetch_ohlcv(
        self, symbol: str, interval: str, *, since_ms: int | None = None, limit: int = 500
    ) -> list[Bar]:
        """Return candles oldest first, from the current or the earlier Lighter candle body."""
        bars = await super().fetch_ohlcv(symbol, interval, since_ms=since_ms, limit=limit)
        body = self.ccxt.last_json_response  # this request's body: nothing awaited since ccxt stored it
        if bars or not isinstance(body, dict) or "candlesticks" not in body:
            return bars
        older = [b for b in parse_candles(body) if since_ms is None or b.open_time_ms >= since_ms]
        return older[:limit] if since_ms is not None else older[-limit:]


def parse_candles(body: Mapping[str, Any]) -> list[Bar]:
    """Parse a Lighter candle body, current (`c`) or earlier (`candlesticks`), oldest first."""
    rows = body.get("c")
    keys = ("t", "o", "h", "l", "c", "v")
    if rows is None:
        rows, keys = body.get("candlesticks") or [], ("timestamp", "open", "high", "low", "close", "volume0")
    time, open_, high, low, close, volume = keys
    bars = [
        Bar(int(r[time]), float(r[open_]), float(r[high]), float(r[low]), float(r[close]), float(r.get(volume) or 0))
        for r in rows
        if all(r.get(key) is not None for key in keys[:5])
    ]
    return sorted(bars, key=lambda bar: bar.open_time_ms)
