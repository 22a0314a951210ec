"""The run report as one self-contained HTML file: price with trades and stops, equity, drawdown, tables.

Plotly, because one `pip install` gives interactive zoom and hover in a
single file that embeds its own JavaScript, with no server and no CDN.
Long runs stay responsive: candles, equity and drawdown are aggregated into
at most `MAX_CANDLES` buckets (drawdown keeps each bucket's deepest point),
while every entry and exit keeps its own marker at its exact time and price.
"""

from __future__ import annotations

import html
import importlib.util
import math
from pathlib import Path
from typing import Any, Final

import polars as pl

from twinstar.atomic import replace_atomically
from twinstar.report.statistics import Statistics

MAX_CANDLES: Final = 4_000
MAX_TABLE_TRADES: Final = 5_000  # the whole list is in trades.csv; a longer table only slows the page
_SVG_MARKERS: Final = 5_000  # above this many markers, WebGL draws them


def plotly_available() -> bool:
    """Whether plotly (the `report` extra) is installed."""
    return importlib.util.find_spec("plotly") is not None


def bucketed(curve: pl.DataFrame, stops: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Aggregate the curve into at most `MAX_CANDLES` buckets of whole bars, and the stop level onto the same buckets.

    Candles become OHLC of their bucket, equity its last value, drawdown
    (in percent, negative) its deepest; the stop level is the last one of each
    bucket, None where the bucket ended flat.
    """
    curve = curve.with_columns(drawdown=-100 * (1 - pl.col("equity") / pl.col("equity").cum_max()))
    size = max(1, math.ceil(curve.height / MAX_CANDLES))
    bars = (
        curve.with_row_index("bar")
        .group_by(pl.col("bar") // size, maintain_order=True)
        .agg(
            pl.col("time_ms").first(),
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("equity").last(),
            pl.col("drawdown").min(),
        )
        .drop("bar")
    )
    if size == 1 or stops.height == 0:
        return bars, stops
    edges = bars["time_ms"]
    stops = (
        stops.with_columns(bucket=edges.search_sorted(stops["time_ms"], side="right").cast(pl.Int64) - 1)
        .group_by("bucket", maintain_order=True)
        .agg(pl.col("time_ms").last(), pl.col("stop").last())
        .drop("bucket")
    )
    return bars, stops


def figure(curve: pl.DataFrame, trades: pl.DataFrame, stops: pl.DataFrame, *, title: str) -> dict[str, Any]:
    """The plotly figure, as its JSON spec: candles, entries, exits and stop level; equity and drawdown beneath.

    Built as plain data (times as epoch milliseconds on date axes) and not
    through plotly's validating objects, which take most of a second here.
    """
    bars, stop_line = bucketed(curve, stops)
    times = bars["time_ms"].to_list()
    marker_type = "scattergl" if 2 * trades.height > _SVG_MARKERS else "scatter"
    data: list[dict[str, Any]] = [
        {
            "type": "candlestick",
            "name": "price",
            "x": times,
            **{column: bars[column].to_list() for column in ("open", "high", "low", "close")},
        },
        {
            "type": "scatter",
            "name": "stop",
            "mode": "lines",
            "x": stop_line["time_ms"].to_list(),
            "y": stop_line["stop"].to_list(),
            "line": {"shape": "hv", "color": "#d97706", "width": 1},
            "connectgaps": False,
        },
    ]
    for side, symbol, colour in (("long", "triangle-up", "#15803d"), ("short", "triangle-down", "#b91c1c")):
        entries = trades.filter(pl.col("side") == side)
        data.append(
            {
                "type": marker_type,
                "name": f"{side} entry",
                "mode": "markers",
                "x": entries["entry_time"].dt.epoch("ms").to_list(),
                "y": entries["entry_price"].to_list(),
                "marker": {"symbol": symbol, "size": 9, "color": colour},
            }
        )
    hover = trades.select(pl.format("{} {}: PnL {}", "side", "exit_reason", pl.col("pnl").round(2))).to_series()
    data += [
        {
            "type": marker_type,
            "name": "exit",
            "mode": "markers",
            "x": trades["exit_time"].dt.epoch("ms").to_list(),
            "y": trades["exit_price"].to_list(),
            "text": hover.to_list(),
            "marker": {"symbol": "x-thin-open", "size": 7, "color": "#111827", "opacity": 0.6},  # many: keep them light
        },
        {
            "type": "scatter",
            "name": "equity",
            "x": times,
            "y": bars["equity"].to_list(),
            "line": {"color": "#1d4ed8"},
            "xaxis": "x2",
            "yaxis": "y2",
        },
        {
            "type": "scatter",
            "name": "drawdown %",
            "x": times,
            "y": bars["drawdown"].to_list(),
            "fill": "tozeroy",
            "line": {"color": "#b91c1c"},
            "xaxis": "x3",
            "yaxis": "y3",
        },
    ]
    return {"data": data, "layout": _layout(title)}


def _layout(title: str) -> dict[str, Any]:
    """Three panels on one time axis (zooming one zooms all), the bottom one labelled."""
    grid = {"gridcolor": "#e5e7eb", "zeroline": False}
    shared = {"type": "date", "matches": "x3", "showticklabels": False, **grid}
    return {
        "title": {"text": title},
        "height": 900,
        "hovermode": "x",
        "plot_bgcolor": "white",
        "legend": {"orientation": "h", "y": 1.04},
        "xaxis": {**shared, "anchor": "y", "rangeslider": {"visible": False}},
        "xaxis2": {**shared, "anchor": "y2"},
        "xaxis3": {"type": "date", "anchor": "y3", **grid},
        "yaxis": {"domain": [0.42, 1.0], "title": {"text": "price"}, **grid},
        "yaxis2": {"domain": [0.22, 0.4], "title": {"text": "equity"}, **grid},
        "yaxis3": {"domain": [0.0, 0.2], "title": {"text": "drawdown %"}, **grid},
    }


def _table(header: list[str], rows: list[list[str]], css: str) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _trade_rows(trades: pl.DataFrame) -> list[list[str]]:
    shown = trades.head(MAX_TABLE_TRADES).select(
        pl.col("entry_time", "exit_time").dt.strftime("%Y-%m-%d %H:%M"),
        "side",
        pl.col("size").round(6),
        pl.col("entry_price", "exit_price").round(4),
        "exit_reason",
        pl.col("fees", "pnl").round(2),
        pl.col("return_pct").round(2),
    )
    return [["" if cell is None else str(cell) for cell in row] for row in shown.iter_rows()]


_STYLE: Final = """body{font-family:sans-serif;margin:1.5em;color:#111827}
table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{padding:2px 10px;border-bottom:1px solid #e5e7eb}
.stats td:last-child,.trades td{text-align:right}"""


def write_html_report(
    path: Path, curve: pl.DataFrame, trades: pl.DataFrame, stops: pl.DataFrame, stats: Statistics, *, title: str
) -> Path:
    """Write the report page to `path`, atomically; plotly's JavaScript is embedded, so the file stands alone."""
    import plotly.io

    spec = figure(curve, trades, stops, title=title)
    plot = plotly.io.to_html(spec, validate=False, full_html=False, include_plotlyjs=True, div_id="report-figure")
    note = ""
    if trades.height > MAX_TABLE_TRADES:
        note = f"<p>First {MAX_TABLE_TRADES:,} of {trades.height:,} trades; all are in trades.csv.</p>"
    header = ["entry", "exit", "side", "size", "entry price", "exit price", "exit reason", "fees", "PnL", "return %"]
    parts = [
        f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body><h1>{html.escape(title)}</h1>
""",
        plot,
        f"""
<h2>Statistics</h2>{_table(["", ""], [list(row) for row in stats.rows()], "stats")}
<h2>Trades</h2>{note}{_table(header, _trade_rows(trades), "trades")}
</body></html>
""",
    ]

    def write(temp: Path) -> None:
        # Part by part: the page (10 MB with 40k trades) is never copied whole, as text or as bytes.
        with temp.open("w", encoding="utf-8", newline="\n") as page:
            page.writelines(parts)

    replace_atomically(path, write)
    return path
