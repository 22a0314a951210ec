"""Spot-only venues without native stop orders (Upbit, Bithumb).

The position is the base-currency balance; stops are synthetic: the position
handler closes at market when a closed candle crosses the stop.
"""

from __future__ import annotations

from typing import Any

from twinstar.adapters.base import OrderResult, Position
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.bus.events import PositionSide


class SpotWithoutStops(CcxtExchange):
    """Base for spot venues where the kernel keeps the stop itself."""

    native_stop = False

    def order_params(self, client_order_id: str, reduce_only: bool) -> dict[str, Any]:
        """Spot has no reduce-only flag: a sell of the held amount reduces by nature."""
        return {"clientOrderId": client_order_id}

    async def update_stop_loss(
        self, symbol: str, position_side: PositionSide, qty: float, stop_price: float, *, client_order_id: str
    ) -> OrderResult:
        """Refuse: this venue has no stop orders (supports_native_stop is False)."""
        from twinstar.adapters.base import ErrorKind

        return OrderResult.failure(
            ErrorKind.NOT_SUPPORTED,
            f"{self.name} has no stop orders; the kernel keeps a synthetic stop",
            client_order_id=client_order_id,
            requested_qty=qty,
        )

    async def fetch_position(self, symbol: str) -> Position | None:
        """A spot position is the held base currency."""
        balance = await self._call("fetch_balance", "fetch_balance")
        base = symbol.split("/", maxsplit=1)[0]
        amount = float((balance.get(base) or {}).get("total") or 0.0)
        market = self.ccxt.markets.get(symbol, {}) if self.ccxt.markets else {}
        minimum = float(((market.get("limits") or {}).get("amount") or {}).get("min") or 0.0)
        if amount <= max(minimum, 0.0):
            return None
        return Position(symbol=symbol, side="long", qty=amount, entry_price=0.0)


class Upbit(SpotWithoutStops):
    """Upbit KRW/BTC/USDT spot (ccxt `upbit`)."""

    exchange_id = "upbit"


class Bithumb(SpotWithoutStops):
    """Bithumb KRW spot (ccxt `bithumb`)."""

    exchange_id = "bithumb"
