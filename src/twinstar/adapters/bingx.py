"""BingX perpetual swaps: what the recorded-reply tests showed about ccxt 4.5.90's BingX.

* `POST /openApi/swap/v2/trade/order` answers a market order with the ids only
  (`orderId`, `clientOrderID`), never the fill, so the order is read back by its
  client id before its result is reported.
* ccxt's `fetch_order(None, symbol, {"clientOrderId": ...})` sends the literal
  `orderId=None`; a lookup by client id therefore calls the endpoint itself with
  `clientOrderId` alone (`GET /openApi/swap/v2/trade/order`, spot `/openApi/spot/v1/trade/query`).
* BingX takes a stop-loss on the entry (ccxt `stopLoss` -> a JSON `stopLoss`
  field: STOP_MARKET, its quantity the ordered amount, not what filled), but the
  stop it makes carries no client id of ours. Until a loopback BingX proves it
  can be found after a restart and moved without doubling, entries do not carry
  it: the stop is placed on the fill, sized to what filled.
"""

from __future__ import annotations

from typing import Any

from twinstar.adapters.ccxt_base import CcxtExchange


class Bingx(CcxtExchange):
    """BingX (ccxt `bingx`)."""

    exchange_id = "bingx"
    read_back_fills = True

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
