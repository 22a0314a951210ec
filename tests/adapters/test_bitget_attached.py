"""Bitget: an entry carries its stop-loss and take-profit, which become the position's own TP/SL plans.

Real, unmodified ccxt talks to `recorded_venue` on 127.0.0.1. Recorded bodies
(`data/ccxt-static/bitget.json`, see PROVENANCE.md): the LTC/USDT:USDT market,
the filled LTC-USDT market order of `GET /api/v2/mix/order/detail` and the
LTC-USDT 0.1 long of `GET /api/v2/mix/position/all-position`. The plan bodies
(`orders-plan-pending`, `orders-plan-history`, `modify-tpsl-order`,
`cancel-plan-order`) are built below in the shape Bitget documents them, each
with its page.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.adapters.recorded_venue import RecordedVenue, recorded, recorded_venue
from tests.adapters.test_parity_bitget import DETAIL, PLACE, POSITIONS, UTA_PROBE, _bitget, _ids_only
from tests.pipeline.harness import Tap
from twinstar.adapters.base import OpenOrder, OrderResult
from twinstar.adapters.bitget import POSITION_STOP_CID, POSITION_TP_CID
from twinstar.bus.bus import Bus
from twinstar.bus.events import OrderPlaced, PositionReconciled, SignalFired, SLUpdated
from twinstar.clock import SimClock
from twinstar.config import ExecutionConfig, RiskConfig
from twinstar.handlers.execution import ExecutionHandler, client_order_id
from twinstar.handlers.journal import Journal, StopInForce
from twinstar.handlers.position import PositionHandler

pytestmark = pytest.mark.anyio
LTC = "LTC/USDT:USDT"
PENDING_ORDERS = ("GET", "/api/v2/mix/order/orders-pending")
PLAN_PENDING = ("GET", "/api/v2/mix/order/orders-plan-pending")
PLAN_HISTORY = ("GET", "/api/v2/mix/order/orders-plan-history")
MODIFY_TPSL = ("POST", "/api/v2/mix/order/modify-tpsl-order")
CANCEL_PLAN = ("POST", "/api/v2/mix/order/cancel-plan-order")
PLACE_PLAN = ("POST", "/api/v2/mix/order/place-plan-order")


def _ok(data: Any) -> dict[str, Any]:
    """Bitget's envelope (every v2 page: `code` "00000", `msg`, `requestTime`, `data`)."""
    return {"code": "00000", "msg": "success", "requestTime": 1708000000000, "data": data}


def _plan_row(plan: str, order_id: str, trigger: str, **fields: str) -> dict[str, str]:
    """One `entrustedList` row of orders-plan-pending / orders-plan-history.

    Fields as https://www.bitget.com/api-doc/contract/plan/get-orders-plan-pending lists them; a position
    TP/SL plan has no size (place-tpsl-order: size "NOT required when planType is pos_profit or pos_loss"),
    its client id is Bitget's own, and a one-way position is `posSide` net.
    """
    return {
        "planType": plan,
        "symbol": "LTCUSDT",
        "size": "",
        "orderId": order_id,
        "clientOid": f"{order_id}1",
        "price": "",
        "executePrice": "0",
        "callbackRatio": "",
        "triggerPrice": trigger,
        "triggerType": "fill_price",
        "planStatus": "live",
        "side": "sell",
        "posSide": "net",
        "marginCoin": "USDT",
        "marginMode": "crossed",
        "enterPointSource": "API",
        "tradeSide": "",
        "posMode": "one_way_mode",
        "orderType": "market",
        "orderSource": "pos_loss_market" if plan == "pos_loss" else "pos_profit_market",
        "stopSurplusTriggerPrice": "",
        "stopSurplusExecutePrice": "",
        "stopSurplusTriggerType": "",
        "stopLossTriggerPrice": "",
        "stopLossExecutePrice": "",
        "stopLossTriggerType": "",
        "cTime": "1708000000100",
        "uTime": "1708000000100",
        **fields,
    }


POS_LOSS = _plan_row("pos_loss", "2001", "60")
POS_PROFIT = _plan_row("pos_profit", "2002", "80")


def _plans(*rows: dict[str, str]) -> dict[str, Any]:
    return _ok({"entrustedList": list(rows), "endId": rows[-1]["orderId"] if rows else ""})


def _replies(routes: dict[tuple[str, str], list[Any]] | None = None) -> dict[tuple[str, str], list[Any]]:
    """The replies every test starts from, `routes` replacing some."""
    bitget = recorded("bitget")
    replies: dict[tuple[str, str], list[Any]] = {
        PLACE: [_ids_only("two-1")],
        DETAIL: [bitget["filledSwapMarketOrder"]],
        POSITIONS: [bitget["fetchPositions"]],
        PENDING_ORDERS: [_ok({"entrustedList": [], "endId": ""})],
        # ccxt asks normal_plan first, then profit_loss: the same path, answered in that order.
        PLAN_PENDING: [_plans(), _plans(POS_LOSS, POS_PROFIT)],
        # https://www.bitget.com/api-doc/contract/plan/Modify-Tpsl-Order: data {orderId, clientOid}
        MODIFY_TPSL: [_ok({"orderId": "2001", "clientOid": "20011"})],
    }
    return replies | (routes or {})


def _paths(venue: RecordedVenue) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in venue.requests]


async def test_an_entry_carries_its_stop_and_take_profit_as_preset_position_tpsl() -> None:
    async with recorded_venue(_replies()) as venue:
        adapter = _bitget(venue)
        try:
            placed = await adapter.place_market_order(
                LTC,
                "buy",
                0.1,
                client_order_id="two-1",
                stop_price=60.004,
                stop_client_order_id="tws-1",
                take_profit_price=80.0,
            )
        finally:
            await adapter.close()
    [create] = venue.sent(*PLACE)
    # https://www.bitget.com/api-doc/contract/trade/Place-Order: presetStopSurplusPrice / presetStopLossPrice,
    # strings at the market's tick; no execute price: the exits fill at market.
    assert json.loads(create.body) == {
        "symbol": "LTCUSDT",
        "productType": "USDT-FUTURES",
        "marginCoin": "USDT",
        "marginMode": "crossed",
        "orderType": "market",
        "force": "GTC",
        "side": "buy",
        "size": "0.1",
        "clientOid": "two-1",
        "presetStopLossPrice": "60",
        "presetStopSurplusPrice": "80",
    }
    assert _paths(venue) == [UTA_PROBE, PLACE, DETAIL]  # nothing placed after the fill
    # Bitget takes the entry with its exits or refuses it: protected from the fill on, by the position's plans.
    assert (placed.ok, placed.filled_qty, placed.stop_price, placed.stop_client_order_id) == (
        True,
        0.1,
        60.0,
        POSITION_STOP_CID,
    )
    assert (placed.take_profit_price, placed.take_profit_client_order_id) == (80.0, POSITION_TP_CID)


async def test_the_attached_stop_is_listed_under_profit_loss_with_the_positions_size_and_side() -> None:
    async with recorded_venue(_replies()) as venue:
        adapter = _bitget(venue)
        try:
            orders = await adapter.fetch_open_orders(LTC)
        finally:
            await adapter.close()
    assert [r.query.get("planType") for r in venue.sent(*PLAN_PENDING)] == ["normal_plan", "profit_loss"]
    assert venue.sent(*PLAN_PENDING)[1].query == {
        "symbol": "LTCUSDT",
        "productType": "USDT-FUTURES",
        "planType": "profit_loss",
    }
    assert orders == [
        OpenOrder(
            symbol=LTC,
            order_id="2001",
            client_order_id=POSITION_STOP_CID,
            side="sell",
            qty=0.1,  # the recorded position's size: the plan covers the whole position
            stop_price=60.0,
            reduce_only=True,
            position_stop=True,
        ),
        OpenOrder(
            symbol=LTC,
            order_id="2002",
            client_order_id=POSITION_TP_CID,
            side="sell",
            qty=0.1,
            stop_price=80.0,
            reduce_only=True,
            take_profit=True,
        ),
    ]


async def test_moving_the_attached_stop_modifies_the_position_plan_in_place() -> None:
    async with recorded_venue(_replies({PLAN_PENDING: [_plans(POS_LOSS, POS_PROFIT)]})) as venue:
        adapter = _bitget(venue)
        try:
            attached = OpenOrder(symbol=LTC, order_id="", client_order_id=POSITION_STOP_CID, side="sell", qty=0.1)
            adapter.adopt_stop(LTC, attached)  # as the position handler adopts an entry's attached stop
            first = await adapter.update_stop_loss(LTC, "long", 0.1, 62.004, client_order_id="tws-2")
            second = await adapter.update_stop_loss(LTC, "long", 0.1, 63.0, client_order_id="tws-3")
        finally:
            await adapter.close()
    bodies = [json.loads(r.body) for r in venue.sent(*MODIFY_TPSL)]
    # Modify-Tpsl-Order: orderId, marginCoin, productType, symbol, triggerPrice; `"size": ""` for position TP/SL.
    assert bodies == [
        {
            "orderId": "2001",
            "symbol": "LTCUSDT",
            "marginCoin": "USDT",
            "triggerPrice": trigger,
            "size": "",
            "productType": "USDT-FUTURES",
        }
        for trigger in ("62", "63")
    ]
    # Found once by listing (profit_loss), then amended by its id: no second stop, nothing cancelled.
    assert _paths(venue) == [PLAN_PENDING, MODIFY_TPSL, MODIFY_TPSL]
    assert [(r.ok, r.client_order_id, r.order_id) for r in (first, second)] == [
        (True, POSITION_STOP_CID, "2001"),
        (True, POSITION_STOP_CID, "2001"),
    ]


async def test_a_vanished_position_stop_is_replaced_never_left_missing() -> None:
    replies = _replies({PLAN_PENDING: [_plans()], PLACE_PLAN: [_ids_only("tws-2")]})
    async with recorded_venue(replies) as venue:
        adapter = _bitget(venue)
        try:
            adapter.adopt_stop(
                LTC, OpenOrder(symbol=LTC, order_id="", client_order_id=POSITION_STOP_CID, side="sell", qty=0.1)
            )
            moved = await adapter.update_stop_loss(LTC, "long", 0.1, 62.0, client_order_id="tws-2")
        finally:
            await adapter.close()
    # Not found to amend: a plain stop goes in; the old one, looked for to cancel, is gone already.
    assert _paths(venue) == [PLAN_PENDING, UTA_PROBE, PLACE_PLAN, PLAN_PENDING]
    assert (moved.ok, moved.client_order_id) == (True, "tws-2")
    assert venue.sent(*CANCEL_PLAN) == []


async def test_cancelling_a_listed_position_stop_names_its_plan_type() -> None:
    cancelled = _ok({"successList": [{"orderId": "2001", "clientOid": "20011"}], "failureList": []})
    async with recorded_venue(_replies({CANCEL_PLAN: [cancelled]})) as venue:
        adapter = _bitget(venue)
        try:
            [stop, _] = await adapter.fetch_open_orders(LTC)
            result = await adapter.cancel_order(LTC, stop)
            nothing = await adapter.cancel_stop_loss(LTC)  # no stop known: nothing to send
        finally:
            await adapter.close()
    [cancel] = venue.sent(*CANCEL_PLAN)
    # https://www.bitget.com/api-doc/contract/plan/Cancel-Plan-Order: planType pos_loss, else normal_plan.
    assert json.loads(cancel.body) == {
        "symbol": "LTCUSDT",
        "orderIdList": [{"orderId": "2001"}],
        "productType": "USDT-FUTURES",
        "planType": "pos_loss",
    }
    assert result.ok and nothing.ok


async def test_after_the_close_the_position_stop_is_not_cancelled_it_went_with_the_position() -> None:
    async with recorded_venue(_replies()) as venue:
        adapter = _bitget(venue)
        try:
            attached = OpenOrder(symbol=LTC, order_id="", client_order_id=POSITION_STOP_CID, side="sell", qty=0.1)
            adapter.adopt_stop(LTC, attached)
            result = await adapter.cancel_stop_loss(LTC)
        finally:
            await adapter.close()
    assert (result.ok, result.client_order_id, result.status) == (True, POSITION_STOP_CID, "canceled")
    assert venue.requests == []


async def test_the_stops_trigger_fill_is_read_from_the_plan_history() -> None:
    fill = copy.deepcopy(recorded("bitget")["filledSwapMarketOrder"])
    fill["data"] |= {"orderId": "3001", "side": "sell", "reduceOnly": "YES", "priceAvg": "59.9", "tradeSide": "close"}
    # https://www.bitget.com/api-doc/contract/plan/orders-plan-history: planStatus executed, executeOrderId.
    older = _plan_row("pos_loss", "1999", "55", planStatus="executed", executeOrderId="2999", uTime="1707000000000")
    fired = _plan_row("pos_loss", "2001", "60", planStatus="executed", executeOrderId="3001", uTime="1708000000900")
    profit = _plan_row("pos_profit", "2002", "80", planStatus="cancelled", uTime="1708000000900")
    replies = _replies({PLAN_PENDING: [_plans()], PLAN_HISTORY: [_plans(older, fired, profit)], DETAIL: [fill]})
    async with recorded_venue(replies) as venue:
        adapter = _bitget(venue)
        try:
            found = await adapter.fetch_order(LTC, POSITION_STOP_CID)
        finally:
            await adapter.close()
    assert venue.sent(*PLAN_HISTORY)[0].query == {
        "symbol": "LTCUSDT",
        "planType": "profit_loss",
        "planStatus": "executed",
        "productType": "USDT-FUTURES",
    }
    assert venue.sent(*DETAIL)[0].query == {"symbol": "LTCUSDT", "productType": "USDT-FUTURES", "orderId": "3001"}
    assert found == OrderResult.success(
        client_order_id="1139544620049014787",
        order_id="3001",
        status="filled",
        requested_qty=0.1,
        filled_qty=0.1,
        avg_price=59.9,
        fee=0.0041244,
        timestamp_ms=1707414529811,
    )


async def test_after_a_restart_the_position_and_its_attached_stop_are_adopted_no_second_stop(tmp_path: Path) -> None:
    journal_path = tmp_path / "journal"
    before = Journal(journal_path)
    before.write(
        StopInForce(
            exchange="bitget",
            symbol=LTC,
            side="long",
            qty=0.1,
            entry_price=72.66,
            stop_price=60.0,
            cid=POSITION_STOP_CID,
        )
    )
    before.close()
    leftover = _plan_row("normal_plan", "1990", "58", clientOid="tws-old", size="0.1")  # a stop of ours, replaced
    cancelled = _ok({"successList": [{"orderId": "1990", "clientOid": "tws-old"}], "failureList": []})
    replies = _replies({PLAN_PENDING: [_plans(leftover), _plans(POS_LOSS, POS_PROFIT)], CANCEL_PLAN: [cancelled]})
    async with recorded_venue(replies) as venue:
        adapter = _bitget(venue)
        clock = SimClock(0, autojump=True)
        bus = Bus(clock, mode="replay")
        tap = Tap()
        tap.attach(bus)
        journal = Journal(journal_path)
        handler = PositionHandler(adapter, clock, RiskConfig(order_qty=0.1), journal=journal, symbols=[LTC])
        handler.attach(bus)
        try:
            await handler.start()
        finally:
            journal.close()
            await adapter.close()
    reconciled = tap.of(PositionReconciled)
    assert [(e.action, e.detail) for e in reconciled] == [  # type: ignore[attr-defined]
        ("adopted", "long 0.1 @ 72.66"),
        ("orphan_cancelled", "tws-old: another stop of ours guards the position"),
        ("stop_adopted", POSITION_STOP_CID),
    ]
    [cancel] = venue.sent(*CANCEL_PLAN)
    assert json.loads(cancel.body)["orderIdList"] == [{"orderId": "1990"}]  # the plain one; the position's stays
    assert "planType" not in json.loads(cancel.body)  # normal_plan, Bitget's default
    assert venue.sent(*PLACE_PLAN) == [] and venue.sent(*PLACE) == []  # no second stop placed
    position = handler.positions[LTC]
    assert (position.qty, position.stop_price, position.stop_cid) == (0.1, 60.0, POSITION_STOP_CID)


async def test_through_the_kernels_handlers_the_position_stop_is_journaled_and_none_is_added(tmp_path: Path) -> None:
    t0 = 1_707_414_480_000
    cid = client_order_id("t", LTC, t0, "open")
    filled = copy.deepcopy(recorded("bitget")["filledSwapMarketOrder"])
    filled["data"] |= {"clientOid": cid, "presetStopLossPrice": "60"}  # the detail echoes the preset stop
    flat = _ok([])
    async with recorded_venue(_replies({PLACE: [_ids_only(cid)], DETAIL: [filled], POSITIONS: [flat]})) as venue:
        adapter = _bitget(venue)
        clock = SimClock(0, autojump=True)
        bus = Bus(clock, mode="replay")
        tap = Tap()
        tap.attach(bus)
        journal = Journal(tmp_path / "journal")
        risk = RiskConfig(order_qty=0.1, stop_loss_pct=2.0)
        PositionHandler(adapter, clock, risk, journal=journal, symbols=[LTC]).attach(bus)
        ExecutionHandler(adapter, clock, ExecutionConfig(), risk, journal=journal).attach(bus)
        try:
            signal = SignalFired(
                ts_ns=1,
                strategy="t",
                exchange="bitget",
                symbol=LTC,
                side="buy",
                price=68.7,
                stop_price=60.0,
                reason="test",
                candle_open_time_ms=t0,
            )
            await bus.publish(signal)
        finally:
            journal.close()
            await adapter.close()
    [placed] = tap.of(OrderPlaced)
    assert (placed.stop_price, placed.stop_cid) == (60.0, POSITION_STOP_CID)  # type: ignore[attr-defined]
    assert [(e.stop_price, e.qty) for e in tap.of(SLUpdated)] == [(60.0, 0.1)]  # type: ignore[attr-defined]
    assert venue.sent(*PLACE_PLAN) == [] and len(venue.sent(*PLACE)) == 1  # the entry alone carried the stop
    assert json.loads(venue.sent(*PLACE)[0].body)["presetStopLossPrice"] == "60"
    recorded_stop = Journal(tmp_path / "journal").stop_for("bitget", LTC)
    assert recorded_stop is not None and (recorded_stop.cid, recorded_stop.stop_price) == (POSITION_STOP_CID, 60.0)
