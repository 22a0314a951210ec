"""Each order type in ccxt's unified parameters, never a hand-built venue request.

ccxt translates these per venue: `postOnly` becomes Binance's
``timeInForce=GTX``, Bybit's ``PostOnly``, OKX's ``ordType=post_only``;
`takeProfitPrice` makes a reduce-only take-profit trigger order (Binance's
``TAKE_PROFIT_MARKET`` algo order, a Bybit conditional order, an OKX
conditional algo order); a `takeProfit` dict rides on an entry beside its
`stopLoss` where the venue attaches exits.
"""

from __future__ import annotations

from typing import Any, Final

from twinstar.bus.events import TimeInForce

_TIME_IN_FORCE: Final[dict[TimeInForce, dict[str, Any]]] = {
    "gtc": {"timeInForce": "GTC"},
    "ioc": {"timeInForce": "IOC"},
    "post_only": {"postOnly": True},
}


def time_in_force_params(time_in_force: TimeInForce) -> dict[str, Any]:
    """ccxt params for a limit order's time in force."""
    return dict(_TIME_IN_FORCE[time_in_force])


def take_profit_params(trigger_price: float, client_order_id: str) -> dict[str, Any]:
    """ccxt params that turn a market order into a reduce-only take-profit at `trigger_price`."""
    return {"takeProfitPrice": trigger_price, "reduceOnly": True, "clientOrderId": client_order_id}


def attached_take_profit(trigger_price: float) -> dict[str, Any]:
    """ccxt params that attach a take-profit (at market once triggered) to an entry."""
    return {"takeProfit": {"triggerPrice": trigger_price}}
