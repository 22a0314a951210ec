from __future__ import annotations

from twinstar.bus.events import Event, OrderPlaced, PositionClosed
from twinstar.divergence.compare import Fill, compare


def placed(ts_ns: int, cid: str, avg_price: float) -> OrderPlaced:
    return OrderPlaced(
        ts_ns=ts_ns,
        client_order_id=cid,
        order_id="1",
        exchange="binance",
        symbol="BTC/USDT",
        side="buy",
        intent="open",
        requested_qty=1.0,
        filled_qty=1.0,
        avg_price=avg_price,
        fee=0.1,
        status="closed",
        attempts=1,
        partial=False,
    )


def closed(ts_ns: int, pnl: float) -> PositionClosed:
    return PositionClosed(
        ts_ns=ts_ns,
        exchange="binance",
        symbol="BTC/USDT",
        side="long",
        qty=1.0,
        entry_price=100.0,
        exit_price=110.0,
        pnl=pnl,
        fees=0.2,
        reason="signal",
    )


def test_equal_decisions_at_other_times_do_not_depart() -> None:
    live: list[Event] = [placed(1, "a", 100.0), closed(2, 9.8)]
    replayed: list[Event] = [placed(50, "a", 100.0), closed(60, 9.8)]
    divergence = compare(live, replayed)
    assert divergence.index == -1
    assert divergence.original_pnl == divergence.replayed_pnl == 9.8


def test_first_differing_fill_is_reported_with_both_sides() -> None:
    live: list[Event] = [placed(1, "a", 100.0), closed(2, 9.8)]
    simulated: list[Event] = [placed(1, "a", 100.5), closed(2, 9.3)]
    divergence = compare(live, simulated)
    assert divergence.index == 0
    assert "100.5" in divergence.replayed and "100.5" not in divergence.original
    assert divergence.original_fills == [Fill(client_order_id="a", filled_qty=1.0, avg_price=100.0)]
    assert divergence.replayed_fills == [Fill(client_order_id="a", filled_qty=1.0, avg_price=100.5)]
    assert (divergence.original_pnl, divergence.replayed_pnl) == (9.8, 9.3)


def test_a_decision_only_one_side_made_departs_there() -> None:
    divergence = compare([placed(1, "a", 100.0)], [placed(1, "a", 100.0), closed(2, 1.0)])
    assert divergence.index == 1
    assert divergence.original == ""
    assert divergence.replayed.startswith("PositionClosed")
