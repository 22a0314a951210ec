"""BingX: an entry carries its stop-loss; the STOP_MARKET BingX rests at the fill is found, sized to the fill, kept.

Real, unmodified ccxt talks to `recorded_venue` on 127.0.0.1. Recorded bodies
(`data/ccxt-static/bingx.json`, see PROVENANCE.md): the LTC-USDT contract, the
ids-only create reply, a filled LTC-USDT market order of
`GET /openApi/swap/v2/trade/order` and the LTC-USDT 0.1 long of
`GET /openApi/swap/v2/user/positions`. The entry fills below are that recorded
order turned into a buy; the open-orders, amend and cancel bodies are built in
the shape BingX documents (pages named beside each).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.adapters.recorded_venue import RecordedVenue, recorded, recorded_venue, unsigned
from tests.adapters.test_adapter_parity import LTC_BINGX, _bingx_adapter
from tests.pipeline.harness import Tap
from twinstar.adapters.base import OpenOrder
from twinstar.adapters.bingx import ATTACHED_STOP_PREFIX
from twinstar.bus.bus import Bus
from twinstar.bus.events import OrderPlaced, PositionReconciled, SignalFired, SLUpdated
from twinstar.clock import SimClock
from twinstar.config import ExecutionConfig, RiskConfig
from twinstar.handlers.execution import ExecutionHandler, client_order_id
from twinstar.handlers.journal import Journal, StopInForce
from twinstar.handlers.position import PositionHandler

pytestmark = pytest.mark.anyio
CREATE = ("POST", "/openApi/swap/v2/trade/order")
ORDER = ("GET", "/openApi/swap/v2/trade/order")
OPEN_ORDERS = ("GET", "/openApi/swap/v2/trade/openOrders")
AMEND = ("POST", "/openApi/swap/v1/trade/amend")
CANCEL = ("DELETE", "/openApi/swap/v2/trade/order")
POSITIONS = ("GET", "/openApi/swap/v2/user/positions")
STOP_ID = "1770683446830790001"
STOP_CID = ATTACHED_STOP_PREFIX + STOP_ID


def _entry(ordered: str, filled: str, status: str) -> dict[str, Any]:
    """The recorded filled order as the entry's read-back: a buy of `ordered`, `filled` of it done."""
    body: dict[str, Any] = copy.deepcopy(recorded("bingx")["filledSwapMarketOrder"]["httpResponse"])
    body["data"]["order"] |= {
        "side": "BUY",
        "origQty": ordered,
        "executedQty": filled,
        "status": status,
        "clientOrderId": "two-bx-1",
        "reduceOnly": False,
    }
    return body


def _stop_row(
    order_id: str, stop_price: str, qty: str, client_id: str = "", kind: str = "STOP_MARKET"
) -> dict[str, Any]:
    """A resting stop as `GET /openApi/swap/v2/trade/openOrders` lists it.

    Fields of "Query all current pending orders" (BingX-API/BingX-swap-api-v2-doc,
    Perpetual_Swap_API_Documentation.md, Trade Interface 7) plus those ccxt's bingx.py parses beside them
    (`clientOrderId`, `workingType`, `reduceOnly`); an attached stop has no client id: BingX takes one on
    MARKET and LIMIT orders only.
    """
    return {
        "symbol": "LTC-USDT",
        "orderId": order_id,
        "side": "SELL",
        "positionSide": "BOTH",
        "type": kind,
        "origQty": qty,
        "price": "0",
        "executedQty": "0",
        "avgPrice": "0.00",
        "cumQuote": "0",
        "stopPrice": stop_price,
        "profit": "0.0000",
        "commission": "0.000000",
        "status": "NEW",
        "time": 1710998806100,
        "updateTime": 1710998806100,
        "clientOrderId": client_id,
        "workingType": "MARK_PRICE",
        "reduceOnly": True,
    }


def _listing(*rows: dict[str, Any]) -> dict[str, Any]:
    return {"code": 0, "msg": "", "data": {"orders": list(rows)}}


# "Amend Order" (POST /openApi/swap/v1/trade/amend) answers orderId, clientOrderId, symbol, quantity.
AMENDED = {
    "code": 0,
    "msg": "",
    "data": {"orderId": STOP_ID, "clientOrderId": "", "symbol": "LTC-USDT", "quantity": "0.2"},
}


def _replies(routes: dict[tuple[str, str], list[Any]]) -> dict[tuple[str, str], list[Any]]:
    base: dict[tuple[str, str], list[Any]] = {CREATE: [recorded("bingx")["createOrder"]["httpResponse"]]}
    return base | routes


def _paths(venue: RecordedVenue) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in venue.requests]


async def test_the_entry_carries_its_stop_and_the_stop_bingx_rests_is_named_by_its_order_id() -> None:
    replies = _replies(
        {ORDER: [_entry("0.5", "0.5", "FILLED")], OPEN_ORDERS: [_listing(_stop_row(STOP_ID, "60", "0.5"))]}
    )
    async with recorded_venue(replies) as venue:
        adapter = _bingx_adapter(venue)
        try:
            placed = await adapter.place_market_order(
                LTC_BINGX,
                "buy",
                0.5,
                client_order_id="two-bx-1",
                stop_price=60.004,
                stop_client_order_id="tws-bx-1",
                take_profit_price=80.0,
            )
        finally:
            await adapter.close()
    [create] = venue.sent(*CREATE)
    query = unsigned(create.query)
    # Place Order's `stopLoss`: a JSON string, STOP_MARKET at the mark price, quantity what was ordered.
    assert json.loads(query.pop("stopLoss")) == {
        "stopPrice": 60,
        "workingType": "MARK_PRICE",
        "type": "STOP_MARKET",
        "quantity": 0.5,
    }
    assert query == {
        "clientOrderID": "two-bx-1",
        "positionSide": "BOTH",
        "quantity": "0.5",
        "side": "BUY",
        "symbol": "LTC-USDT",
        "type": "MARKET",
    }  # no takeProfit: BingX's attached one is not one-cancels-the-other; the kernel places it on the fill
    assert _paths(venue) == [CREATE, ORDER, OPEN_ORDERS]  # sized to the fill already: nothing amended
    assert unsigned(venue.sent(*OPEN_ORDERS)[0].query) == {"symbol": "LTC-USDT"}
    assert (placed.ok, placed.filled_qty, placed.stop_price, placed.stop_client_order_id) == (True, 0.5, 60.0, STOP_CID)
    assert (placed.take_profit_price, placed.take_profit_client_order_id) == (0.0, "")


async def test_a_partly_filled_entrys_attached_stop_is_amended_to_what_filled() -> None:
    replies = _replies(
        {
            ORDER: [_entry("0.5", "0.2", "CANCELED")],  # an IOC limit: 0.2 of 0.5 filled, the rest cancelled
            OPEN_ORDERS: [_listing(_stop_row(STOP_ID, "60", "0.5"))],  # sized to the ordered 0.5
            AMEND: [AMENDED],
        }
    )
    async with recorded_venue(replies) as venue:
        adapter = _bingx_adapter(venue)
        try:
            placed = await adapter.place_limit_order(
                LTC_BINGX,
                "buy",
                0.5,
                70.0,
                client_order_id="two-bx-1",
                time_in_force="ioc",
                stop_price=60.0,
                stop_client_order_id="tws-bx-1",
            )
        finally:
            await adapter.close()
    assert _paths(venue) == [CREATE, ORDER, OPEN_ORDERS, AMEND]  # resized in place, no second stop
    [amend] = venue.sent(*AMEND)
    assert unsigned(amend.query) == {"symbol": "LTC-USDT", "orderId": STOP_ID, "quantity": "0.2"}
    assert (placed.filled_qty, placed.stop_price, placed.stop_client_order_id) == (0.2, 60.0, STOP_CID)


async def test_an_attached_stop_that_is_never_listed_is_replaced_by_one_of_ours_for_the_fill() -> None:
    entry_reply = recorded("bingx")["createOrder"]["httpResponse"]
    trigger = recorded("bingx")["createTriggerOrder"]["httpResponse"]
    replies = {CREATE: [entry_reply, trigger], ORDER: [_entry("0.5", "0.5", "FILLED")], OPEN_ORDERS: [_listing()]}
    async with recorded_venue(replies) as venue:
        adapter = _bingx_adapter(venue)
        adapter.clock = SimClock(0, autojump=True)  # the waits between listings run on virtual time
        try:
            placed = await adapter.place_market_order(
                LTC_BINGX, "buy", 0.5, client_order_id="two-bx-1", stop_price=60.0, stop_client_order_id="tws-bx-1"
            )
        finally:
            await adapter.close()
    assert _paths(venue) == [CREATE, ORDER, OPEN_ORDERS, OPEN_ORDERS, OPEN_ORDERS, CREATE]
    stop = unsigned(venue.sent(*CREATE)[1].query)
    assert (stop["clientOrderID"], stop["quantity"], stop["stopPrice"], stop["reduceOnly"]) == (
        "tws-bx-1",
        "0.5",
        "60",
        "true",
    )
    assert (placed.stop_price, placed.stop_client_order_id) == (60.0, "tws-bx-1")


async def test_a_resting_limit_entry_carries_no_stop_the_kernel_protects_its_later_fill() -> None:
    async with recorded_venue(_replies({ORDER: [_entry("0.5", "0", "NEW")]})) as venue:
        adapter = _bingx_adapter(venue)
        try:
            placed = await adapter.place_limit_order(
                LTC_BINGX, "buy", 0.5, 70.0, client_order_id="two-bx-1", stop_price=60.0, stop_client_order_id="tws-1"
            )
        finally:
            await adapter.close()
    [create] = venue.sent(*CREATE)
    assert "stopLoss" not in create.query and (placed.status, placed.stop_price) == ("open", 0.0)


async def test_moving_the_attached_stop_places_the_new_one_before_cancelling_it() -> None:
    trigger = recorded("bingx")["createTriggerOrder"]["httpResponse"]
    cancelled = {"code": 0, "msg": "", "data": {"order": _stop_row(STOP_ID, "60", "0.5") | {"status": "CANCELLED"}}}
    async with recorded_venue(_replies({CREATE: [trigger], CANCEL: [cancelled]})) as venue:
        adapter = _bingx_adapter(venue)
        try:
            attached = OpenOrder(
                symbol=LTC_BINGX, order_id="", client_order_id=STOP_CID, side="sell", qty=0.5, stop_price=60.0
            )
            adapter.adopt_stop(LTC_BINGX, attached)  # as the position handler adopts the entry's stop
            moved = await adapter.update_stop_loss(LTC_BINGX, "long", 0.5, 62.0, client_order_id="tws-bx-2")
        finally:
            await adapter.close()
    assert _paths(venue) == [CREATE, CANCEL]  # BingX's amend takes no trigger price: new, then old
    assert unsigned(venue.sent(*CREATE)[0].query)["stopPrice"] == "62"
    assert unsigned(venue.sent(*CANCEL)[0].query) == {"symbol": "LTC-USDT", "orderId": STOP_ID}
    assert (moved.ok, moved.client_order_id) == (True, "tws-bx-2")


async def test_the_attached_stops_trigger_fill_is_read_by_its_order_id() -> None:
    fill = copy.deepcopy(recorded("bingx")["filledSwapMarketOrder"]["httpResponse"])
    fill["data"]["order"] |= {"orderId": STOP_ID, "type": "STOP_MARKET", "stopPrice": "60", "avgPrice": "59.95"}
    async with recorded_venue({ORDER: [fill]}) as venue:
        adapter = _bingx_adapter(venue)
        try:
            found = await adapter.fetch_order(LTC_BINGX, STOP_CID)
        finally:
            await adapter.close()
    assert unsigned(venue.sent(*ORDER)[0].query) == {"symbol": "LTC-USDT", "orderId": STOP_ID}
    assert (found.ok, found.order_id, found.filled_qty, found.avg_price) == (True, STOP_ID, 0.1, 59.95)


class Restarted:
    """The position handler of a restarted kernel over the BingX adapter, its journal naming the stop in force."""

    def __init__(self, venue: RecordedVenue, journal_path: Path, stop_qty: float) -> None:
        before = Journal(journal_path)
        before.write(
            StopInForce(
                exchange="bingx",
                symbol=LTC_BINGX,
                side="long",
                qty=stop_qty,
                entry_price=95.61,
                stop_price=60.0,
                cid=STOP_CID,
            )
        )
        before.close()
        self.adapter = _bingx_adapter(venue)
        clock = SimClock(0, autojump=True)
        bus = Bus(clock, mode="replay")
        self.tap = Tap()
        self.tap.attach(bus)
        self.journal = Journal(journal_path)
        self.handler = PositionHandler(
            self.adapter, clock, RiskConfig(order_qty=0.1), journal=self.journal, symbols=[LTC_BINGX]
        )
        self.handler.attach(bus)

    async def start(self) -> list[tuple[str, str]]:
        try:
            await self.handler.start()
        finally:
            self.journal.close()
            await self.adapter.close()
        return [(e.action, e.detail) for e in self.tap.of(PositionReconciled)]  # type: ignore[attr-defined]


async def test_after_a_restart_exactly_the_journaled_attached_stop_is_adopted(tmp_path: Path) -> None:
    manual = _stop_row("1770683446830790002", "50", "0.1")  # someone's own stop, no client id either
    replies = {
        POSITIONS: [recorded("bingx")["fetchPositions"]["httpResponse"]],  # 0.1 LTC long
        OPEN_ORDERS: [_listing(_stop_row(STOP_ID, "60", "0.1"), manual)],
    }
    async with recorded_venue(replies) as venue:
        kit = Restarted(venue, tmp_path / "journal", 0.1)
        actions = await kit.start()
    assert actions == [("adopted", "long 0.1 @ 95.61"), ("stop_adopted", STOP_CID)]
    assert _paths(venue) == [POSITIONS, OPEN_ORDERS]  # nothing placed, nothing cancelled: not the other stop either
    position = kit.handler.positions[LTC_BINGX]
    assert (position.qty, position.stop_price, position.stop_cid) == (0.1, 60.0, STOP_CID)


async def test_after_a_restart_an_attached_stop_sized_to_the_ordered_amount_is_resized(tmp_path: Path) -> None:
    positions = copy.deepcopy(recorded("bingx")["fetchPositions"]["httpResponse"])
    positions["data"][0] |= {"positionAmt": "0.2", "availableAmt": "0.2"}  # the entry filled 0.2 of 0.5
    replies = {
        POSITIONS: [positions],
        OPEN_ORDERS: [_listing(_stop_row(STOP_ID, "60", "0.5"))],
        AMEND: [AMENDED],
    }
    async with recorded_venue(replies) as venue:
        kit = Restarted(venue, tmp_path / "journal", 0.2)
        actions = await kit.start()
    assert [a for a, _ in actions] == ["adopted", "stop_adopted", "stop_resized"]
    assert _paths(venue) == [POSITIONS, OPEN_ORDERS, AMEND]
    assert unsigned(venue.sent(*AMEND)[0].query) == {"symbol": "LTC-USDT", "orderId": STOP_ID, "quantity": "0.2"}
    position = kit.handler.positions[LTC_BINGX]
    assert (position.qty, position.stop_price, position.stop_cid) == (0.2, 60.0, STOP_CID)


async def test_through_the_kernels_handlers_the_attached_stop_is_the_one_journaled_and_none_is_added(
    tmp_path: Path,
) -> None:
    t0 = 1_710_998_760_000
    cid = client_order_id("t", LTC_BINGX, t0, "open")
    entry = _entry("0.5", "0.5", "FILLED")
    entry["data"]["order"]["clientOrderId"] = cid
    replies = _replies(
        {
            ORDER: [entry],
            OPEN_ORDERS: [_listing(_stop_row(STOP_ID, "60", "0.5"))],
            POSITIONS: [{"code": 0, "msg": "", "data": []}],
        }
    )
    async with recorded_venue(replies) as venue:
        adapter = _bingx_adapter(venue)
        clock = SimClock(0, autojump=True)
        adapter.clock = clock
        bus = Bus(clock, mode="replay")
        tap = Tap()
        tap.attach(bus)
        journal = Journal(tmp_path / "journal")
        risk = RiskConfig(order_qty=0.5, stop_loss_pct=2.0)
        positions = PositionHandler(adapter, clock, risk, journal=journal, symbols=[LTC_BINGX])
        positions.attach(bus)
        ExecutionHandler(adapter, clock, ExecutionConfig(), risk, journal=journal).attach(bus)
        try:
            signal = SignalFired(
                ts_ns=1,
                strategy="t",
                exchange="bingx",
                symbol=LTC_BINGX,
                side="buy",
                price=83.7,
                stop_price=60.0,
                reason="test",
                candle_open_time_ms=t0,
            )
            await bus.publish(signal)
        finally:
            journal.close()
            await adapter.close()
    [placed] = tap.of(OrderPlaced)
    assert (placed.stop_price, placed.stop_cid) == (60.0, STOP_CID)  # type: ignore[attr-defined]
    assert [(e.stop_price, e.qty) for e in tap.of(SLUpdated)] == [(60.0, 0.5)]  # type: ignore[attr-defined]
    assert len(venue.sent(*CREATE)) == 1  # the entry alone: its stop came with it
    recorded_stop = Journal(tmp_path / "journal").stop_for("bingx", LTC_BINGX)
    assert recorded_stop is not None and (recorded_stop.cid, recorded_stop.qty) == (STOP_CID, 0.5)
