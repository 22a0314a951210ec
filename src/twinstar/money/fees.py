"""A fill's fees in the quote (settlement) currency, whatever asset the venue took them in.

ccxt reports an order's or a trade's fees as `fee` (one) or `fees` (several,
e.g. part in BNB), each with its `currency`. A fee in the quote currency counts
as it is; one in the base asset (spot buys on Binance) is worth its cost at the
fill's price; one in a third asset (BNB) at that asset's price in the quote
currency at the fill's time, which the caller fetches (`third_assets` says
which) and passes in `rates`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable


class FeeConversionError(ValueError):
    """A fee was paid in an asset with no price to convert it at."""


def fee_entries(order: Mapping[str, Any]) -> list[tuple[float, str]]:
    """(cost, currency) of every fee of a ccxt order or trade; `fees` wins over `fee` when both are given."""
    listed = order.get("fees") or []
    entries: Iterable[Any] = listed if listed else [order.get("fee")]
    return [
        (float(entry["cost"]), str(entry.get("currency") or ""))
        for entry in entries
        if isinstance(entry, Mapping) and entry.get("cost") is not None
    ]


def third_assets(order: Mapping[str, Any], *, base: str, quote: str) -> set[str]:
    """The assets other than `base` and `quote` that `order`'s fees were paid in: each needs a price."""
    return {currency for _, currency in fee_entries(order) if currency and currency not in (base, quote)}


def fee_in_quote(
    order: Mapping[str, Any], *, base: str, quote: str, price: float, rates: Mapping[str, float] | None = None
) -> float:
    """Every fee of `order` in `quote`: base-asset fees at `price`, others at `rates[asset]` (quote per unit).

    A fee without a currency is taken as quote (what ccxt leaves out is the
    settlement currency). Raise FeeConversionError when an asset has no rate.
    """
    total = 0.0
    for cost, currency in fee_entries(order):
        if not currency or currency == quote:
            total += cost
        elif currency == base:
            total += cost * price
        elif rates is not None and currency in rates:
            total += cost * rates[currency]
        else:
            raise FeeConversionError(f"a fee of {cost:g} {currency} has no {currency}/{quote} price to convert it")
    return total


@runtime_checkable
class FillFeeSource(Protocol):
    """A venue whose order replies may lack the fees: they are read from the order's trades (Binance USD-M)."""

    @property
    def fills_carry_fees(self) -> bool:
        """Whether an order's reply carries its fees (False: a fee of 0 in it means "not told")."""
        ...

    async def fetch_fill_fees(self, symbol: str, order_id: str) -> float | None:
        """The fees of `order_id`'s fills in the quote currency; None where the order's own fee is the truth."""
        ...
