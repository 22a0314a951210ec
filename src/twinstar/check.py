"""`twinstar check`: can this config trade? Keys, clock, markets, permissions, leverage, for every venue.

Each line is one fact with OK or FAILED and the reason; credentials are
reported as set or missing, never shown.
"""

from __future__ import annotations

from typing import TypeAlias

from twinstar.adapters import make_exchange
from twinstar.adapters.base import ExchangeError
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.adapters.margin import MarginVenue
from twinstar.clock import LiveClock
from twinstar.config import Config, ConfigError, VenueConfig
from twinstar.handlers.leverage import check_margin
from twinstar.timesync import measure

Row: TypeAlias = tuple[str, bool, str]  # check, passed, detail


async def run_checks(config: Config) -> list[tuple[VenueConfig, list[Row]]]:
    """Check every venue of `config`, one after the other; return each venue with its rows."""
    return [(venue, await check_venue(venue)) for venue in config.venues()]


async def check_venue(venue: VenueConfig) -> list[Row]:
    """Return (check, passed, detail) rows for one venue and its symbols."""
    rows: list[Row] = []
    try:
        names = sorted(venue.credentials())
        rows.append(("API credentials", True, f"set from environment: {', '.join(names) or 'none (public only)'}"))
    except ConfigError as exc:
        rows.append(("API credentials", False, str(exc)))
        return rows
    clock = LiveClock()
    exchange = make_exchange(venue, clock)
    try:
        try:
            sample = await measure(exchange, clock, 3)
            ok = abs(sample.offset_ms) < 1_000 + sample.rtt_ms
            rows.append(("clock offset", ok, f"{sample.offset_ms:+.1f} ms (round trip {sample.rtt_ms:.1f} ms)"))
        except ExchangeError as exc:
            rows.append(("clock offset", False, exc.message))
        if isinstance(exchange, CcxtExchange):
            try:
                await exchange.ccxt.load_markets()
                markets = exchange.ccxt.markets or {}
                missing = [s for s in venue.symbols if s not in markets]
                rows.append(
                    (
                        "markets",
                        not missing,
                        f"{len(markets)} loaded"
                        + (f"; unknown: {', '.join(missing)}" if missing else f"; {', '.join(venue.symbols)} found"),
                    )
                )
            except Exception as exc:
                rows.append(("markets", False, exchange.scrub(f"{type(exc).__name__}: {exc}")[:200]))
        try:
            balance = await exchange.fetch_balance()
            rows.append(("account access", True, f"{balance.currency} free {balance.free:,.2f}"))
        except ExchangeError as exc:
            rows.append(("account access", False, exc.message[:200]))
        if isinstance(exchange, MarginVenue) and venue.market_type != "spot":
            # Read only: `check` never changes the account; a run sets what the config asks for at start.
            margins = await check_margin(exchange, venue.symbols, apply=False)
            rows.extend(("leverage", m.ok, f"{m.symbol}: {m.describe()}"[:200]) for m in margins)
        rows.append(
            (
                "native stop-loss",
                True,
                "on the exchange"
                if exchange.supports_native_stop
                else "synthetic (kept by the kernel: no stop orders on this venue)",
            )
        )
    finally:
        await exchange.close()
    return rows
