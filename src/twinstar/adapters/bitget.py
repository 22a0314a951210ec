"""Bitget v2: the API passphrase is required."""

from __future__ import annotations

from twinstar.adapters.ccxt_base import CcxtExchange


class Bitget(CcxtExchange):
    """Bitget USDT-M futures and spot (ccxt `bitget`); set `password_env`."""

    exchange_id = "bitget"
