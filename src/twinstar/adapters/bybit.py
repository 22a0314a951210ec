"""Bybit v5: conditional orders need a trigger direction; lookups need an acknowledgement."""

from __future__ import annotations

from typing import Any

from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.bus.events import PositionSide


class Bybit(CcxtExchange):
    """Bybit v5 linear perpetuals and spot (ccxt `bybit`)."""

    exchange_id = "bybit"

    def stop_params(self, position_side: PositionSide, stop_price: float, client_order_id: str) -> dict[str, Any]:
        """A long's stop fires on a falling price (descending), a short's on a rising one."""
        direction = "descending" if position_side == "long" else "ascending"
        return {**super().stop_params(position_side, stop_price, client_order_id), "triggerDirection": direction}

    async def find_order(self, symbol: str, client_order_id: str) -> dict[str, Any]:
        """Bybit's fetchOrder sees only the last 500 orders and asks to be told we know."""
        return dict(await self.ccxt.fetch_order(None, symbol, {"clientOrderId": client_order_id, "acknowledged": True}))
