"""BingX perpetual swaps: what the recorded-reply tests showed about ccxt 4.5.90's BingX.

* `POST /openApi/swap/v2/trade/order` answers a market order with the ids only
  (`orderId`, `clientOrderID`), never the fill, so the order is read back by its
  client id before its result is reported.
* ccxt's `fetch_order(None, symbol, {"clientOrderId": ...})` sends the literal
  `orderId=None`; a lookup by client id therefore calls the endpoint itself with
  `clientOrderId` alone (`GET /openApi/swap/v2/trade/order`, spot `/openApi/spot/v1/trade/query`).
* An entry carries its stop-loss: ccxt's `stopLoss` becomes the place-order's
  `stopLoss` field, a JSON string `{"stopPrice", "workingType": "MARK_PRICE",
  "type": "STOP_MARKET", "quantity"}` ("Stop-loss attached order (may only be
  attached to MARKET / LIMIT orders)", BingX swap Place Order,
  https://bingx-api.github.io/docs-v3/#/en/Swap/Trades%20Endpoints/Place%20order).
  At the fill BingX rests it as a STOP_MARKET order of its own, without a client
  id (BingX takes `clientOrderId` on MARKET and LIMIT orders only), sized to the
  quantity ccxt put in the JSON: what was ordered, not what filled.
* So right after the fill the stop is found (`GET /openApi/swap/v2/trade/openOrders`,
  which lists every order type in one reply): the un-named STOP_MARKET on the
  closing side at the entry's stop price. A STOP_MARKET without a client id is
  listed as `ATTACHED_STOP_PREFIX` + its order id, so the id the journal records
  for the position names exactly that order after a restart. Where it is sized
  to the ordered amount of a partly filled entry, its quantity is amended to
  what filled (`POST /openApi/swap/v1/trade/amend`, which changes the quantity
  of an open order in place); if BingX refuses, a stop sized to the fill is
  placed and the attached one cancelled. Should the stop not be listed at all,
  a stop of the kernel's own is placed for the fill (see `_settle_attached`).
* A stop moves new-before-old (BingX's amend takes no trigger price; its
  cancel-replace cancels first); a size change alone is amended in place.
* A take-profit is not attached: the one BingX makes from the entry's
  `takeProfit` is a sized order of its own, which BingX documents no
  one-cancels-the-other for with the attached stop. The kernel places a
  reduce-only TAKE_PROFIT_MARKET for what filled and cancels the survivor.
* Limit entries carry the stop only when IOC: a resting limit fills later,
  outside any call of this adapter, where the stop BingX then makes would go
  unidentified; the kernel places the stop on that fill instead.
* Every order type is cancelled at `DELETE /openApi/swap/v2/trade/order` by
  `orderId` (no trigger flag exists).
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Final

import msgspec

from twinstar.adapters.base import ExchangeError, OpenOrder, OrderResult
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.bus.events import PositionSide, Side, TimeInForce

log: Final = logging.getLogger("twinstar.adapters")

#: A STOP_MARKET order without a client id (an entry's attached stop) is listed as this plus its order id.
ATTACHED_STOP_PREFIX: Final = "bingx-sl-"
#: Listings tried for an entry's attached stop before the kernel's own stop is placed instead.
FIND_ATTEMPTS: Final = 3
FIND_WAIT_S: Final = 0.5
_ATTACHED_TYPES: Final = ("STOP_MARKET", "STOP")


def attached_order_id(client_order_id: str) -> str:
    """The BingX order id an `ATTACHED_STOP_PREFIX` client id names ("" for any other id)."""
    return (
        client_order_id.removeprefix(ATTACHED_STOP_PREFIX) if client_order_id.startswith(ATTACHED_STOP_PREFIX) else ""
    )


class Bingx(CcxtExchange):
    """BingX (ccxt `bingx`)."""

    exchange_id = "bingx"
    read_back_fills = True
    attach_stop = True
    open_order_queries: ClassVar[tuple[dict[str, Any], ...]] = ({},)  # one listing holds every order type

    def cancel_stop_params(self) -> dict[str, Any]:
        """BingX cancels a stop like any order: no flag."""
        return {}

    async def find_order(self, symbol: str, client_order_id: str) -> dict[str, Any]:
        """Find an order by client id alone: ccxt's fetch_order would send `orderId=None`.

        An attached stop's listed id is its order id.
        """
        market = self.ccxt.market(symbol)
        order_id = attached_order_id(client_order_id)
        if order_id:
            response = await self.ccxt.swapV2PrivateGetTradeOrder({"symbol": market["id"], "orderId": order_id})
        elif market["spot"]:
            # BingX spot spells the query field clientOrderID.
            response = await self.ccxt.spotV1PrivateGetTradeQuery(
                {"symbol": market["id"], "clientOrderID": client_order_id}
            )
        else:
            request = {"symbol": market["id"], "clientOrderId": client_order_id}
            response = await self.ccxt.swapV2PrivateGetTradeOrder(request)
        data = response.get("data") or {}
        return dict(self.ccxt.parse_order(data.get("order", data), market))

    def _open_order(self, order: dict[str, Any], symbol: str) -> OpenOrder:
        """An un-named STOP_MARKET (an entry's attached stop) is listed under its order id."""
        parsed = super()._open_order(order, symbol)
        kind = str((order.get("info") or {}).get("type") or "").upper()
        if self.attaches_stop and kind in _ATTACHED_TYPES and not parsed.client_order_id and parsed.order_id:
            return msgspec.structs.replace(parsed, client_order_id=ATTACHED_STOP_PREFIX + parsed.order_id)
        return parsed

    def adopt_stop(self, symbol: str, order: OpenOrder | None) -> None:
        """Remember the adopted stop's order id (an attached stop's id is in its listed id) and trigger."""
        super().adopt_stop(symbol, order)
        if order is not None:
            order_id = order.order_id or attached_order_id(order.client_order_id)
            self._stops[symbol] |= {"id": order_id, "stopPrice": order.stop_price}

    async def amend_stop(
        self, symbol: str, previous: dict[str, Any], amount: float, price: float
    ) -> OrderResult | None:
        """Resize a stop in place when only its size changes (trade/amend); a new trigger price is a new stop."""
        trigger = previous.get("stopPrice") or previous.get("stopLossPrice") or previous.get("triggerPrice")
        order_id = str(previous.get("id") or "")
        if not order_id or not trigger or self._price(symbol, float(trigger)) != price:
            return None
        cid = str(previous.get("clientOrderId") or "")
        qty = amount * self._contract_size(symbol)
        request = {
            "symbol": self.ccxt.market_id(symbol),
            "orderId": order_id,
            "quantity": self.ccxt.amount_to_precision(symbol, amount),
        }
        try:
            await self._signed("swapV1PrivatePostTradeAmend", request)
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

    async def place_market_order(
        self,
        symbol: str,
        side: Side,
        qty: float,
        *,
        client_order_id: str,
        reduce_only: bool = False,
        stop_price: float | None = None,
        stop_client_order_id: str = "",
        take_profit_price: float | None = None,
    ) -> OrderResult:
        """Send the order with its stop attached; the stop BingX rests at the fill is found and sized to it."""
        placed = await super().place_market_order(
            symbol,
            side,
            qty,
            client_order_id=client_order_id,
            reduce_only=reduce_only,
            stop_price=stop_price,
            stop_client_order_id=stop_client_order_id,
            take_profit_price=None,  # kernel-managed here: see the module docstring
        )
        return await self._settle_attached(symbol, side, placed, stop_client_order_id)

    async def place_limit_order(
        self,
        symbol: str,
        side: Side,
        qty: float,
        price: float,
        *,
        client_order_id: str,
        time_in_force: TimeInForce = "gtc",
        reduce_only: bool = False,
        stop_price: float | None = None,
        stop_client_order_id: str = "",
        take_profit_price: float | None = None,
    ) -> OrderResult:
        """Send the limit order; only an IOC carries its stop (its fill is known when this returns)."""
        placed = await super().place_limit_order(
            symbol,
            side,
            qty,
            price,
            client_order_id=client_order_id,
            time_in_force=time_in_force,
            reduce_only=reduce_only,
            stop_price=stop_price if time_in_force == "ioc" else None,
            stop_client_order_id=stop_client_order_id,
            take_profit_price=None,
        )
        return await self._settle_attached(symbol, side, placed, stop_client_order_id)

    async def _settle_attached(self, symbol: str, side: Side, placed: OrderResult, stop_cid: str) -> OrderResult:
        """Name the stop BingX rested for `placed`'s fill, sized to what filled; or protect the fill ourselves.

        Not listed after `FIND_ATTEMPTS` tries, the fill gets a stop of the
        kernel's own (`stop_cid`): an unprotected position is worse than the
        second stop that would rest should the attached one appear after all
        (it would not be ours to manage: nothing names it).
        """
        if not (placed.ok and placed.stop_price > 0 and placed.filled_qty > 0):
            return placed
        position_side: PositionSide = "long" if side == "buy" else "short"
        found = await self._attached(symbol, "sell" if side == "buy" else "buy", placed.stop_price)
        self.adopt_stop(symbol, found)
        if found is not None and abs(found.qty - placed.filled_qty) <= 1e-9:
            return msgspec.structs.replace(placed, stop_client_order_id=found.client_order_id)
        if found is None:
            log.error("bingx %s: the entry's stop is not listed; placing one of ours for the fill", symbol)
        # Sized to the ordered amount (or missing): amended to the fill, else replaced new-before-old.
        sized = await self.update_stop_loss(
            symbol, position_side, placed.filled_qty, placed.stop_price, client_order_id=stop_cid
        )
        if sized.ok:
            return msgspec.structs.replace(placed, stop_client_order_id=sized.client_order_id or stop_cid)
        if found is not None:  # it protects more than filled: the reconciler resizes it
            log.warning("bingx %s: resizing the attached stop failed (%s)", symbol, sized.message)
            return msgspec.structs.replace(placed, stop_client_order_id=found.client_order_id)
        return msgspec.structs.replace(placed, stop_price=0.0, stop_client_order_id="")  # the caller places one

    async def _attached(self, symbol: str, closing: Side, price: float) -> OpenOrder | None:
        """The newest un-named STOP_MARKET closing `symbol` at `price`, as listed; None if none shows."""
        for attempt in range(1, FIND_ATTEMPTS + 1):
            try:
                listed = await self.fetch_open_orders(symbol)
            except ExchangeError as exc:
                log.warning("bingx %s: listing for the attached stop failed: %s", symbol, exc.message)
                listed = []
            candidates = [
                o
                for o in listed
                if attached_order_id(o.client_order_id)
                and o.side == closing
                and self._price(symbol, o.stop_price) == price
            ]
            if candidates:  # BingX order ids grow with time
                return max(candidates, key=lambda o: int(o.order_id) if o.order_id.isdigit() else 0)
            if attempt < FIND_ATTEMPTS:
                await self.clock.sleep(FIND_WAIT_S)
        return None
