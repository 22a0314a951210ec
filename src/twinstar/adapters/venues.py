"""The ccxt venues by exchange id, and `make_exchange`, which picks one for a config.

Kept out of `twinstar.adapters` itself so that importing the protocol or the
simulator (a backtest) does not import ccxt.
"""

from __future__ import annotations

from twinstar.adapters.base import Exchange
from twinstar.adapters.binance import BinanceUsdm
from twinstar.adapters.bingx import Bingx
from twinstar.adapters.bitget import Bitget
from twinstar.adapters.bybit import Bybit
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.adapters.lighter import Lighter
from twinstar.adapters.okx import Okx
from twinstar.adapters.spot import Bithumb, SpotWithoutStops, Upbit
from twinstar.clock import Clock
from twinstar.config import ExchangeConfig

VENUES: dict[str, type[CcxtExchange]] = {
    cls.exchange_id: cls for cls in (BinanceUsdm, Bybit, Okx, Bingx, Bitget, Upbit, Bithumb, Lighter)
}


def make_exchange(config: ExchangeConfig, clock: Clock) -> Exchange:
    """Build the adapter for `config.id`: a venue with quirks, or any other ccxt exchange."""
    cls = VENUES.get(config.id)
    if cls is not None:
        return cls(config=config, clock=clock)
    if config.market_type == "spot":
        return SpotWithoutStops(config.id, config=config, clock=clock)
    return CcxtExchange(config.id, config=config, clock=clock)
