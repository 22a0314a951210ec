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
"""

from __future__ import annotations

from typing import Any, ClassVar

from twinstar.adapters.ccxt_base import CcxtExchange


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
