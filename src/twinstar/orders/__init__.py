"""Order types beyond market entries: limits, post-only, take-profits and brackets.

`refusals` says, before any request, why an order cannot go out (a clear
one-line reason); `ccxt_params` spells each order type in ccxt's unified
parameters, which every ccxt venue translates into its own request.
"""

from __future__ import annotations

from twinstar.orders.ccxt_params import attached_take_profit, take_profit_params, time_in_force_params
from twinstar.orders.refusals import entry_refusal

__all__ = ["attached_take_profit", "entry_refusal", "take_profit_params", "time_in_force_params"]
