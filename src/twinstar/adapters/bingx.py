"""BingX perpetual swaps."""

from __future__ import annotations

from twinstar.adapters.ccxt_base import CcxtExchange


class Bingx(CcxtExchange):
    """BingX (ccxt `bingx`)."""

    exchange_id = "bingx"
