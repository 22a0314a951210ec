"""Leverage and margin mode: set per symbol from the config at start, then read back and compared.

A venue that has them (`MarginVenue`: the ccxt derivatives adapters) sets what
`exchange.leverage` / `symbol_leverage` / `margin_mode` ask for; the kernel
then reads both back, and refuses to trade a symbol whose settings differ
(`MarginSettingError`, a config error: one line, no order sent). A setting the
venue does not report cannot be verified: that is a warning, not a refusal.
Symbols with nothing configured are left as the account has them, and nothing
is asked.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final

import msgspec

from twinstar.adapters.base import ExchangeError
from twinstar.adapters.margin import MarginSettings, MarginVenue
from twinstar.config import ConfigError

log: Final = logging.getLogger("twinstar.leverage")


class MarginSettingError(ConfigError):
    """The venue's leverage or margin mode is not what the config sets (or could not be set)."""


class MarginCheck(msgspec.Struct, frozen=True, kw_only=True):
    """What one symbol was to be set to and what the venue reads back."""

    symbol: str
    wanted_leverage: float
    wanted_mode: str
    found: MarginSettings | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        """Whether no configured setting reads back otherwise (one the venue does not report cannot differ)."""
        if self.found is None:
            return False
        leverage, mode = self.found.leverage, self.found.margin_mode
        leverage_ok = not self.wanted_leverage or not leverage or abs(leverage - self.wanted_leverage) < 1e-9
        mode_ok = not self.wanted_mode or not mode or mode == self.wanted_mode
        return leverage_ok and mode_ok

    @property
    def verified(self) -> bool:
        """Whether the venue reported every configured setting (so `ok` is a reading, not a default)."""
        found = self.found
        return (
            found is not None
            and bool(found.leverage or not self.wanted_leverage)
            and bool(found.margin_mode or not self.wanted_mode)
        )

    def describe(self) -> str:
        """One line: what was asked and what the venue says."""
        if self.found is None:
            return f"could not be read: {self.error}"
        found = self.found
        said = f"{found.leverage:g}x" if found.leverage else "leverage not reported"
        said += f", {found.margin_mode}" if found.margin_mode else ", margin mode not reported"
        wanted = [f"{self.wanted_leverage:g}x"] if self.wanted_leverage else []
        wanted += [self.wanted_mode] if self.wanted_mode else []
        asked = f"config sets {', '.join(wanted)}" if wanted else "config leaves it as it is"
        return f"{said} ({asked})" + (f"; {self.error}" if self.error else "")


async def check_margin(venue: MarginVenue, symbols: Sequence[str], *, apply: bool) -> list[MarginCheck]:
    """Read each symbol's settings back; with `apply`, set the configured ones first (and skip the rest)."""
    checks: list[MarginCheck] = []
    for symbol in symbols:
        leverage, mode = venue.wanted_margin(symbol)
        if apply and not leverage and not mode:
            continue  # nothing to set: the account's own settings stand, and nothing is asked
        error = ""
        try:
            if apply:
                await venue.set_margin(symbol)
        except ExchangeError as exc:
            error = f"setting it failed: {exc.message}"
        try:
            found: MarginSettings | None = await venue.read_margin(symbol)
        except ExchangeError as exc:
            found, error = None, error or exc.message
        checks.append(MarginCheck(symbol=symbol, wanted_leverage=leverage, wanted_mode=mode, found=found, error=error))
    return checks


async def settle_margin(venue: MarginVenue, symbols: Sequence[str]) -> list[MarginCheck]:
    """Set and verify each symbol's configured leverage and margin mode; MarginSettingError if one differs."""
    checks = await check_margin(venue, symbols, apply=True)
    for check in checks:
        if not check.ok:
            raise MarginSettingError(f"exchange {venue.name!r} {check.symbol}: {check.describe()}")
        if not check.verified:
            log.warning("exchange %r %s: set, but not verifiable: %s", venue.name, check.symbol, check.describe())
    return checks
