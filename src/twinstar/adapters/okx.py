"""OKX v5: trigger orders are algo orders; the API passphrase is required.

* ccxt 4.5.90 places a market order through `POST /api/v5/trade/batch-orders`
  (or `/trade/order`); either reply holds the ids only (`ordId`, `clOrdId`,
  `sCode`), never the fill, so the order is read back by `clOrdId`
  (`GET /api/v5/trade/order`) before its result is reported.
* A stop is an algo order (`POST /api/v5/trade/order-algo`, `ordType=trigger`).
"""

from __future__ import annotations

from twinstar.adapters.base import OrderResult
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.bus.events import Side


class Okx(CcxtExchange):
    """OKX swaps and spot (ccxt `okx`); set `password_env` for the passphrase."""

    exchange_id = "okx"

    async def place_market_order(
        self, symbol: str, side: Side, qty: float, *, client_order_id: str, reduce_only: bool = False
    ) -> OrderResult:
        """Send the order, then read it back by `clOrdId`: the create reply holds no fill."""
        sent = await super().place_market_order(
            symbol, side, qty, client_order_id=client_order_id, reduce_only=reduce_only
        )
        if not sent.ok:
            return sent
        # The order is on the venue; its fill is only in the order details (a failed read keeps the ids).
        found = await self.fetch_order(symbol, client_order_id)
        return found if found.ok else sent
