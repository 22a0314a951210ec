"""Funding of perpetual swaps: what a venue paid or charged, and the simulator's own from rate data.

Sign: a funding amount is what the account received, in the quote currency;
negative when it paid. At a positive rate longs pay shorts (rate x notional).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from twinstar.bus.events import PositionSide
from twinstar.config import ConfigError


class FundingDataError(ConfigError):
    """A funding-rate file is missing or malformed; the message is one line for the user."""


@runtime_checkable
class FundingSource(Protocol):
    """A venue that says what funding a symbol's position received (ccxt perpetuals, the simulator)."""

    async def fetch_funding(self, symbol: str, since_ms: int) -> float:
        """Funding received for `symbol` after `since_ms` (negative: paid); 0 where none is charged."""
        ...


def funding_payment(side: PositionSide, qty: float, price: float, rate: float) -> float:
    """What a position receives at one funding time: longs pay `rate` x notional, shorts receive it."""
    notional = qty * price * rate
    return -notional if side == "long" else notional


def total_funding(history: Sequence[Mapping[str, Any]], since_ms: int) -> float:
    """Sum of ccxt funding-history `amount`s stamped after `since_ms` (one at the open belongs to what came before)."""
    return sum(float(entry.get("amount") or 0.0) for entry in history if int(entry.get("timestamp") or 0) > since_ms)


class FundingRates:
    """Funding rates by symbol over time, from a CSV or Parquet file.

    Columns: `time_ms` (the funding time), `rate` (e.g. 0.0001 per period)
    and, optionally, `symbol`; rows without a symbol apply to every symbol.
    """

    def __init__(self, rates: Mapping[str, Sequence[tuple[int, float]]]) -> None:
        self._times = {symbol: [t for t, _ in rows] for symbol, rows in rates.items()}
        self._rates = {symbol: [r for _, r in rows] for symbol, rows in rates.items()}

    @classmethod
    def load(cls, path: str | Path) -> FundingRates:
        """Read `path`; raise FundingDataError naming what is wrong."""
        import polars as pl  # only a run with funding data pays for the import

        path = Path(path)
        try:
            frame = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_csv(path)
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise FundingDataError(f"cannot read funding rates {path}: {exc}") from None
        missing = {"time_ms", "rate"} - set(frame.columns)
        if missing:
            raise FundingDataError(f"funding rates {path}: no column {', '.join(sorted(missing))}")
        symbols = frame["symbol"].cast(pl.String).to_list() if "symbol" in frame.columns else [""] * frame.height
        rows: dict[str, list[tuple[int, float]]] = {}
        try:
            for symbol, time_ms, rate in zip(symbols, frame["time_ms"].to_list(), frame["rate"].to_list(), strict=True):
                rows.setdefault(symbol or "", []).append((int(time_ms), float(rate)))
        except (TypeError, ValueError) as exc:
            raise FundingDataError(f"funding rates {path}: unreadable row ({exc})") from None
        return cls({symbol: sorted(found) for symbol, found in rows.items()})

    def between(self, symbol: str, after_ms: int, until_ms: int) -> list[tuple[int, float]]:
        """The (time_ms, rate) of `symbol` (or of every symbol) with after_ms < time_ms <= until_ms, in order."""
        found: list[tuple[int, float]] = []
        for key in (symbol, ""):
            times = self._times.get(key)
            if times:
                start, end = bisect.bisect_right(times, after_ms), bisect.bisect_right(times, until_ms)
                found.extend(zip(times[start:end], self._rates[key][start:end], strict=True))
        return sorted(found)

    def __repr__(self) -> str:
        return f"FundingRates(symbols={sorted(self._times)}, rates={sum(len(t) for t in self._times.values())})"


class SimFunding:
    """The simulator's funding: each rate charged on the position held when its funding time passes.

    A candle charges the rates timed after the previous candle's close and up
    to its own, at its close (the mark price the simulator has), before its
    stops fill: funding falls due on what was held over the funding time.
    """

    def __init__(self, rates: FundingRates) -> None:
        self.rates = rates
        self._seen_ms: dict[str, int] = {}  # symbol -> close time of its latest candle
        self._paid: dict[str, list[tuple[int, float]]] = {}  # symbol -> (funding time, amount received)

    def charge(self, symbol: str, close_ms: int, price: float, held: tuple[PositionSide, float] | None) -> float:
        """What the account receives for `symbol` on the candle closing at `close_ms` (negative: pays)."""
        after = self._seen_ms.get(symbol)
        self._seen_ms[symbol] = close_ms
        if after is None or held is None:
            return 0.0
        total = 0.0
        for time_ms, rate in self.rates.between(symbol, after, close_ms):
            amount = funding_payment(held[0], held[1], price, rate)
            self._paid.setdefault(symbol, []).append((time_ms, amount))
            total += amount
        return total

    def received(self, symbol: str, since_ms: int) -> float:
        """Funding `symbol` received after `since_ms`."""
        return sum(amount for time_ms, amount in self._paid.get(symbol, ()) if time_ms > since_ms)

    def __repr__(self) -> str:
        return f"SimFunding({self.rates!r}, payments={sum(len(p) for p in self._paid.values())})"
