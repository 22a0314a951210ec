"""Bitget v2 USDT-M futures: what the recorded-reply tests showed about ccxt 4.5.90's Bitget.

* The API passphrase is required (`password_env`).
* `POST /api/v2/mix/order/place-order` answers with the ids only (`orderId`,
  `clientOid`), never the fill, and Bitget documents that a reduce-only order
  may come back without an `orderId` at all; so every market order is read back
  by `clientOid` (`GET /api/v2/mix/order/detail`) before its result is reported.
* A stop the kernel places is a reduce-only trigger order
  (`POST /api/v2/mix/order/place-plan-order`, `planType=normal_plan`,
  `triggerType=mark_price`); it is cancelled through
  `POST /api/v2/mix/order/cancel-plan-order` (ccxt's `trigger` flag).
* Orders are one-way-mode orders (`reduceOnly=YES`, no `tradeSide`).
* On its first private call ccxt probes `GET /api/v3/account/settings` to tell a
  unified (UTA) account from a classic one; any failure there means classic v2.
* An entry carries its exits: ccxt's `stopLoss` / `takeProfit` become
  `presetStopLossPrice` / `presetStopSurplusPrice` on the place-order (market
  execution). Bitget's Place-Order page: "If the current underlying asset does
  not exist in the position, it is intended to preset the TP/SL. If the current
  underlying exists in the position, it is intended to modify the TP/SL"
  (https://www.bitget.com/api-doc/contract/trade/Place-Order). So they become
  the position's own TP/SL plans (`planType` `pos_loss` / `pos_profit`, no size:
  they cover the whole position whatever filled, and go with it), at most one
  of each per position. Bitget gives them no client id of ours: they are listed
  as `POSITION_STOP_CID` / `POSITION_TP_CID`, like Bybit's position TP/SL.
* They are listed with `GET /api/v2/mix/order/orders-plan-pending` under
  `planType=profit_loss` (ccxt `fetch_open_orders` with that `planType`), which
  covers profit_plan, loss_plan, moving_plan, pos_profit and pos_loss
  (https://www.bitget.com/api-doc/contract/plan/get-orders-plan-pending); the
  default trigger query (`normal_plan`) does not show them. Their rows carry no
  size, so a listed one is given the position's size and closing side.
* The position's stop moves in place with
  `POST /api/v2/mix/order/modify-tpsl-order` (`orderId`, `triggerPrice`, and
  `"size": ""`, which that page prescribes for position TP/SL,
  https://www.bitget.com/api-doc/contract/plan/Modify-Tpsl-Order): no second
  stop, nothing to cancel. ccxt's `edit_order` would send a size, so the
  endpoint is called through ccxt's implicit API (as are the plan listings
  below); those are classic v2 endpoints, as everything here assumes.
* A position exit is cancelled through `cancel-plan-order` under its own plan
  type (the default is `normal_plan`,
  https://www.bitget.com/api-doc/contract/plan/Cancel-Plan-Order); the
  kernel's "cancel the stop" after a close sends nothing for the position's own
  stop: it went with the position, and cancelling "the position's stop" could
  hit the stop of a position opened since.
* How a position exit ended is read from
  `GET /api/v2/mix/order/orders-plan-history` (`planType=profit_loss`): the
  latest executed one of its plan type names the order it became
  (`executeOrderId`), whose fill `GET /api/v2/mix/order/detail` gives.
* A take-profit the kernel places is ccxt's unified `takeProfitPrice`: a
  position TP plan too (`POST /api/v2/mix/order/place-tpsl-order`,
  `planType=pos_profit`), cancelled through `cancel-plan-order` with that
  `planType`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Final

import ccxt
import msgspec

from twinstar.adapters.base import ErrorKind, ExchangeError, OpenOrder, OrderResult
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.bus.events import PositionSide

#: The client id the position's own stop-loss (`pos_loss`) is listed under: Bitget gives it none of ours.
POSITION_STOP_CID: Final = "position-sl"
#: The same for the position's own take-profit (`pos_profit`).
POSITION_TP_CID: Final = "position-tp"
#: Bitget's `planType` of each position exit, by the client id it is listed under.
_POSITION_EXITS: Final = {POSITION_STOP_CID: "pos_loss", POSITION_TP_CID: "pos_profit"}
#: The query value that lists every TP/SL plan (orders-plan-pending, orders-plan-history).
_TPSL_PLANS: Final = "profit_loss"


class Bitget(CcxtExchange):
    """Bitget USDT-M futures and spot (ccxt `bitget`); set `password_env`."""

    exchange_id = "bitget"
    read_back_fills = True
    attach_stop = True
    open_order_queries: ClassVar[tuple[dict[str, Any], ...]] = ({}, {"trigger": True}, {"planType": _TPSL_PLANS})

    def stop_params(self, position_side: PositionSide, stop_price: float, client_order_id: str) -> dict[str, Any]:
        """The trigger price travels as `stopPrice`, which ccxt formats; see below."""
        params = super().stop_params(position_side, stop_price, client_order_id)
        # ccxt leaves a `triggerPrice` param in the body as a JSON number; Bitget documents a string.
        params["stopPrice"] = params.pop("triggerPrice")
        return params

    def cancel_order_params(self, order: OpenOrder) -> dict[str, Any]:
        """A position exit is cancelled under its own plan type (the default would be `normal_plan`)."""
        params = super().cancel_order_params(order)
        if order.position_stop:
            return {**params, "planType": "pos_loss"}
        return {**params, "planType": "pos_profit"} if order.take_profit else params

    def attached_stop_id(self, order: dict[str, Any]) -> str:
        """An attached stop becomes the position's stop-loss, which has no client id of ours."""
        return POSITION_STOP_CID

    def attached_take_profit_id(self, order: dict[str, Any]) -> str:
        """An attached take-profit becomes the position's take-profit, listed as `POSITION_TP_CID`."""
        return POSITION_TP_CID

    def _product(self, symbol: str) -> dict[str, str]:
        """The `productType` ccxt names `symbol`'s market with (USDT-FUTURES for a USDT-M perpetual)."""
        product, _ = self.ccxt.handle_product_type_and_params(self.ccxt.market(symbol), {})
        return {"productType": str(product)}

    def order_queries(self) -> tuple[dict[str, Any], ...]:
        """Spot has no TP/SL plans: the `profit_loss` query is for contracts only."""
        queries = super().order_queries()
        return queries if self.attaches_stop else tuple(q for q in queries if "planType" not in q)

    def _open_order(self, order: dict[str, Any], symbol: str) -> OpenOrder:
        """A position exit is listed under its `POSITION_*_CID`, reduce-only, at its trigger price."""
        info = order.get("info") or {}
        plan = info.get("planType")
        if plan not in ("pos_loss", "pos_profit"):
            return super()._open_order(order, symbol)
        stop = plan == "pos_loss"
        leg = "stopLossTriggerPrice" if stop else "stopSurplusTriggerPrice"
        trigger = _price_of(info.get("triggerPrice")) or _price_of(info.get(leg))
        if trigger <= 0:  # never guessed: an unreadable exit leaves the position as it is
            raise ExchangeError(ErrorKind.UNKNOWN, f"unreadable {plan} plan {order.get('id')!r}: no trigger price")
        # Its row may name no side: the position's closing side replaces it (`fetch_open_orders`).
        row = {**order, "triggerPrice": trigger, "takeProfitPrice": None, "side": order.get("side") or "sell"}
        parsed = super()._open_order(row, symbol)
        return msgspec.structs.replace(
            parsed,
            client_order_id=POSITION_STOP_CID if stop else POSITION_TP_CID,
            reduce_only=True,
            position_stop=stop,
            take_profit=not stop,
        )

    async def fetch_open_orders(self, symbol: str) -> list[OpenOrder]:
        """Every resting order; a position exit takes the position's size and closing side (its row has neither)."""
        orders = await super().fetch_open_orders(symbol)
        if not any(o.client_order_id in _POSITION_EXITS for o in orders):
            return orders
        position = await self.fetch_position(symbol)
        if position is None:
            return orders  # gone with its position an instant ago, or left over: listed as found
        closing = "sell" if position.side == "long" else "buy"
        return [
            msgspec.structs.replace(o, side=closing, qty=position.qty) if o.client_order_id in _POSITION_EXITS else o
            for o in orders
        ]

    async def _position_exit(self, symbol: str, cid: str) -> dict[str, Any] | None:
        """The resting `pos_loss` (or `pos_profit`) plan of `symbol` as Bitget lists it, or None."""
        request = {"symbol": self.ccxt.market_id(symbol), "planType": _TPSL_PLANS, **self._product(symbol)}
        response = await self._signed("privateMixGetV2MixOrderOrdersPlanPending", request)
        rows = ((response.get("data") or {}).get("entrustedList")) or []
        return next((r for r in rows if r.get("planType") == _POSITION_EXITS[cid]), None)

    async def amend_stop(
        self, symbol: str, previous: dict[str, Any], amount: float, price: float
    ) -> OrderResult | None:
        """Move the position's stop in place (modify-tpsl-order); a plain stop is replaced, new before old."""
        cid = str(previous.get("clientOrderId") or "")
        if cid != POSITION_STOP_CID:
            return None
        qty = amount * self._contract_size(symbol)
        try:
            order_id = str(previous.get("id") or "")
            if not order_id:
                row = await self._position_exit(symbol, cid)
                if row is None:
                    raise ccxt.OrderNotFound(f"bitget: no position stop-loss rests for {symbol}")
                order_id = str(row.get("orderId") or "")
                previous["id"] = order_id  # found once: the next move goes straight to the amend
            request = {
                "orderId": order_id,
                "symbol": self.ccxt.market_id(symbol),
                "marginCoin": self.ccxt.market(symbol)["settleId"],
                "triggerPrice": self.ccxt.price_to_precision(symbol, price),
                "size": "",  # the documented value for a position TP/SL: it covers the whole position
                **self._product(symbol),
            }
            await self._signed("privateMixPostV2MixOrderModifyTpslOrder", request)
        except Exception as exc:
            return self._failure(exc, cid, qty)
        return OrderResult.success(
            client_order_id=cid,
            order_id=order_id,
            status="open",
            requested_qty=qty,
            filled_qty=0.0,
            avg_price=0.0,
            timestamp_ms=self.clock.now_ms(),
        )

    async def _cancel_stop(self, symbol: str, stop: dict[str, Any]) -> None:
        """A replaced position stop is cancelled under `planType=pos_loss`, by the id it rests under."""
        if stop.get("clientOrderId") != POSITION_STOP_CID:
            await super()._cancel_stop(symbol, stop)
            return
        order_id = str(stop.get("id") or "")
        if not order_id:
            row = await self._position_exit(symbol, POSITION_STOP_CID)
            if row is None:
                raise ccxt.OrderNotFound(f"bitget: no position stop-loss rests for {symbol}")
            order_id = str(row.get("orderId") or "")
        await self._signed("cancel_order", order_id, symbol, {**self.cancel_stop_params(), "planType": "pos_loss"})

    async def cancel_stop_loss(self, symbol: str) -> OrderResult:
        """The position's own stop-loss goes with the position: nothing to send (see the module docstring)."""
        if self._stops.get(symbol, {}).get("clientOrderId") != POSITION_STOP_CID:
            return await super().cancel_stop_loss(symbol)
        self._stops.pop(symbol)
        return OrderResult.success(
            client_order_id=POSITION_STOP_CID,
            order_id="",
            status="canceled",
            requested_qty=0.0,
            filled_qty=0.0,
            avg_price=0.0,
            timestamp_ms=self.clock.now_ms(),
        )

    async def find_order(self, symbol: str, client_order_id: str) -> dict[str, Any]:
        """`POSITION_*_CID` finds the position exit: resting, else the order the latest executed one became."""
        plan = _POSITION_EXITS.get(client_order_id)
        if plan is None:
            return await super().find_order(symbol, client_order_id)
        market = self.ccxt.market(symbol)
        resting = await self._position_exit(symbol, client_order_id)
        if resting is not None:
            return dict(self.ccxt.parse_order(resting, market))
        request = {"symbol": market["id"], "planType": _TPSL_PLANS, "planStatus": "executed", **self._product(symbol)}
        response = await self._signed("privateMixGetV2MixOrderOrdersPlanHistory", request)
        rows = [r for r in ((response.get("data") or {}).get("entrustedList") or []) if r.get("planType") == plan]
        executed = max(rows, key=lambda r: int(r.get("uTime") or r.get("cTime") or 0), default=None)
        if executed is None or not executed.get("executeOrderId"):
            raise ccxt.OrderNotFound(f"bitget: no {plan} of {symbol} rests or executed")
        return dict(await self.ccxt.fetch_order(str(executed["executeOrderId"]), symbol))


def _price_of(value: Any) -> float:
    """`value` as a positive price, else 0 (Bitget sends "" for an unset field)."""
    try:
        price = float(value)
    except (TypeError, ValueError):
        return 0.0
    return price if price > 0 else 0.0
