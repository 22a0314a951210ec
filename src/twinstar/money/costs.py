"""What a simulated market fill costs beyond its fee: slippage and half the bid-ask spread."""

from __future__ import annotations

from twinstar.bus.events import CandleClosed, Side
from twinstar.config import SimConfig


def market_fill_price(config: SimConfig, side: Side, last: CandleClosed) -> float:
    """The price a market order fills at after `last`: its close, moved against the taker.

    By `slippage_bps` plus half the spread, which is `spread_bps` of the price
    (a fixed spread) plus `spread_range_share` of the candle's range (a spread
    that widens when the market moves).
    """
    move = (config.slippage_bps + config.spread_bps / 2) / 10_000
    price = last.close * (1 + move if side == "buy" else 1 - move)
    if config.spread_range_share:
        half_range = config.spread_range_share * (last.high - last.low) / 2
        price += half_range if side == "buy" else -half_range
    return price
