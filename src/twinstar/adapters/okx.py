"""OKX v5: trigger orders are algo orders; the API passphrase is required.

* ccxt 4.5.90 places a market order through `POST /api/v5/trade/batch-orders`
  (or `/trade/order`); either reply holds the ids only (`ordId`, `clOrdId`,
  `sCode`), never the fill, so the order is read back by `clOrdId`
  (`GET /api/v5/trade/order`) before its result is reported.
* A stop is an algo order (`POST /api/v5/trade/order-algo`, `ordType=trigger`).
"""

from __future__ import annotations

from twinstar.adapters.ccxt_base import CcxtExchange


class Okx(CcxtExchange):
    """OKX swaps and spot (ccxt `okx`); set `password_env` for the passphrase."""

    exchange_id = "okx"
    read_back_fills = True
