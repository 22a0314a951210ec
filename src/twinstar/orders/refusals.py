"""What makes an entry impossible, said before any request goes out.

The venue would refuse these too, but only after a round trip, and some
(a post-only order that would take liquidity on Bybit) are accepted and then
cancelled: saying it first gives one clear reason, and no request at all.
Checks needing the venue's market rules (tick, minimum size) are the
adapter's, which has them loaded.
"""

from __future__ import annotations

import math

from twinstar.bus.events import OrderType, Side, TimeInForce


def entry_refusal(
    side: Side,
    last_price: float,
    *,
    order_type: OrderType = "market",
    limit_price: float = 0.0,
    time_in_force: TimeInForce = "gtc",
    take_profit_price: float = 0.0,
) -> str | None:
    """Why this entry cannot go out, in one line; None when it can.

    `last_price` is the market's last price (the signal's close): the
    reference for a market entry's exits and for whether a post-only limit
    would take liquidity. A stop on the wrong side is the venue's to refuse (or
    the position handler's to replace, where stops are placed on the fill),
    with the venue's own reason.
    """
    if order_type == "market":
        if time_in_force != "gtc":
            return f"time in force {time_in_force} applies to limit orders only"
        entry = last_price
    else:
        if not (math.isfinite(limit_price) and limit_price > 0):
            return f"a limit order needs a positive limit price, got {limit_price}"
        entry = limit_price
        crosses = limit_price >= last_price if side == "buy" else limit_price <= last_price
        if time_in_force == "post_only" and crosses:
            return (
                f"post-only {side} at {limit_price:g} would take liquidity (last price {last_price:g}); "
                "a post-only order only ever adds to the book"
            )
    if take_profit_price == 0:
        return None
    if not (math.isfinite(take_profit_price) and take_profit_price > 0):
        return f"take-profit must be a positive price, got {take_profit_price}"
    wanted = "above" if side == "buy" else "below"
    if take_profit_price == entry or (take_profit_price > entry) != (side == "buy"):
        where = f"a {side} entry at {entry:g}"
        return f"take-profit {take_profit_price:g} is on the wrong side of {where} (must be {wanted})"
    return None
