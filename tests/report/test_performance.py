from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.kernel.helpers import candle
from twinstar.bus.events import PositionClosed, PositionOpened
from twinstar.chart import write_equity_chart
from twinstar.intervals import interval_from_ms, interval_ms
from twinstar.performance import PerformanceTracker, Summary

pytestmark = pytest.mark.anyio


def _opened(qty: float, price: float) -> PositionOpened:
    return PositionOpened(ts_ns=0, exchange="sim", symbol="BTC/USD", side="long", qty=qty, entry_price=price, fee=1.0)


def _closed(pnl: float, fees: float) -> PositionClosed:
    return PositionClosed(
        ts_ns=0,
        exchange="sim",
        symbol="BTC/USD",
        side="long",
        qty=1,
        entry_price=100,
        exit_price=100 + pnl,
        pnl=pnl,
        fees=fees,
        reason="signal",
    )


async def test_equity_is_marked_to_market_and_trades_are_booked() -> None:
    tracker = PerformanceTracker(1000.0, "1m")
    tracker.on_candle(candle(0, 100.0))
    tracker.on_opened(_opened(2.0, 100.0))
    tracker.on_candle(candle(1, 110.0))  # +20 unrealised, -1 entry fee
    tracker.on_closed(_closed(17.0, 2.0))
    tracker.on_candle(candle(2, 90.0))  # flat again: only realised counts
    tracker.on_opened(_opened(1.0, 90.0))
    tracker.on_closed(_closed(-12.0, 2.0))
    tracker.on_candle(candle(3, 80.0))
    assert tracker.equity == [1000.0, 1019.0, 1017.0, 1005.0]
    summary = tracker.summary()
    returns = [1019 / 1000 - 1, 1017 / 1019 - 1, 1005 / 1017 - 1]
    mean = sum(returns) / 3
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / 2)
    assert summary == Summary(
        bars=4,
        trades=2,
        wins=1,
        win_rate_pct=50.0,
        gross_pnl=9.0,
        fees=4.0,
        net_pnl=5.0,
        initial_equity=1000.0,
        final_equity=1005.0,
        return_pct=pytest.approx(0.5),  # type: ignore[arg-type]
        max_drawdown_pct=pytest.approx(100 * 14 / 1019),  # type: ignore[arg-type]
        sharpe=pytest.approx(mean / std * math.sqrt(365 * 1440)),  # type: ignore[arg-type]
    )


def test_an_empty_run_has_a_neutral_summary() -> None:
    summary = PerformanceTracker(500.0, "1h").summary()
    assert (summary.trades, summary.final_equity, summary.sharpe, summary.max_drawdown_pct) == (0, 500.0, 0.0, 0.0)


def test_intervals_parse_and_print() -> None:
    assert [interval_ms(i) for i in ("1s", "15m", "4h", "1d", "1w")] == [
        1000,
        900_000,
        14_400_000,
        86_400_000,
        604_800_000,
    ]
    assert [interval_from_ms(ms) for ms in (60_000, 3_600_000, 7_200_000, 86_400_000)] == ["1m", "1h", "2h", "1d"]
    for bad in ("", "m", "0m", "5x", "1.5h"):
        with pytest.raises(ValueError, match="unknown candle interval"):
            interval_ms(bad)


def test_the_equity_chart_is_valid_svg_and_keeps_the_deepest_dip(tmp_path: Path) -> None:
    times = [i * 60_000 for i in range(50_000)]
    equity = [1000.0 + (i % 100) for i in range(50_000)]
    equity[31_337] = 1.0  # one deep dip must survive downsampling
    path = write_equity_chart(tmp_path / "equity.svg", times, equity, title="BTC <test>", baseline=1000.0)
    root = ET.fromstring(path.read_text())
    polyline = root.find("{http://www.w3.org/2000/svg}polyline")
    assert polyline is not None
    points = [tuple(map(float, p.split(","))) for p in polyline.attrib["points"].split()]
    assert len(points) <= 2_002
    assert max(y for _, y in points) == pytest.approx(370.0)  # the dip reaches the bottom of the plot
    assert "BTC &lt;test&gt;" in path.read_text()
