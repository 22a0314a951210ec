"""OKX v5: trigger orders are algo orders; the API passphrase is required.

* ccxt 4.5.90 places a market order through `POST /api/v5/trade/batch-orders`
  (or `/trade/order`); either reply holds the ids only (`ordId`, `clOrdId`,
  `sCode`), never the fill, so the order is read back by `clOrdId`
  (`GET /api/v5/trade/order`) before its result is reported.
* A stop is an algo order (`POST /api/v5/trade/order-algo`, `ordType=trigger`).
* An entry carries its stop in `attachAlgoOrds` (`slTriggerPx`, `slOrdPx=-1`:
  at market), named by `attachAlgoClOrdId`, which becomes the `algoClOrdId` of
  the stop OKX places at the fill: the kernel knows it by its own client id,
  like any stop of ours. ccxt's `stopLoss` param cannot name it, so the array
  is sent as built here. OKX refuses the whole order when the stop is invalid,
  and places the stop once the entry filled completely: an entry that filled
  only in part gets its stop from the kernel on the fill (should OKX place the
  attached one as well, reconciliation keeps one of the two).
* That stop is a `conditional` algo order, which ccxt's trigger query
  (`ordType=trigger`) does not list, so open orders are read once more for it.
  Moving it is new-before-old (the old one is found by its client id, then
  cancelled by `algoId`); OKX's `amend-algos` is not used: no loopback OKX
  venue proves it yet.
* An entry's take-profit joins its stop in that one attached algo order, so
  both exits are listed under the stop's client id. Once it fired, the order
  it placed has no `clOrdId` of ours: a lookup by our id that `/trade/order`
  does not know asks `GET /api/v5/trade/order-algo?algoClOrdId=` and, for an
  algo that fired (`state` effective), returns the order it placed (its
  `ordIdList`) with the real fill. Which exit fired (OKX's `actualSide`, sl
  or tp) the position handler tells from that fill's price against the two
  trigger prices (`handlers.brackets.exit_reason`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import ccxt
import msgspec

from twinstar.adapters.base import OrderResult
from twinstar.adapters.ccxt_base import CcxtExchange, _Entry


class Okx(CcxtExchange):
    """OKX swaps and spot (ccxt `okx`); set `password_env` for the passphrase."""

    exchange_id = "okx"
    read_back_fills = True
    attach_stop = True
    attach_needs_full_fill = True
    open_order_queries: ClassVar[tuple[dict[str, Any], ...]] = ({}, {"trigger": True}, {"ordType": "conditional"})

    def attach_params(self, symbol: str, stop_price: float, stop_client_order_id: str) -> dict[str, Any]:
        """A stop-loss at market attached to the entry, under our client id."""
        stop = {"slTriggerPx": self.ccxt.price_to_precision(symbol, stop_price), "slOrdPx": "-1"}
        return {"attachAlgoOrds": [{"attachAlgoClOrdId": stop_client_order_id, **stop, "slTriggerPxType": "last"}]}

    def attach_take_profit_params(self, symbol: str, params: dict[str, Any], price: float) -> dict[str, Any]:
        """The take-profit joins the stop in the same attached algo order: OKX cancels one when the other fills."""
        trigger = self.ccxt.price_to_precision(symbol, price)
        profit = {"tpTriggerPx": trigger, "tpOrdPx": "-1", "tpTriggerPxType": "last"}
        attached = [dict(a) for a in params.get("attachAlgoOrds") or [{}]]
        attached[0] |= profit
        return {**params, "attachAlgoOrds": attached}

    def attached_stop_id(self, order: dict[str, Any]) -> str:
        """The `attachAlgoClOrdId` the entry echoes."""
        attached = (order.get("info") or {}).get("attachAlgoOrds") or [{}]
        return str(attached[0].get("attachAlgoClOrdId") or "")

    async def _place(
        self, entry: _Entry, kind: str, limit: float | None, extra: dict[str, Any], take_profit_price: float | None
    ) -> OrderResult:
        """The attached take-profit is listed under the stop's client id: one algo order holds both exits."""
        result = await super()._place(entry, kind, limit, extra, take_profit_price)
        if result.take_profit_price and not result.take_profit_client_order_id:
            result = msgspec.structs.replace(result, take_profit_client_order_id=result.stop_client_order_id)
        return result

    async def find_order(self, symbol: str, client_order_id: str) -> dict[str, Any]:
        """An order by our client id; one OKX does not list as an order may be our algo order (an attached stop)."""
        try:
            return await super().find_order(symbol, client_order_id)
        except ccxt.OrderNotFound:
            if not client_order_id:
                raise
            by_algo_id = {"clientOrderId": client_order_id, "trigger": True}  # GET /api/v5/trade/order-algo
            try:
                algo = dict(await self.ccxt.fetch_order(None, symbol, by_algo_id))
            except ccxt.ExchangeError:  # refused as unknown (51603, a bad id): no such algo order either
                raise ccxt.OrderNotFound(f"{self._id}: no order or algo order {client_order_id} in {symbol}") from None
        info = algo.get("info") or {}
        placed = [str(i) for i in info.get("ordIdList") or [info.get("ordId")] if i]
        if info.get("state") != "effective" or not placed:
            return algo  # resting (open), cancelled or failed: no fill of its own
        fill = dict(await self.ccxt.fetch_order(placed[-1], symbol))
        return fill | {"clientOrderId": client_order_id}
