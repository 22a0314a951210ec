"""Exchange adapters: the protocol, the simulator and the ccxt venues.

The venues (and ccxt with them) load on first use of a name below, so a
backtest, which needs only the protocol and the simulator, never imports ccxt.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from twinstar.adapters.base import Exchange

if TYPE_CHECKING:
    from twinstar.adapters.binance import BinanceUsdm as BinanceUsdm
    from twinstar.adapters.bingx import Bingx as Bingx
    from twinstar.adapters.bitget import Bitget as Bitget
    from twinstar.adapters.bybit import Bybit as Bybit
    from twinstar.adapters.ccxt_base import CcxtExchange as CcxtExchange
    from twinstar.adapters.lighter import Lighter as Lighter
    from twinstar.adapters.okx import Okx as Okx
    from twinstar.adapters.spot import Bithumb as Bithumb
    from twinstar.adapters.spot import SpotWithoutStops as SpotWithoutStops
    from twinstar.adapters.spot import Upbit as Upbit
    from twinstar.adapters.venues import VENUES as VENUES
    from twinstar.adapters.venues import make_exchange as make_exchange

_LAZY = {
    "VENUES": "venues",
    "make_exchange": "venues",
    "BinanceUsdm": "binance",
    "Bingx": "bingx",
    "Bitget": "bitget",
    "Bybit": "bybit",
    "CcxtExchange": "ccxt_base",
    "Lighter": "lighter",
    "Okx": "okx",
    "Bithumb": "spot",
    "SpotWithoutStops": "spot",
    "Upbit": "spot",
}

__all__ = [
    "VENUES",
    "BinanceUsdm",
    "Bingx",
    "Bitget",
    "Bithumb",
    "Bybit",
    "CcxtExchange",
    "Exchange",
    "Lighter",
    "Okx",
    "SpotWithoutStops",
    "Upbit",
    "make_exchange",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'twinstar.adapters' has no attribute {name!r}")
    return getattr(importlib.import_module(f"twinstar.adapters.{module}"), name)
