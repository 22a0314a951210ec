"""A close waiting for its fee keeps its symbol's later events behind it, and gets the fee once read."""

from __future__ import annotations

import pytest

from twinstar.bus.events import PositionClosed, PositionOpened, SLUpdated
from twinstar.money.exit_fees import PendingExitFees

CLOSED = PositionClosed(
    ts_ns=1,
    exchange="binanceusdm",
    symbol="BTC/USDT:USDT",
    side="long",
    qty=0.01,
    entry_price=30_000.0,
    exit_price=30_300.0,
    pnl=3.0 - 0.15,
    fees=0.15,
    reason="signal",
)
OPENED = PositionOpened(
    ts_ns=2, exchange="binanceusdm", symbol="BTC/USDT:USDT", side="short", qty=0.01, entry_price=30_300.0, fee=0.0
)
STOP = SLUpdated(ts_ns=3, exchange="binanceusdm", symbol="BTC/USDT:USDT", stop_price=30_906.0, qty=0.01)
OTHER = SLUpdated(ts_ns=4, exchange="binanceusdm", symbol="ETH/USDT:USDT", stop_price=2_000.0, qty=1.0)


def test_the_close_goes_out_with_its_fee_then_what_waited_behind_it() -> None:
    pending = PendingExitFees()
    pending.hold(CLOSED, "42")
    held = [pending.defer(e) for e in (OPENED, STOP, OTHER)]
    assert (held, pending.order_id("BTC/USDT:USDT"), repr(pending)) == (
        [True, True, False],  # another symbol's event is not held
        "42",
        "PendingExitFees({'BTC/USDT:USDT': ('42', 2)})",
    )
    assert pending.settle("BTC/USDT:USDT", "41", 0.1515) == []  # not that close's order: nothing to settle
    settled = pending.settle("BTC/USDT:USDT", "42", 0.1515)
    assert settled[1:] == [OPENED, STOP]
    closed = settled[0]
    assert isinstance(closed, PositionClosed)
    assert (round(closed.fees, 9), round(closed.pnl, 9)) == (0.3015, round(3.0 - 0.3015, 9))
    assert (bool(pending), pending.defer(STOP), pending.settle("BTC/USDT:USDT", "42", 0.1)) == (False, False, [])


def test_a_second_close_of_the_symbol_waits_for_the_first_to_settle() -> None:
    pending = PendingExitFees()
    pending.hold(CLOSED, "42")
    with pytest.raises(ValueError, match="an earlier close still waits for its fee"):
        pending.hold(CLOSED, "43")
