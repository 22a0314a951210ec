from __future__ import annotations

import re
from pathlib import Path

import msgspec
import orjson
import polars as pl
import pytest

from tests.kernel.helpers import candle
from twinstar import Config
from twinstar.candles import load_candles
from twinstar.data import bundled_candles_path
from twinstar.report import RunReport
from twinstar.report.html import MAX_CANDLES, bucketed, figure
from twinstar.report.trades import TRADE_SCHEMA
from twinstar.session import run_paper

pytestmark = pytest.mark.anyio


async def test_the_report_page_stands_alone_with_every_plot_element(tmp_path: Path) -> None:
    candles = load_candles(bundled_candles_path()).frame.head(2_000)
    result = await run_paper(Config(), candles, tmp_path)
    page = Path(result.chart).read_text()
    assert Path(result.chart).name == "report.html"
    assert not re.search(r"<script[^>]+src=", page)  # plotly.js is inside, nothing is fetched
    [spec] = re.findall(r'Plotly\.newPlot\(\s*"report-figure",\s*(\[.*?\]),\s*(\{.*?\}),\s*\{', page, re.S)[:1]
    traces = orjson.loads(spec[0])
    assert [(t["type"], t["name"]) for t in traces] == [
        ("candlestick", "price"),
        ("scatter", "stop"),
        ("scatter", "long entry"),
        ("scatter", "short entry"),
        ("scatter", "exit"),
        ("scatter", "equity"),
        ("scatter", "drawdown %"),
    ]
    trades = pl.read_parquet(result.report.trades_parquet)
    assert len(traces[2]["x"]) + len(traces[3]["x"]) == len(traces[4]["x"]) == trades.height > 20
    assert len(traces[0]["x"]) == 2_000  # short enough to show every candle
    assert None in traces[1]["y"]  # the stop line breaks while flat
    for label, value in result.summary.rows():
        assert f"<td>{label.replace('&', '&amp;')}</td><td>{value}</td>" in page
    assert page.count("<tr>") == 1 + len(result.summary.rows()) + 1 + trades.height  # two header rows
    assert msgspec.json.decode(Path(result.report.stats).read_bytes())["trades"] == trades.height


def test_a_million_bars_are_aggregated_and_every_trade_keeps_its_marker() -> None:
    n = 1_000_000
    index = pl.int_range(n, eager=True)
    price = 100 + (index % 1_000).cast(pl.Float64) / 100
    curve = pl.DataFrame(
        {
            "time_ms": index * 60_000,
            "equity": 10_000 + price,
            "open": price,
            "high": price + 1,
            "low": price - 1,
            "close": price,
        }
    ).with_columns(
        pl.when(pl.col("time_ms") == 777_777 * 60_000).then(5_000.0).otherwise(pl.col("equity")).alias("equity")
    )
    every = 100
    trades = pl.DataFrame(
        {
            "side": ["long", "short"] * (n // every // 2),
            "entry_time": (index.filter(index % every == 0) * 60_000).cast(pl.Datetime("ms", "UTC")),
            "exit_time": ((index.filter(index % every == 0) + 50) * 60_000).cast(pl.Datetime("ms", "UTC")),
            "entry_price": 100.0,
            "exit_price": 101.0,
            "exit_reason": "signal",
            "pnl": 1.0,
        }
    )
    stops = pl.DataFrame(
        {"time_ms": index * 60_000, "stop": price - 2}, schema={"time_ms": pl.Int64, "stop": pl.Float64}
    )
    spec = figure(curve, trades, stops, title="1M bars")
    bars, stop_line = bucketed(curve, stops)
    assert bars.height <= MAX_CANDLES and stop_line.height <= MAX_CANDLES
    assert (
        bars["drawdown"].min() == curve.select(-100 * (1 - pl.col("equity") / pl.col("equity").cum_max())).min().item()
    )
    traces = {trace["name"]: trace for trace in spec["data"]}
    assert len(traces["exit"]["x"]) == len(traces["long entry"]["x"]) + len(traces["short entry"]["x"]) == 10_000
    assert traces["exit"]["type"] == "scattergl"  # that many markers are drawn with WebGL
    # Responsive by bounding what is drawn, not by timing it: besides the trade markers, no trace carries
    # more points than the grouped candles.
    assert all(
        len(t["x"]) <= MAX_CANDLES for name, t in traces.items() if name not in ("exit", "long entry", "short entry")
    )
    assert set(TRADE_SCHEMA) >= set(trades.columns)


def test_without_plotly_the_chart_is_the_svg_equity_curve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("twinstar.report.run_report.plotly_available", lambda: False)
    report = RunReport(1_000.0)
    report.curve.on_candle(candle(0, 100.0))
    _, files = report.write(tmp_path, title="no plotly")
    assert Path(files.chart).name == "equity.svg"
    assert Path(files.chart).read_text().startswith("<svg")
