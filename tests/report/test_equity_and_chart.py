from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.kernel.helpers import candle
from twinstar.bus.events import PositionClosed, PositionOpened
from twinstar.intervals import interval_from_ms, interval_ms
from twinstar.report.chart import write_equity_chart
from twinstar.report.equity import EquityCurve


def _opened(qty: float, price: float) -> PositionOpened:
    return PositionOpened(ts_ns=0, exchange="sim", symbol="BTC/USD", side="long", qty=qty, entry_price=price, fee=1.0)


def _closed(qty: float, pnl: float, fees: float) -> PositionClosed:
    return PositionClosed(
        ts_ns=0,
        exchange="sim",
        symbol="BTC/USD",
        side="long",
        qty=qty,
        entry_price=100,
        exit_price=100 + pnl,
        pnl=pnl,
        fees=fees,
        reason="signal",
    )


def test_equity_is_marked_to_market_and_trades_are_booked() -> None:
    curve = EquityCurve(1000.0)
    curve.on_candle(candle(0, 100.0))
    curve.on_opened(_opened(2.0, 100.0))
    curve.on_candle(candle(1, 110.0))  # +20 unrealised, -1 entry fee
    curve.on_closed(_closed(2.0, 17.0, 2.0))
    curve.on_candle(candle(2, 90.0))  # flat again: only realised counts
    curve.on_opened(_opened(1.0, 90.0))
    curve.on_closed(_closed(1.0, -12.0, 2.0))
    curve.on_candle(candle(3, 80.0))
    assert curve.equity == [1000.0, 1019.0, 1017.0, 1005.0]
    assert curve.frame().select("time_ms", "equity", "close").rows() == [
        (0, 1000.0, 100.0),
        (60_000, 1019.0, 110.0),
        (120_000, 1017.0, 90.0),
        (180_000, 1005.0, 80.0),
    ]
    assert repr(curve) == "EquityCurve(bars=4, open=[], realised=5.00)"


def test_a_partial_close_keeps_the_rest_marked_with_its_share_of_the_entry_fee() -> None:
    curve = EquityCurve(1000.0)
    curve.on_opened(_opened(2.0, 100.0))
    curve.on_closed(_closed(1.0, 9.5, 1.0))  # half of the 1.0 entry fee went with it
    curve.on_candle(candle(0, 110.0))
    assert curve.equity == [1000.0 + 9.5 + 10.0 - 0.5]


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
