"""`python -m twinstar portfolio`: one backtest over several symbols, the whole and a per-symbol breakdown."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twinstar.portfolio.runner import PortfolioResult


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `portfolio` options to `parser`."""
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="SYMBOL=FILE|FILE",
        help="one symbol's candles (SYMBOL=FILE), or a file with a symbol column (all its symbols); repeat",
    )
    parser.add_argument("--config", help="TOML config with the other settings (strategy, risk, fees)")
    parser.add_argument("--strategy", help="strategy name (default from config: sma_cross)")
    parser.add_argument("--interval", help="candle interval (default: inferred from the data)")
    parser.add_argument("--out", help="results folder (default: runs/<time>-portfolio-<strategy>)")


def breakdown(result: PortfolioResult) -> str:
    """Each symbol's figures in one aligned table (PnL and return of its own trades over the whole equity)."""
    header = ("symbol", "trades", "win rate %", "net PnL", "return %", "max DD %", "Sharpe")
    rows = [header]
    for symbol, stats in result.by_symbol.items():
        win = "-" if stats.win_rate_pct is None else f"{stats.win_rate_pct:.1f}"
        sharpe = "-" if stats.sharpe is None else f"{stats.sharpe:.2f}"
        rows.append(
            (symbol, f"{stats.trades:,}", win, f"{stats.net_pnl:,.2f}", f"{stats.return_pct:.2f}",
             f"{stats.max_drawdown_pct:.2f}", sharpe)
        )  # fmt: skip
    widths = [max(len(row[k]) for row in rows) for k in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if k == 0 else cell.rjust(w) for k, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


async def run(args: argparse.Namespace) -> int:
    """Run the portfolio backtest, print both tables, write the statistics and trades."""
    import msgspec

    from twinstar.atomic import write_bytes_atomically
    from twinstar.config import Config
    from twinstar.handlers.strategy import make_strategy
    from twinstar.portfolio.runner import run_portfolio
    from twinstar.portfolio.sources import load_symbols
    from twinstar.report.chart import write_equity_chart
    from twinstar.report.terminal import print_table
    from twinstar.report.trades import write_trades

    config = Config.load(args.config) if args.config else Config()
    if args.strategy:
        config = msgspec.structs.replace(config, strategy=msgspec.structs.replace(config.strategy, name=args.strategy))
    make_strategy(config.strategy.name, dict(config.strategy.params))  # fail fast on a bad name
    symbols = load_symbols(args.data, interval=args.interval or None, gaps=config.data.gaps)
    result = await run_portfolio(config, symbols)
    stamp = dt.datetime.now(tz=dt.UTC).strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path("runs") / f"{stamp}-portfolio-{config.strategy.name}"
    out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(out / "stats.json", msgspec.json.format(msgspec.json.encode(result.summary)) + b"\n")
    by_symbol = msgspec.json.format(msgspec.json.encode(result.by_symbol)) + b"\n"
    write_bytes_atomically(out / "stats_by_symbol.json", by_symbol)
    parquet, _ = write_trades(result.trades, out)
    venue = result.config.venues()[0]
    title = f"portfolio: {config.strategy.name} on {', '.join(venue.symbols)} {venue.interval}"
    chart = write_equity_chart(
        out / "equity.svg",
        result.curve["time_ms"].to_list(),
        result.curve["equity"].to_list(),
        title=title,
        baseline=config.sim.initial_balance,
    )
    print_table(result.summary.rows(), title=title)
    print(breakdown(result))
    print(f"results: {out} (stats.json, stats_by_symbol.json, {parquet.name} and trades.csv)")
    print(f"  chart:   {chart}")
    return 0
