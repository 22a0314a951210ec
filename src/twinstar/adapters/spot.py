"""Spot markets: the position is the held base currency, and stops are synthetic.

`SpotWithoutStops` serves any ccxt exchange traded spot (`market_type = "spot"`);
the position handler closes at market when a closed candle crosses the stop,
which works on every venue and locks no balance. Upbit and Bithumb are spot
only and add their own quirks (`KrwSpot`).
"""

from __future__ import annotations

from typing import Any

from twinstar.adapters.base import Position
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.bus.events import Side


class SpotWithoutStops(CcxtExchange):
    """Any spot market: the kernel keeps the stop itself; the position is the balance."""

    native_stop = False

    def order_params(self, client_order_id: str, reduce_only: bool) -> dict[str, Any]:
        """Spot has no reduce-only flag: a sell of the held amount reduces by nature."""
        return {"clientOrderId": client_order_id}

    async def fetch_position(self, symbol: str) -> Position | None:
        """A spot position is the held base currency."""
        balance = await self._call("fetch_balance", "fetch_balance")
        base = symbol.split("/", maxsplit=1)[0]
        amount = float((balance.get(base) or {}).get("total") or 0.0)
        market = self.ccxt.markets.get(symbol, {}) if self.ccxt.markets else {}
        minimum = float(((market.get("limits") or {}).get("amount") or {}).get("min") or 0.0)
        if amount <= max(minimum, 0.0):
            return None
        return Position(symbol=symbol, side="long", qty=amount, entry_price=_average_cost(balance, base))


def _average_cost(balance: dict[str, Any], base: str) -> float:
    """The venue's average buy price of `base` where its account list keeps one (Upbit, Bithumb), else 0."""
    rows = balance.get("info")
    for row in rows if isinstance(rows, list) else ():
        if isinstance(row, dict) and row.get("currency") == base:
            try:
                return float(row.get("avg_buy_price") or 0.0)
            except (TypeError, ValueError):
                return 0.0  # unreadable: no entry price, the stop is set from the next close
    return 0.0


class KrwSpot(SpotWithoutStops):
    """Upbit and Bithumb: a market buy spends quote currency; a create reply is not the fill."""

    # Upbit answers state "wait" with executed_volume 0, Bithumb the ids only.
    read_back_fills = True

    async def market_order_price(self, symbol: str, side: Side) -> float | None:
        """A market buy spends quote currency (`ord_type` "price"): ccxt turns qty x last price into that amount."""
        if side == "sell":
            return None
        return float((await self.ccxt.fetch_ticker(symbol))["last"])


class Upbit(KrwSpot):
    """Upbit KRW/BTC/USDT spot (ccxt `upbit`)."""

    exchange_id = "upbit"

    async def find_order(self, symbol: str, client_order_id: str) -> dict[str, Any]:
        """Find an order by its `identifier` (GET /v1/order?identifier=...)."""
        # ccxt's fetch_order(None, ...) sends uuid=None and a clientOrderId field Upbit does not know.
        response = await self.ccxt.privateGetOrder({"identifier": client_order_id})
        return dict(self.ccxt.parse_order(response, self.ccxt.market(symbol)))


class Bithumb(KrwSpot):
    """Bithumb KRW spot (ccxt `bithumb`)."""

    exchange_id = "bithumb"

    async def find_order(self, symbol: str, client_order_id: str) -> dict[str, Any]:
        """Find an order by client id (GET /v1/order?client_order_id=...), with its fill from the raw reply."""
        order = await super().find_order(symbol, client_order_id)
        # ccxt 4.5.90 reads neither `executed_volume` nor the trades' `volume`/`funds`: it reports filled 0.
        info = order.get("info") or {}
        executed = float(info.get("executed_volume") or 0.0)
        if executed > 0:
            funds = sum(float(trade.get("funds") or 0.0) for trade in info.get("trades") or [])
            order["filled"] = executed
            order["average"] = funds / executed if funds else order.get("average")
        if info.get("paid_fee") is not None:  # ccxt reports `reserved_fee`; the fee charged is `paid_fee`
            order["fee"] = {**(order.get("fee") or {}), "cost": float(info["paid_fee"])}
        return order
