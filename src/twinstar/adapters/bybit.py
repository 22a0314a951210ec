"""Bybit v5: what the over-the-wire tests showed about its protocol, as ccxt 4.5.90 speaks it.

* `POST /v5/order/create` answers with the ids only (`orderId`, `orderLinkId`),
  never the fill, so every order is read back by `orderLinkId` before its
  result is reported: a market order's `filled_qty` is what really filled.
* ccxt's `fetch_order(None, symbol, {"clientOrderId": ...})` sends
  `orderId=None` and passes `clientOrderId` through untranslated, so it can
  never find an order by client id; lookups go to `GET /v5/order/realtime`
  (open and recent orders) and then `/v5/order/history` with `orderLinkId`.
* An entry carries its stop: ccxt's `stopLoss` param becomes `stopLoss` (with
  `tpslMode=Full`) on the create, so the fill and its stop are one request.
  Bybit makes it the position's own stop-loss (an untriggered order,
  `stopOrderType=StopLoss`, no `orderLinkId`; the position's `stopLoss`
  field): it covers the whole position whatever filled, is resized with it and
  is removed when the position closes, so it can be neither doubled nor
  orphaned. Having no client id, it is listed as `POSITION_STOP_CID`. A stop
  that would trigger at once (a long's above the last price) makes Bybit
  refuse the whole order (10001): the entry never goes out unprotected.
* Moving the position's stop is `POST /v5/position/trading-stop` (Full mode):
  an amend in place, no second order; an unchanged stop answers 34040 "not
  modified", which is success.
* Other stops are conditional orders, which need `triggerDirection` (1 rises
  to, 2 falls to the trigger); they move with `POST /v5/order/amend`
  (`triggerPrice`, `qty`; an unchanged one answers "order not modified"). Only
  if an amend is refused is a new stop placed before the old one is cancelled.
  Every contract order says `positionIdx=0` (one-way mode), so a hedge-mode
  account rejects it (10001) instead of opening the wrong leg.
* Cancelling a contract stop needs no flag (`trigger` is spot-only in ccxt
  and would be sent to Bybit as an unknown body field).
* A resend whose `orderLinkId` is already on the book gets 110072; that means
  the first send arrived, so the order is read back instead of failing.
"""

from __future__ import annotations

import re
from typing import Any, Final

import ccxt
import msgspec

from twinstar.adapters.base import OpenOrder, OrderResult
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.bus.events import PositionSide, Side

DUPLICATE_LINK_ID: Final = re.compile(r'"retCode":\s*110072\b')
#: What Bybit answers when the stop already is what was asked (trading-stop 34040, amend "order not modified").
NOT_MODIFIED: Final = re.compile(r'"retCode":\s*34040\b|not modified')
ONE_WAY: Final = 0  # positionIdx of a one-way-mode position
#: The client id the position's own stop-loss is listed under (Bybit gives it none).
POSITION_STOP_CID: Final = "position-sl"
#: The same for the position's own take-profit.
POSITION_TP_CID: Final = "position-tp"
#: Bybit's `stopOrderType` of each position exit (Full mode), by the client id it is listed under.
_POSITION_EXITS: Final = {POSITION_STOP_CID: "StopLoss", POSITION_TP_CID: "TakeProfit"}


class Bybit(CcxtExchange):
    """Bybit v5 linear perpetuals and spot (ccxt `bybit`)."""

    exchange_id = "bybit"
    read_back_fills = True
    has_recv_window = True
    attach_stop = True
    funding_as_fee = True  # a Funding execution's execFee: positive when the account paid
    # 110043 "leverage not modified", 110026 "cross/isolated margin mode is not modified": already so.
    margin_unchanged_codes = ("110043", "110026")

    async def set_margin(self, symbol: str) -> None:
        """Learn the account type first: a unified account's margin mode is the whole account's."""
        if self.wanted_margin(symbol)[1]:
            await self._call("is_unified_enabled", "is_unified_enabled")  # ccxt keeps the answer in its options
        await super().set_margin(symbol)

    def margin_mode_params(self, leverage: float) -> dict[str, Any]:
        """A classic account switches a symbol's mode together with its leverage; a unified one without."""
        unified = self.ccxt.options.get("enableUnifiedAccount") or self.ccxt.options.get("enableUnifiedMargin")
        return {"leverage": f"{leverage:g}"} if leverage and not unified else {}

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

    def attach_params(self, symbol: str, stop_price: float, stop_client_order_id: str) -> dict[str, Any]:
        """The position's own stop-loss, for the whole position (Full mode)."""
        return {"stopLoss": stop_price, "tpslMode": "Full"}

    def attach_take_profit_params(self, symbol: str, params: dict[str, Any], price: float) -> dict[str, Any]:
        """The position's own take-profit beside its stop-loss (Full mode): Bybit removes the other when one fills."""
        return {**params, "takeProfit": price, "tpslMode": "Full"}

    def take_profit_params(self, position_side: PositionSide, price: float, client_order_id: str) -> dict[str, Any]:
        """A conditional order on the one-way position (ccxt sets its `triggerDirection`)."""
        params = super().take_profit_params(position_side, price, client_order_id)
        return {**params, "positionIdx": ONE_WAY} if self._contracts else params

    def attached_stop_id(self, order: dict[str, Any]) -> str:
        """An attached stop becomes the position's stop-loss, which has no client id of its own."""
        return POSITION_STOP_CID

    def attached_take_profit_id(self, order: dict[str, Any]) -> str:
        """An attached take-profit becomes the position's take-profit, listed as `POSITION_TP_CID`."""
        return POSITION_TP_CID

    def _open_order(self, order: dict[str, Any], symbol: str) -> OpenOrder:
        """The position's own stop-loss is listed under `POSITION_STOP_CID`."""
        parsed = super()._open_order(order, symbol)
        info = order.get("info") or {}
        if info.get("stopOrderType") == "StopLoss" and info.get("tpslMode") == "Full":
            return msgspec.structs.replace(
                parsed, client_order_id=POSITION_STOP_CID, reduce_only=True, position_stop=True
            )
        if info.get("stopOrderType") == "TakeProfit" and info.get("tpslMode") == "Full":
            return msgspec.structs.replace(parsed, client_order_id=POSITION_TP_CID, reduce_only=True, take_profit=True)
        return parsed

    async def find_order(self, symbol: str, client_order_id: str) -> dict[str, Any]:
        """Find an order by `orderLinkId`: open and recent orders first, then the order history.

        `POSITION_STOP_CID` finds the position's stop-loss: the resting one, else the latest that fired;
        `POSITION_TP_CID` its take-profit the same way.
        """
        market = self.ccxt.market(symbol)
        category, _ = self.ccxt.get_bybit_type("fetchOrder", market, {})
        request = {"category": category, "symbol": market["id"]}
        position_exit = _POSITION_EXITS.get(client_order_id)
        if position_exit is None:
            request["orderLinkId"] = client_order_id
        for endpoint in ("privateGetV5OrderRealtime", "privateGetV5OrderHistory"):
            response = await getattr(self.ccxt, endpoint)(request)
            rows = (response.get("result") or {}).get("list") or []
            if position_exit is not None:
                rows = [r for r in rows if r.get("stopOrderType") == position_exit and r.get("tpslMode") == "Full"]
            if rows:
                return dict(self.ccxt.parse_order(rows[0], market))
        raise ccxt.OrderNotFound(f"bybit: no order with orderLinkId {client_order_id} in {symbol}")

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
        """Send the order (read back by `orderLinkId`); a duplicate link id means the first send arrived."""
        sent = await super().place_market_order(
            symbol,
            side,
            qty,
            client_order_id=client_order_id,
            reduce_only=reduce_only,
            stop_price=stop_price,
            stop_client_order_id=stop_client_order_id,
            take_profit_price=take_profit_price,
        )
        if sent.ok or not DUPLICATE_LINK_ID.search(sent.message):
            return sent
        return await self.read_back(symbol, client_order_id, qty)

    async def amend_stop(
        self, symbol: str, previous: dict[str, Any], amount: float, price: float
    ) -> OrderResult | None:
        """Move the stop in place: the position's stop by trading-stop, a conditional one by order amend."""
        if not self._contracts:
            return None
        market = self.ccxt.market(symbol)
        cid = str(previous.get("clientOrderId") or "")
        request: dict[str, Any] = {"category": "linear", "symbol": market["id"]}
        trigger = self.ccxt.price_to_precision(symbol, price)
        if cid == POSITION_STOP_CID:
            call = "privatePostV5PositionTradingStop"
            request |= {"tpslMode": "Full", "stopLoss": trigger, "positionIdx": ONE_WAY}
        else:
            call = "privatePostV5OrderAmend"
            request |= {"triggerPrice": trigger, "qty": self.ccxt.amount_to_precision(symbol, amount)}
            request |= {"orderId": previous["id"]} if previous.get("id") else {"orderLinkId": cid}
        qty = amount * self._contract_size(symbol)
        try:
            await self._signed(call, request)
        except Exception as exc:
            failed = self._failure(exc, cid, qty)
            if not NOT_MODIFIED.search(failed.message):
                return failed
        return OrderResult.success(
            client_order_id=cid,
            order_id=str(previous.get("id") or ""),
            status="open",
            requested_qty=qty,
            filled_qty=0.0,
            avg_price=0.0,
            timestamp_ms=self.clock.now_ms(),
        )

    async def _cancel_stop(self, symbol: str, stop: dict[str, Any]) -> None:
        """The position's stop-loss is cleared by trading-stop (stopLoss 0); others are cancelled by id."""
        if stop.get("clientOrderId") != POSITION_STOP_CID:
            await super()._cancel_stop(symbol, stop)
            return
        request = {"category": "linear", "symbol": self.ccxt.market_id(symbol), "tpslMode": "Full"}
        await self._signed("privatePostV5PositionTradingStop", {**request, "stopLoss": "0", "positionIdx": ONE_WAY})

    async def cancel_stop_loss(self, symbol: str) -> OrderResult:
        """The position's own stop-loss goes with the position: nothing to send (see the module docstring).

        Clearing it here could clear the stop of a position opened since on the same symbol.
        """
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
