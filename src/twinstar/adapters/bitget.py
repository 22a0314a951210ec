"""Bitget v2 USDT-M futures: what the recorded-reply tests showed about ccxt 4.5.90's Bitget.

* The API passphrase is required (`password_env`).
* `POST /api/v2/mix/order/place-order` answers with the ids only (`orderId`,
  `clientOid`), never the fill, and Bitget documents that a reduce-only order
  may come back without an `orderId` at all; so every market order is read back
  by `clientOid` (`GET /api/v2/mix/order/detail`) before its result is reported.
* A stop is a reduce-only trigger order (`POST /api/v2/mix/order/place-plan-order`,
  `planType=normal_plan`, `triggerType=mark_price`); it is cancelled through
  `POST /api/v2/mix/order/cancel-plan-order` (ccxt's `trigger` flag).
* Orders are one-way-mode orders (`reduceOnly=YES`, no `tradeSide`).
* On its first private call ccxt probes `GET /api/v3/account/settings` to tell a
  unified (UTA) account from a classic one; any failure there means classic v2.
* Bitget takes a stop-loss on the entry (ccxt `stopLoss` -> `presetStopLossPrice`),
  but it becomes a position TP/SL plan (`planType=pos_loss`) without our client
  id, which ccxt's trigger listing (`normal_plan`) does not show and which moves
  through its own endpoints (`place-pos-tpsl`, `modify-tpsl-order`). Until a
  loopback Bitget proves that lifecycle (found after a restart, moved, never
  doubled), entries do not carry it: the stop is placed on the fill.
* A take-profit is ccxt's unified `takeProfitPrice`: a position TP plan
  (`POST /api/v2/mix/order/place-tpsl-order`, `planType=pos_profit`) that
  Bitget removes with the position, whichever exit closed it; it is cancelled
  through `cancel-plan-order` with that `planType`.
"""

from __future__ import annotations

from typing import Any

from twinstar.adapters.base import OpenOrder
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.bus.events import PositionSide


class Bitget(CcxtExchange):
    """Bitget USDT-M futures and spot (ccxt `bitget`); set `password_env`."""

    exchange_id = "bitget"
    read_back_fills = True

    def stop_params(self, position_side: PositionSide, stop_price: float, client_order_id: str) -> dict[str, Any]:
        """The trigger price travels as `stopPrice`, which ccxt formats; see below."""
        params = super().stop_params(position_side, stop_price, client_order_id)
        # ccxt leaves a `triggerPrice` param in the body as a JSON number; Bitget documents a string.
        params["stopPrice"] = params.pop("triggerPrice")
        return params

    def cancel_order_params(self, order: OpenOrder) -> dict[str, Any]:
        """A take-profit is a position TP plan: cancelled under its own plan type."""
        params = super().cancel_order_params(order)
        return {**params, "planType": "pos_profit"} if order.take_profit else params
