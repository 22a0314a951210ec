"""`python -m twinstar download`: fetch an exchange's candle history into the candle store."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from twinstar.config import Config, ExchangeConfig
    from twinstar.download.history import DownloadResult

# Candles per request: ccxt's own cap per venue (Binance futures serve 1500, but ccxt asks for 1000 at most).
PAGE_LIMITS: Final = {"binance": 1000, "binanceusdm": 1000, "bybit": 1000, "okx": 300, "bitget": 1000}
DEFAULT_PAGE_LIMIT: Final = 500
_MAX_GAPS_SHOWN: Final = 10


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `download` options to `parser` (cheap: ccxt is imported only to run)."""
    parser.add_argument("exchange", help="ccxt exchange id (binanceusdm, bybit, ...) or a venue name in --config")
    parser.add_argument("symbol", help="ccxt symbol, e.g. BTC/USDT:USDT")
    parser.add_argument("--interval", default="1m", help="candle interval (default 1m)")
    parser.add_argument("--since", required=True, help="first day or time wanted, UTC: 2024-01-01 or 2024-01-01T12:00")
    parser.add_argument("--until", help="end (exclusive), UTC like --since (default: now)")
    parser.add_argument("--store", help="candle store folder (default: storage.dir of --config, else ./candles)")
    parser.add_argument("--config", help="TOML config whose exchange settings (market type, base URL) are used")
    parser.add_argument("--market", choices=("swap", "spot"), help="market type (default from config: swap)")
    parser.add_argument("--api-base-url", help="send every request to this base URL (a proxy, gateway, emulator)")
    parser.add_argument("--limit", type=int, help="candles per request (default: the venue's maximum)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def parse_time_ms(text: str, option: str) -> int:
    """Read an ISO date or date-time (UTC unless it names an offset) as epoch milliseconds."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{option} {text!r}: expected a date like 2024-01-01 or 2024-01-01T12:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%d %H:%M")


def _venue(args: argparse.Namespace, config: Config) -> ExchangeConfig:
    """The exchange settings: the --config venue of that name or id, else the id alone; then the options."""
    import msgspec

    from twinstar.config import ExchangeConfig

    named = [v for v in config.venues() if args.exchange in (v.name, v.id) and v.id != "sim"]
    venue: ExchangeConfig = named[0] if named else ExchangeConfig(id=args.exchange)
    overrides = {"market_type": args.market, "api_base_url": args.api_base_url}
    return msgspec.structs.replace(venue, **{key: value for key, value in overrides.items() if value})


def _report(result: DownloadResult, series: str, store: Path) -> None:
    first, last = result.first_ms, result.last_ms
    span = f"{_when(first)} .. {_when(last)}" if first is not None and last is not None else "none"
    print(
        f"{series}: {result.fetched:,} candles fetched in {result.requests} requests, "
        f"{result.stored_before:,} were stored already; stored now: {span}"
    )
    print(f"store: {store}")
    if not result.gaps:
        print("gaps in the venue's history: none")
        return
    longest = max(result.gaps, key=lambda gap: gap.missing)
    print(
        f"gaps in the venue's history: {len(result.gaps)}, {sum(g.missing for g in result.gaps):,} candles missing, "
        f"longest {longest.missing:,} from {_when(longest.from_ms)}"
    )
    for gap in result.gaps[:_MAX_GAPS_SHOWN]:
        print(f"  {_when(gap.from_ms)} .. {_when(gap.to_ms)}  ({gap.missing:,} missing)")
    if len(result.gaps) > _MAX_GAPS_SHOWN:
        print(f"  ... and {len(result.gaps) - _MAX_GAPS_SHOWN} more")


async def run(args: argparse.Namespace) -> int:
    """Download, store, and print what was fetched and the venue's gaps."""
    from twinstar.adapters.base import ExchangeError
    from twinstar.adapters.venues import make_exchange
    from twinstar.clock import LiveClock
    from twinstar.config import Config
    from twinstar.download.history import HistoryDownload
    from twinstar.handlers.storage import CandleStorage, StorageLockedError
    from twinstar.intervals import interval_ms
    from twinstar.report.terminal import Progress

    length_ms = interval_ms(args.interval)
    clock = LiveClock()
    since_ms = parse_time_ms(args.since, "--since")
    until_ms = parse_time_ms(args.until, "--until") if args.until else clock.now_ms()
    if since_ms >= until_ms:
        raise ValueError(f"--since {args.since} is not before the end {_when(until_ms)}")
    if args.limit is not None and args.limit < 1:
        raise ValueError("--limit must be at least 1")
    config = Config.load(args.config) if args.config else Config()
    venue = _venue(args, config)
    store = Path(args.store or config.storage.dir or "candles")
    exchange = make_exchange(venue, clock)
    timeframes = getattr(getattr(exchange, "ccxt", None), "timeframes", None) or {}
    if timeframes and args.interval not in timeframes:
        await exchange.close()
        raise ValueError(f"{args.exchange} has no {args.interval} candles (it has {', '.join(timeframes)})")
    storage = CandleStorage(store, flush_every=10_000)
    try:
        await storage.start()
    except StorageLockedError as exc:
        await exchange.close()
        raise ValueError(str(exc)) from None
    download = HistoryDownload(
        exchange,
        storage,
        clock,
        symbol=args.symbol,
        interval=args.interval,
        length_ms=length_ms,
        page_limit=args.limit or PAGE_LIMITS.get(venue.id, DEFAULT_PAGE_LIMIT),
    )
    try:
        plan = download.plan(since_ms, until_ms)
        progress = None if args.quiet else Progress(plan.expected, f"{exchange.name} {args.symbol} {args.interval}")
        result = await download.run(plan, on_progress=progress.update if progress else None)
    except ExchangeError as exc:
        print(f"twinstar: error: {exc}", file=sys.stderr)
        return 1
    finally:
        await storage.stop()  # what was fetched stays: the next download resumes after it
        await exchange.close()
    if progress is not None and result.fetched < plan.expected:
        progress.update(plan.expected)  # the rest were gaps or not closed yet: the bar ends full
    _report(result, f"{exchange.name} {args.symbol} {args.interval}", store)
    return 0
