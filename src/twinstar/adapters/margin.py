"""The part of the venue contract for leverage and margin mode (see `twinstar.handlers.leverage`)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import msgspec


class MarginSettings(msgspec.Struct, frozen=True, kw_only=True):
    """A symbol's leverage and margin mode as the venue reports them (0 / "": it does not say)."""

    symbol: str
    leverage: float = 0.0
    margin_mode: str = ""


@runtime_checkable
class MarginVenue(Protocol):
    """A venue whose leverage and margin mode the kernel sets and reads."""

    @property
    def name(self) -> str:
        """The venue's name in events."""
        ...

    def wanted_margin(self, symbol: str) -> tuple[float, str]:
        """The configured (leverage, margin mode) of `symbol`: 0 and "" where the config leaves them."""
        ...

    async def set_margin(self, symbol: str) -> None:
        """Set the configured margin mode, then leverage; one already so is no error. Raise ExchangeError."""
        ...

    async def read_margin(self, symbol: str) -> MarginSettings:
        """Read the symbol's leverage and margin mode back from the venue. Raise ExchangeError."""
        ...
