from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pytest

from tests.kernel.helpers import candle
from twinstar.bus.events import PositionClosed, PositionOpened, PositionSide, SLUpdated
from twinstar.report.trades import TRADE_SCHEMA, TradeBook, write_trades

MINUTE_NS = 60_000_000_000


def _opened(minute: int, side: PositionSide, qty: float, price: float) -> PositionOpened:
    return PositionOpened(
        ts_ns=minute * MINUTE_NS, exchange="sim", symbol="BTC/USD", side=side, qty=qty, entry_price=price, fee=1.0
    )


def _stop(minute: int, price: float) -> SLUpdated:
    return SLUpdated(ts_ns=minute * MINUTE_NS, exchange="sim", symbol="BTC/USD", stop_price=price, qty=1.0)


def _closed(minute: int, side: PositionSide, qty: float, entry: float, exit_: float, reason: str) -> PositionClosed:
    move = (exit_ - entry) * (1 if side == "long" else -1)
    return PositionClosed(
        ts_ns=minute * MINUTE_NS,
        exchange="sim",
        symbol="BTC/USD",
        side=side,
        qty=qty,
        entry_price=entry,
        exit_price=exit_,
        pnl=qty * move - 2.0,
        fees=2.0,
        reason=reason,
    )


def _at(minute: int) -> dt.datetime:
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=minute)


def _book() -> TradeBook:
    book = TradeBook()
    book.on_opened(_opened(1, "long", 2.0, 100.0))
    book.on_stop(_stop(1, 98.0))
    book.on_closed(_closed(3, "long", 1.0, 100.0, 104.0, "signal"))  # a partial close is a trade of its own
    book.on_closed(_closed(4, "long", 1.0, 100.0, 98.0, "stop_loss"))
    book.on_opened(_opened(5, "short", 1.0, 100.0))
    book.on_stop(_stop(5, 102.0))
    book.on_stop(_stop(6, 101.0))
    book.on_closed(_closed(7, "short", 1.0, 100.0, 101.0, "stop_loss"))  # the stop had moved: trailing
    book.on_opened(_opened(8, "long", 1.0, 100.0))
    book.on_closed(_closed(9, "long", 1.0, 100.0, 90.0, "emergency_exit"))
    book.on_opened(_opened(10, "short", 4.0, 50.0))
    book.on_candle(candle(11, 45.0))  # stamped at minute 11
    return book


def test_every_trade_with_its_exit_reason_and_the_open_one_marked_at_the_end() -> None:
    book = _book()
    assert repr(book) == "TradeBook(trades=4, open=[('sim', 'BTC/USD')])"
    frame = book.frame()
    assert frame.schema == pl.Schema(TRADE_SCHEMA)
    assert frame.drop("exchange", "symbol").rows() == [
        ("long", 1.0, _at(1), _at(3), 100.0, 104.0, 98.0, "signal", 2.0, 0.0, 0.0, 2.0, 2.0),
        ("long", 1.0, _at(1), _at(4), 100.0, 98.0, 98.0, "stop", 2.0, 0.0, 0.0, -4.0, -4.0),
        ("short", 1.0, _at(5), _at(7), 100.0, 101.0, 101.0, "trailing_stop", 2.0, 0.0, 0.0, -3.0, -3.0),
        ("long", 1.0, _at(8), _at(9), 100.0, 90.0, None, "emergency", 2.0, 0.0, 0.0, -12.0, -12.0),
        ("short", 4.0, _at(10), _at(11), 50.0, 45.0, None, "end_of_data", 1.0, 0.0, 0.0, 19.0, pytest.approx(9.5)),
    ]
    assert book.frame().height == 5  # marking the open position does not book it


def test_the_trade_list_is_written_as_parquet_and_csv(tmp_path: Path) -> None:
    frame = _book().frame()
    parquet, csv = write_trades(frame, tmp_path)
    assert pl.read_parquet(parquet).equals(frame)
    assert pl.read_csv(csv, schema=TRADE_SCHEMA).equals(frame)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trades.csv", "trades.parquet"]
