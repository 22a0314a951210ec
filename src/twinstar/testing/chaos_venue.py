"""A loopback Binance USD-M venue that watches the kernel's safety from the exchange's side.

`ChaosVenue` is the strict `Venue` plus bookkeeping that needs no help from
the kernel: every entry fill by client id (one id filled twice is a
duplicate entry), positions larger than one entry, and the time-weighted
windows in which a position was open with no resting stop that covers it
(measured on the venue's own monotonic clock). A `hook` sees every request
just before and just after the venue carries it out, so a harness can kill
the kernel at an exact instant of the order lifecycle.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, Literal

from aiohttp import web

from twinstar.handlers.reconcile import STOP_PREFIX
from twinstar.testing.venue import ALGO_OPEN, Venue

Phase = Literal["before", "after"]
#: Called with (method, path, phase); True before the venue carries a request out drops it unseen.
Hook = Callable[[str, str, Phase], bool]
DROPPED: Final = 599  # the status of a dropped request's reply (nobody is left to read it)


@dataclass
class Audit:
    """The venue's books at one instant: positions without a covering stop, stops of ours with nothing to guard."""

    unprotected: int = 0
    orphans: int = 0


@dataclass
class ChaosVenue(Venue):
    """`Venue` that counts duplicate entries and measures unprotected time (see the module docstring)."""

    entry_qty: float = 0.0  # > 0: a position larger than this is an entry executed on top of another
    hook: Hook | None = None
    label: str = ""  # what the harness is doing now: names the cause of the longest window
    entry_fills: Counter[str] = field(default_factory=Counter)  # client id -> non-reduce-only orders filled
    order_fills: Counter[str] = field(default_factory=Counter)  # client id -> orders filled (closes too)
    oversize: int = 0  # fills that left a position larger than one entry
    windows: list[tuple[float, str]] = field(default_factory=list)  # (seconds unprotected, label at its start)
    _since: tuple[float, str] | None = None

    # -- observation -----------------------------------------------------------

    def _covered(self, symbol: str, size: float) -> bool:
        closing = "SELL" if size > 0 else "BUY"
        need = Decimal(str(abs(size)))
        return any(
            a["symbol"] == symbol
            and a["algoStatus"] in ALGO_OPEN
            and a["side"] == closing
            and (a["closePosition"] or Decimal(a["quantity"]) >= need)
            for a in self.algo_orders.values()
        )

    def audit(self) -> Audit:
        """Positions with no stop covering them, and our stops beyond the one that guards each position."""
        found = Audit()
        for symbol in self.rules:
            size = self.positions.get(symbol, 0.0)
            ours = [
                a
                for a in self.algo_orders.values()
                if a["symbol"] == symbol and a["algoStatus"] in ALGO_OPEN and a["clientAlgoId"].startswith(STOP_PREFIX)
            ]
            if size == 0:
                found.orphans += len(ours)
                continue
            guarding = sum(1 for a in ours if a["side"] == ("SELL" if size > 0 else "BUY"))
            found.orphans += len(ours) - min(guarding, 1)
            found.unprotected += 0 if self._covered(symbol, size) else 1
        return found

    def observe(self) -> None:
        """Open or close the current unprotected window after any change of the books."""
        bare = any(size != 0 and not self._covered(s, size) for s, size in self.positions.items())
        now = time.monotonic()
        if bare and self._since is None:
            self._since = (now, self.label)
        elif not bare and self._since is not None:
            self.windows.append((now - self._since[0], self._since[1]))
            self._since = None

    def finish(self) -> None:
        """Count a window still open at the end of a run."""
        if self._since is not None:
            self.windows.append((time.monotonic() - self._since[0], self._since[1]))
            self._since = None

    @property
    def duplicate_entries(self) -> int:
        """Entry executions beyond the first per client id."""
        return sum(n - 1 for n in self.entry_fills.values() if n > 1)

    @property
    def max_unprotected(self) -> tuple[float, str]:
        """The longest unprotected window and what was going on when it opened."""
        return max(self.windows, default=(0.0, ""))

    # -- hooks into the venue ----------------------------------------------------

    async def _carry_out(self, request: web.Request) -> web.Response:
        hook = self.hook
        if hook is not None and hook(request.method, request.path, "before"):
            return web.Response(status=DROPPED)
        response = await super()._carry_out(request)
        self.observe()
        if hook is not None:
            hook(request.method, request.path, "after")
        return response

    async def move_price(self, price: float, symbol: str | None = None) -> list[dict[str, Any]]:
        """Move the price (stops may trigger and fill), then look at the books."""
        filled = await super().move_price(price, symbol)
        self.observe()
        return filled

    def _fill(
        self, order: dict[str, Any], wanted: Decimal, price: float, frames: list[dict[str, Any]], *, maker: bool
    ) -> dict[str, Any]:
        first = Decimal(order["executedQty"]) == 0
        done = super()._fill(order, wanted, price, frames, maker=maker)
        if Decimal(done["executedQty"]) > 0 and first:
            self.order_fills[done["clientOrderId"]] += 1
            if not done["reduceOnly"]:
                self.entry_fills[done["clientOrderId"]] += 1
        size = abs(self.positions.get(done["symbol"], 0.0))
        if self.entry_qty > 0 and size > self.entry_qty + 1e-9:
            self.oversize += 1
        return done
