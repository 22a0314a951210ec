"""Binance USD-M futures: conditional stops go through the algo-order endpoint.

ccxt 4.5.90 sends a market order with `triggerPrice` to `POST /fapi/v1/algoOrder`
(STOP_MARKET, CONDITIONAL) and cancels it through the algo API when
`trigger=True`; order lookups by client id use `origClientOrderId`.
"""

from __future__ import annotations

from twinstar.adapters.ccxt_base import CcxtExchange


class BinanceUsdm(CcxtExchange):
    """Binance USD-M perpetuals (ccxt `binanceusdm`)."""

    exchange_id = "binanceusdm"
    has_recv_window = True
