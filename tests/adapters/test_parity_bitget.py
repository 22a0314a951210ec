"""Bitget USDT-M swap: the success path of the order methods, at run time, over real HTTP on 127.0.0.1.

Real, unmodified ccxt talks to `recorded_venue`. Recorded bodies (`data/ccxt-static/bitget.json`, see
PROVENANCE.md): the LTC/USDT:USDT market, a filled LTC-USDT market order as `GET /api/v2/mix/order/detail`
returned it, and an LTC-USDT position from `GET /api/v2/mix/position/all-position`. ccxt recorded no classic
(non-UTA) v2 swap create or plan-order reply, so those two are built below in the shape Bitget documents.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.adapters.recorded_venue import RecordedVenue, recorded, recorded_venue, venue_adapter
from twinstar.adapters.base import OrderResult
from twinstar.adapters.bitget import Bitget
from twinstar.adapters.ccxt_base import CcxtExchange

pytestmark = pytest.mark.anyio
LTC = "LTC/USDT:USDT"
UTA_PROBE = ("GET", "/api/v3/account/settings")  # unanswered here, so ccxt uses the classic v2 account
PLACE = ("POST", "/api/v2/mix/order/place-order")
PLAN = ("POST", "/api/v2/mix/order/place-plan-order")
DETAIL = ("GET", "/api/v2/mix/order/detail")
POSITIONS = ("GET", "/api/v2/mix/position/all-position")


def _ids_only(client_oid: str) -> dict[str, Any]:
    """A place-order / place-plan-order reply: ids only.

    Shape from Bitget's v2 docs (https://www.bitget.com/api-doc/spot/trade/Place-Order and
    https://www.bitget.com/api-doc/spot/plan/Place-Plan-Order, response example: `code`, `msg`, `requestTime`,
    `data.orderId`, `data.clientOid`; the contract pages /api-doc/contract/trade/Place-Order and
    /api-doc/contract/plan/Place-Plan-Order name the same `orderId` and `clientOid`); the doc's `orderId`
    and `requestTime`, with `clientOid` echoing the request as the doc example does.
    """
    return {
        "code": "00000",
        "msg": "success",
        "requestTime": 1668134576535,
        "data": {"orderId": "1001", "clientOid": client_oid},
    }


def _replies(client_oid: str) -> dict[tuple[str, str], list[Any]]:
    bitget = recorded("bitget")
    return {
        PLACE: [_ids_only(client_oid)],
        PLAN: [_ids_only(client_oid)],
        DETAIL: [bitget["filledSwapMarketOrder"]],
        POSITIONS: [bitget["fetchPositions"]],
    }


def _bitget(venue: RecordedVenue) -> CcxtExchange:
    """The Bitget adapter as `make_exchange` builds it, pointed at the venue, with the recorded market."""
    adapter = venue_adapter("bitget", venue, recorded("bitget")["markets"].values())
    assert isinstance(adapter, Bitget)
    return adapter


def _paths(venue: RecordedVenue) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in venue.requests]


# The recorded filled LTC-USDT market buy (baseVolume 0.1 at priceAvg 68.74, fee -0.0041244 USDT).
BITGET_FILLED = OrderResult.success(
    client_order_id="1139544620049014787",
    order_id="1139544620032237568",
    status="filled",
    requested_qty=0.1,
    filled_qty=0.1,
    avg_price=68.74,
    fee=0.0041244,
    timestamp_ms=1_707_414_529_811,
)


async def test_bitget_market_order_is_read_back_by_client_oid_for_its_fill() -> None:
    async with recorded_venue(_replies("tw-bitget-1")) as venue:
        adapter = _bitget(venue)
        try:
            placed = await adapter.place_market_order(LTC, "buy", 0.1, client_order_id="tw-bitget-1")
        finally:
            await adapter.close()
    assert type(placed) is OrderResult
    assert placed == BITGET_FILLED  # the ids-only create reply alone would have said open, filled 0
    assert _paths(venue) == [UTA_PROBE, PLACE, DETAIL]
    [create] = venue.sent(*PLACE)
    assert json.loads(create.body) == {
        "symbol": "LTCUSDT",
        "productType": "USDT-FUTURES",
        "marginCoin": "USDT",
        "marginMode": "crossed",
        "orderType": "market",
        "force": "GTC",
        "side": "buy",
        "size": "0.1",
        "clientOid": "tw-bitget-1",
    }
    [read] = venue.sent(*DETAIL)
    assert read.query == {"symbol": "LTCUSDT", "productType": "USDT-FUTURES", "clientOid": "tw-bitget-1"}


async def test_bitget_fetch_order_by_client_oid() -> None:
    async with recorded_venue(_replies("tw-bitget-1")) as venue:
        adapter = _bitget(venue)
        try:
            found = await adapter.fetch_order(LTC, "tw-bitget-1")
        finally:
            await adapter.close()
    assert type(found) is OrderResult
    assert found == BITGET_FILLED
    # Bitget takes orderId or clientOid; the lookup sends clientOid alone (no orderId=None).
    assert [r.query for r in venue.sent(*DETAIL)] == [
        {"symbol": "LTCUSDT", "productType": "USDT-FUTURES", "clientOid": "tw-bitget-1"}
    ]


async def test_bitget_stop_is_a_native_reduce_only_plan_order() -> None:
    async with recorded_venue(_replies("tw-bitget-sl")) as venue:
        adapter = _bitget(venue)
        try:
            stop = await adapter.update_stop_loss(LTC, "long", 0.1, 60.004, client_order_id="tw-bitget-sl")
        finally:
            await adapter.close()
    assert type(stop) is OrderResult
    # The documented plan-order reply: ids only, a resting trigger order with nothing filled (no read-back).
    assert stop == OrderResult.success(
        client_order_id="tw-bitget-sl",
        order_id="1001",
        status="open",
        requested_qty=0.1,
        filled_qty=0.0,
        avg_price=0.0,
        timestamp_ms=stop.timestamp_ms,  # the reply has no time: the adapter's clock stamps it
    )
    assert adapter.supports_native_stop
    assert _paths(venue) == [UTA_PROBE, PLAN]
    [sent] = venue.sent(*PLAN)
    assert json.loads(sent.body) == {
        "symbol": "LTCUSDT",
        "productType": "USDT-FUTURES",
        "marginCoin": "USDT",
        "marginMode": "crossed",
        "planType": "normal_plan",
        "orderType": "market",
        "force": "GTC",
        "side": "sell",
        "size": "0.1",
        "triggerType": "mark_price",
        "triggerPrice": "60",  # a string, at the market's 0.01 tick, as Bitget documents it
        "reduceOnly": "YES",
        "clientOid": "tw-bitget-sl",
    }


async def test_bitget_close_position_sells_the_recorded_position_reduce_only() -> None:
    async with recorded_venue(_replies("tw-bitget-close")) as venue:
        adapter = _bitget(venue)
        try:
            closed = await adapter.close_position(LTC, client_order_id="tw-bitget-close")
        finally:
            await adapter.close()
    assert type(closed) is OrderResult
    # The read-back is served the one recorded filled order (a 0.1 LTC market order): its fields come back.
    assert closed == BITGET_FILLED
    assert _paths(venue) == [UTA_PROBE, POSITIONS, PLACE, DETAIL]
    assert venue.sent(*POSITIONS)[0].query == {"productType": "USDT-FUTURES", "marginCoin": "USDT"}
    [create] = venue.sent(*PLACE)
    assert json.loads(create.body) == {  # the recorded position: 0.1 LTC long
        "symbol": "LTCUSDT",
        "productType": "USDT-FUTURES",
        "marginCoin": "USDT",
        "marginMode": "crossed",
        "orderType": "market",
        "force": "GTC",
        "side": "sell",
        "size": "0.1",
        "reduceOnly": "YES",
        "clientOid": "tw-bitget-close",
    }
    [read] = venue.sent(*DETAIL)
    assert read.query == {"symbol": "LTCUSDT", "productType": "USDT-FUTURES", "clientOid": "tw-bitget-close"}
