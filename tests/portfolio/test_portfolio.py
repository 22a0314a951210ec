"""Several symbols in one backtest: one account, the whole and each symbol's figures."""

from __future__ import annotations

from pathlib import Path

import msgspec
import polars as pl
import pytest

from twinstar.backtest import run_backtest
from twinstar.candles import CandleFileError
from twinstar.cli import COMMANDS, build_parser
from twinstar.config import Config, RiskConfig
from twinstar.data import bundled_candles_path
from twinstar.portfolio.runner import run_portfolio
from twinstar.portfolio.sources import load_symbols
from twinstar.report.statistics import Statistics

pytestmark = pytest.mark.anyio

# A fixed quantity per entry: each symbol's trades then do not depend on what the other holds.
FIXED = Config(risk=RiskConfig(order_qty=0.01))


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    """BTC's first 1,500 hours, and a second market: a later stretch of BTC moved onto the same hours."""
    bundled = pl.read_parquet(bundled_candles_path())
    btc = bundled.head(1_500)
    other = bundled.slice(9_000, 1_500).with_columns(open_time_ms=btc["open_time_ms"])
    paths = (tmp_path / "btc.parquet", tmp_path / "other.parquet")
    btc.write_parquet(paths[0])
    other.write_parquet(paths[1])
    return paths


def _close(a: Statistics, b: Statistics) -> bool:
    return msgspec.structs.asdict(a) == pytest.approx(msgspec.structs.asdict(b), rel=1e-9, abs=1e-9)


async def test_one_symbol_gives_the_figures_of_a_plain_backtest(files: tuple[Path, Path]) -> None:
    portfolio = await run_portfolio(Config(), load_symbols([f"BTC/USD={files[0]}"], interval=None, gaps="reset"))
    plain = await run_backtest(Config(), files[0])
    assert _close(portfolio.summary, plain.summary)
    assert _close(portfolio.by_symbol["BTC/USD"], plain.summary)


async def test_each_symbol_trades_as_alone_and_the_account_adds_them_up(files: tuple[Path, Path]) -> None:
    both = await run_portfolio(
        FIXED, load_symbols([f"BTC/USD={files[0]}", f"ETH/USD={files[1]}"], interval=None, gaps="reset")
    )
    alone = {
        symbol: await run_portfolio(FIXED, load_symbols([f"{symbol}={path}"], interval=None, gaps="reset"))
        for symbol, path in (("BTC/USD", files[0]), ("ETH/USD", files[1]))
    }
    for symbol, single in alone.items():
        assert both.trades.filter(pl.col("symbol") == symbol).equals(single.trades)
        assert _close(both.by_symbol[symbol], single.summary)
    summary = both.summary
    assert summary.trades == sum(single.summary.trades for single in alone.values()) > 0
    assert summary.net_pnl == pytest.approx(sum(single.summary.net_pnl for single in alone.values()))
    # Every open position is marked at its own symbol's close: the last equity is the money made.
    assert summary.final_equity == pytest.approx(FIXED.sim.initial_balance + summary.net_pnl)
    assert summary.bars == 1_500  # one row per hour, not per candle
    expected_hold = sum(single.summary.buy_hold_return_pct for single in alone.values()) / 2
    assert summary.buy_hold_return_pct == pytest.approx(expected_hold)  # equal parts of both, held


async def test_one_file_with_a_symbol_column_is_the_same_as_one_file_per_symbol(
    files: tuple[Path, Path], tmp_path: Path
) -> None:
    frames = [
        pl.read_parquet(path).with_columns(symbol=pl.lit(name))
        for path, name in zip(files, ("BTC/USD", "ETH/USD"), strict=True)
    ]
    combined = tmp_path / "both.csv"
    pl.concat(frames).write_csv(combined)
    from_one = await run_portfolio(FIXED, load_symbols([str(combined)], interval=None, gaps="reset"))
    from_two = await run_portfolio(
        FIXED, load_symbols([f"BTC/USD={files[0]}", f"ETH/USD={files[1]}"], interval=None, gaps="reset")
    )
    assert (from_one.summary, from_one.by_symbol) == (from_two.summary, from_two.by_symbol)
    assert from_one.trades.equals(from_two.trades)


def test_bad_symbol_lists_get_one_line(files: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(CandleFileError, match=r"^each symbol once, and named: got 'BTC/USD', 'BTC/USD'$"):
        load_symbols([f"BTC/USD={files[0]}", f"BTC/USD={files[1]}"], interval=None, gaps="reset")
    with pytest.raises(CandleFileError, match=r"no symbol column; name the symbol as SYMBOL="):
        load_symbols([str(files[0])], interval=None, gaps="reset")
    daily = tmp_path / "daily.parquet"
    pl.read_parquet(files[1]).gather_every(24).write_parquet(daily)
    with pytest.raises(CandleFileError, match=r"^the symbols' candles differ in interval \(1d, 1h\): use one$"):
        load_symbols([f"BTC/USD={files[0]}", f"ETH/USD={daily}"], interval=None, gaps="reset")


async def test_the_command_prints_the_whole_and_each_symbol_and_writes_them(
    files: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    data = ["--data", f"BTC/USD={files[0]}", "--data", f"ETH/USD={files[1]}"]
    args = build_parser().parse_args(["portfolio", *data, "--out", str(out)])
    assert await COMMANDS["portfolio"](args) == 0
    expected = await run_portfolio(
        Config(), load_symbols([f"BTC/USD={files[0]}", f"ETH/USD={files[1]}"], interval=None, gaps="reset")
    )
    printed = capsys.readouterr().out.splitlines()
    assert msgspec.json.decode((out / "stats.json").read_bytes(), type=Statistics) == expected.summary
    by_symbol = msgspec.json.decode((out / "stats_by_symbol.json").read_bytes(), type=dict[str, Statistics])
    assert by_symbol == expected.by_symbol
    assert pl.read_parquet(out / "trades.parquet").equals(expected.trades)
    assert printed[0] == "portfolio: sma_cross on BTC/USD, ETH/USD 1h"
    assert printed[-1] == f"  chart:   {out / 'equity.svg'}"
    assert "<polyline" in (out / "equity.svg").read_text()  # the account's equity, drawn
    assert [line.split()[:2] for line in printed[-5:-2]] == [
        ["symbol", "trades"],
        ["BTC/USD", f"{expected.by_symbol['BTC/USD'].trades:,}"],
        ["ETH/USD", f"{expected.by_symbol['ETH/USD'].trades:,}"],
    ]
