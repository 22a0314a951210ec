"""OKX v5: trigger orders are algo orders; the API passphrase is required."""

from __future__ import annotations

from twinstar.adapters.ccxt_base import CcxtExchange


class Okx(CcxtExchange):
    """OKX swaps and spot (ccxt `okx`); set `password_env` for the passphrase."""

    exchange_id = "okx"
