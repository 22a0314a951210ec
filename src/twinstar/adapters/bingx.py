"""BingX perpetual swaps: what the recorded-reply tests showed about ccxt 4.5.90's BingX.

* `POST /openApi/swap/v2/trade/order` answers a market order with the ids only
  (`orderId`, `clientOrderID`), never the fill, so the order is read back by its
  client id before its result is reported.
* ccxt's `fetch_order(None, symbol, {"clientOrderId": ...})` sends the literal
  `orderId=None`; a lookup by client id therefore calls the endpoint itself with
  `clientOrderId` alone (`GET /openApi/swap/v2/trade/order`, spot `/openApi/spot/v1/trade/query`).
"""

from __future__ import annotations

from typing import Any

from twinstar.adapters.base import OrderResult
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.bus.events import Side


class Bingx(CcxtExchange):
    """BingX (ccxt `bingx`)."""

    exchange_id = "bingx"

    async def find_order(self, symbol: str, client_order_id: str) -> dict[str, Any]:
        """Find an order by client id alone: ccxt's fetch_order would send `orderId=None`."""
        market = self.ccxt.market(symbol)
        request = {"symbol": market["id"], "clientOrderId": client_order_id}
        if market["spot"]:
            # BingX spot spells the query field clientOrderID.
            response = await self.ccxt.spotV1PrivateGetTradeQuery(
                {"symbol": market["id"], "clientOrderID": client_order_id}
            )
        else:
            response = await self.ccxt.swapV2PrivateGetTradeOrder(request)
        data = response.get("data") or {}
        return dict(self.ccxt.parse_order(data.get("order", data), market))

    async def place_market_order(
        self, symbol: str, side: Side, qty: float, *, client_order_id: str, reduce_only: bool = False
    ) -> OrderResult:
        """Send the order, then read it back by client id: the create reply holds no fill."""
        sent = await super().place_market_order(
            symbol, side, qty, client_order_id=client_order_id, reduce_only=reduce_only
        )
        if not sent.ok:
            return sent
        # The order is on the venue; its fill is only in the order details (a failed read keeps the ids).
        found = await self.fetch_order(symbol, client_order_id)
        return found if found.ok else sent
