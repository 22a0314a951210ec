"""Binance USD-M futures: conditional stops go through the algo-order endpoint.

ccxt 4.5.90 sends a market order with `triggerPrice` to `POST /fapi/v1/algoOrder`
(STOP_MARKET, CONDITIONAL) and cancels it through the algo API when
`trigger=True`; order lookups by client id use `origClientOrderId`.

An entry cannot carry a stop-loss on USD-M, so the stop is placed as soon as
the fill is known (one signed round trip after it; `bench/bench_unprotected.py`
measures the window). Order modification (`PUT /fapi/v1/order`) covers LIMIT
orders only and there is none for algo orders, so a stop moves new-before-old:
the new one is on the book before the old one is cancelled.
"""

from __future__ import annotations

from twinstar.adapters.ccxt_base import CcxtExchange


class BinanceUsdm(CcxtExchange):
    """Binance USD-M perpetuals (ccxt `binanceusdm`)."""

    exchange_id = "binanceusdm"
    has_recv_window = True
    fills_carry_fees = False  # an order's reply has no commission: its trades (`/fapi/v1/userTrades`) do
