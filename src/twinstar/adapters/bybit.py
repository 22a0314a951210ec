"""Bybit v5: what the over-the-wire tests showed about its protocol, as ccxt 4.5.90 speaks it.

* `POST /v5/order/create` answers with the ids only (`orderId`, `orderLinkId`),
  never the fill, so every order is read back by `orderLinkId` before its
  result is reported: a market order's `filled_qty` is what really filled.
* ccxt's `fetch_order(None, symbol, {"clientOrderId": ...})` sends
  `orderId=None` and passes `clientOrderId` through untranslated, so it can
  never find an order by client id; lookups go to `GET /v5/order/realtime`
  (open and recent orders) and then `/v5/order/history` with `orderLinkId`.
* Conditional orders need `triggerDirection` (1 rises to, 2 falls to the
  trigger); every contract order says `positionIdx=0` (one-way mode), so a
  hedge-mode account rejects it (10001) instead of opening the wrong leg.
* Cancelling a contract stop needs no flag (`trigger` is spot-only in ccxt
  and would be sent to Bybit as an unknown body field).
* A resend whose `orderLinkId` is already on the book gets 110072; that means
  the first send arrived, so the order is read back instead of failing.
"""

from __future__ import annotations

import re
from typing import Any, Final

import ccxt

from twinstar.adapters.base import OrderResult
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.bus.events import PositionSide, Side

DUPLICATE_LINK_ID: Final = re.compile(r'"retCode":\s*110072\b')
ONE_WAY: Final = 0  # positionIdx of a one-way-mode position


class Bybit(CcxtExchange):
    """Bybit v5 linear perpetuals and spot (ccxt `bybit`)."""

    exchange_id = "bybit"
    read_back_fills = True
    has_recv_window = True

    @property
    def _contracts(self) -> bool:
        return self.config.market_type != "spot"

    def order_params(self, client_order_id: str, reduce_only: bool) -> dict[str, Any]:
        """The client id travels as `orderLinkId`; contract orders name the one-way position."""
        params = super().order_params(client_order_id, reduce_only)
        return {**params, "positionIdx": ONE_WAY} if self._contracts else params

    def stop_params(self, position_side: PositionSide, stop_price: float, client_order_id: str) -> dict[str, Any]:
        """A long's stop fires on a falling price (descending), a short's on a rising one."""
        direction = "descending" if position_side == "long" else "ascending"
        params = {**super().stop_params(position_side, stop_price, client_order_id), "triggerDirection": direction}
        return {**params, "positionIdx": ONE_WAY} if self._contracts else params

    def cancel_stop_params(self) -> dict[str, Any]:
        """Only spot stops need ccxt's `trigger` flag (it becomes `orderFilter=StopOrder`)."""
        return {} if self._contracts else super().cancel_stop_params()

    async def find_order(self, symbol: str, client_order_id: str) -> dict[str, Any]:
        """Find an order by `orderLinkId`: open and recent orders first, then the order history."""
        market = self.ccxt.market(symbol)
        category, _ = self.ccxt.get_bybit_type("fetchOrder", market, {})
        request = {"category": category, "symbol": market["id"], "orderLinkId": client_order_id}
        for endpoint in ("privateGetV5OrderRealtime", "privateGetV5OrderHistory"):
            response = await getattr(self.ccxt, endpoint)(request)
            rows = (response.get("result") or {}).get("list") or []
            if rows:
                return dict(self.ccxt.parse_order(rows[0], market))
        raise ccxt.OrderNotFound(f"bybit: no order with orderLinkId {client_order_id} in {symbol}")

    async def place_market_order(
        self, symbol: str, side: Side, qty: float, *, client_order_id: str, reduce_only: bool = False
    ) -> OrderResult:
        """Send the order (read back by `orderLinkId`); a duplicate link id means the first send arrived."""
        sent = await super().place_market_order(
            symbol, side, qty, client_order_id=client_order_id, reduce_only=reduce_only
        )
        if sent.ok or not DUPLICATE_LINK_ID.search(sent.message):
            return sent
        return await self.read_back(symbol, client_order_id, qty)
