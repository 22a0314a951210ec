"""How big an entry is, and whether the account has room for another position.

Three ways to size an entry (`risk.sizing`):

* ``fraction``: `position_fraction` of equity is the margin all positions
  together may take; each of the `slots` positions gets an equal share of it,
  times the symbol's leverage, as notional. With one symbol and leverage 1
  that is `position_fraction` x equity, today's and backtesting.py's rule.
* ``quote``: a fixed notional of `quote_per_entry` in the quote currency.
* ``risk``: the quantity that loses `risk_per_trade_pct` of equity when the
  stop is hit (equity x pct / distance from price to stop).

Whatever the way, one symbol's notional never exceeds `max_symbol_share` of
equity times its leverage (0: an equal slot, 1 / slots), nor what the free
balance can margin (`FREE_HEADROOM` of it, the rest left for fees and
rounding). A venue holds at most `slots` positions at once: `max_open_positions`,
0 meaning one per symbol. `risk.order_qty` (a fixed base quantity) bypasses
all of this, as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Protocol, runtime_checkable

from twinstar.adapters.base import Balance
from twinstar.config import RiskConfig

#: Share of the free balance an entry may margin: the rest pays the fees and absorbs the venue's rounding.
FREE_HEADROOM: Final = 0.99


@runtime_checkable
class ConfiguredLeverage(Protocol):
    """A venue that knows the leverage each symbol is set to trade at (the simulator, ccxt venues)."""

    def configured_leverage(self, symbol: str) -> float:
        """The leverage `symbol` is set to (0: not set by the kernel, the account's own)."""
        ...


def venue_leverage(exchange: object, symbols: Sequence[str]) -> dict[str, float]:
    """Each symbol's configured leverage on `exchange` (empty where it has none: 1 is assumed)."""
    if not isinstance(exchange, ConfiguredLeverage):
        return {}
    return {symbol: exchange.configured_leverage(symbol) for symbol in symbols}


class Sizer:
    """Sizes the entries of one venue's symbols (see the module docstring)."""

    def __init__(self, risk: RiskConfig, symbols: Sequence[str], leverage: Mapping[str, float] | None = None) -> None:
        self.risk = risk
        self.symbols = tuple(symbols)
        self.leverage = dict(leverage or {})
        self.slots = risk.max_open_positions or max(len(self.symbols), 1)

    @property
    def limits_positions(self) -> bool:
        """Whether the position count can refuse an entry (fewer slots than symbols)."""
        return self.slots < len(self.symbols)

    def has_room(self, open_elsewhere: int) -> bool:
        """Whether another position fits beside `open_elsewhere` open (or opening) ones."""
        return open_elsewhere < self.slots

    def leverage_of(self, symbol: str) -> float:
        """The leverage `symbol` trades at as configured (1 where none is set)."""
        return self.leverage.get(symbol) or 1.0

    def qty(self, symbol: str, balance: Balance, price: float, stop_price: float) -> float:
        """The base quantity of an entry at `price` with its stop at `stop_price` (0: none fits)."""
        if not price > 0:
            return 0.0
        risk = self.risk
        equity = max(balance.total, 0.0)
        leverage = self.leverage_of(symbol)
        if risk.sizing == "quote":
            notional = risk.quote_per_entry
        elif risk.sizing == "risk":
            distance = abs(price - stop_price)
            if not distance > 0:
                return 0.0
            notional = equity * risk.risk_per_trade_pct / 100 / distance * price
        else:
            notional = risk.position_fraction * equity * leverage / self.slots
        share = risk.max_symbol_share or 1 / self.slots
        cap = min(share * equity, FREE_HEADROOM * max(balance.free, 0.0)) * leverage
        return min(notional, cap) / price

    def __repr__(self) -> str:
        return f"Sizer(sizing={self.risk.sizing!r}, slots={self.slots}, symbols={len(self.symbols)})"
