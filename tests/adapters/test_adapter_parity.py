"""The success path of the order methods, at run time, over real HTTP on 127.0.0.1.

Real, unmodified ccxt talks to `recorded_venue`, which answers with the reply bodies
ccxt itself recorded from the venues (`data/ccxt-static/`, see PROVENANCE.md). The
failure path of every adapter is in test_adapters_wire.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.adapters.recorded_venue import RecordedVenue, recorded, recorded_venue, unsigned, venue_adapter
from twinstar.adapters.base import ErrorKind, OrderResult
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.adapters.spot import SpotWithoutStops

pytestmark = pytest.mark.anyio
LTC_SWAP = "LTC/USDT:USDT"


def _okx_replies() -> dict[tuple[str, str], list[Any]]:
    okx = recorded("okx")
    return {
        # ccxt 4.5.90 sends a single order as a batch of one; the reply has the same shape as /trade/order's.
        ("POST", "/api/v5/trade/batch-orders"): [okx["createOrder"]["httpResponse"]],
        ("POST", "/api/v5/trade/order-algo"): [okx["createTriggerOrder"]["httpResponse"]],
        ("GET", "/api/v5/trade/order"): [okx["filledSwapMarketOrder"]["httpResponse"]],
        ("GET", "/api/v5/account/positions"): [okx["fetchPosition"]["httpResponse"]],
    }


# The recorded filled LTC-USDT-SWAP market order (accFillSz 1 at avgPx 68.24, fee -0.00003412 USDT).
OKX_FILLED = OrderResult.success(
    client_order_id="e847386590ce4dBC2f7dbb9924c2b77c",
    order_id="672515387010932736",
    status="filled",
    requested_qty=1.0,
    filled_qty=1.0,
    avg_price=68.24,
    fee=0.00003412,
    timestamp_ms=1_706_612_162_995,
)


async def test_okx_market_order_is_read_back_for_its_fill() -> None:
    async with recorded_venue(_okx_replies()) as venue:
        adapter = venue_adapter("okx", venue, recorded("okx")["markets"].values())
        try:
            placed = await adapter.place_market_order(LTC_SWAP, "buy", 1.04, client_order_id="tw-okx-1")
        finally:
            await adapter.close()
    assert type(placed) is OrderResult
    assert placed == OKX_FILLED  # the ids-only create reply alone would have said filled 0
    [create] = venue.sent("POST", "/api/v5/trade/batch-orders")
    assert json.loads(create.body) == [
        {
            "instId": "LTC-USDT-SWAP",
            "side": "buy",
            "ordType": "market",
            "sz": "1",
            "tdMode": "cross",
            "clOrdId": "tw-okx-1",
        }
    ]
    [read] = venue.sent("GET", "/api/v5/trade/order")
    assert read.query == {"instId": "LTC-USDT-SWAP", "clOrdId": "tw-okx-1"}


async def test_okx_fetch_order_by_client_id() -> None:
    async with recorded_venue(_okx_replies()) as venue:
        adapter = venue_adapter("okx", venue, recorded("okx")["markets"].values())
        try:
            found = await adapter.fetch_order(LTC_SWAP, "tw-okx-1")
        finally:
            await adapter.close()
    assert type(found) is OrderResult
    assert found == OKX_FILLED
    assert [r.query for r in venue.sent("GET", "/api/v5/trade/order")] == [
        {"instId": "LTC-USDT-SWAP", "clOrdId": "tw-okx-1"}
    ]


async def test_okx_stop_is_a_native_reduce_only_trigger_algo_order() -> None:
    async with recorded_venue(_okx_replies()) as venue:
        adapter = venue_adapter("okx", venue, recorded("okx")["markets"].values())
        try:
            stop = await adapter.update_stop_loss(LTC_SWAP, "long", 1.0, 60.004, client_order_id="tw-okx-sl")
        finally:
            await adapter.close()
    assert type(stop) is OrderResult
    # The recorded algo reply: ids only (algoId, algoClOrdId), a resting stop with nothing filled.
    assert (stop.ok, stop.status, stop.order_id, stop.client_order_id) == (
        True,
        "open",
        "2896574163517353984",
        "6b9ad766b55dBCDEd524d810f42296b8",
    )
    assert (stop.requested_qty, stop.filled_qty, stop.avg_price) == (1.0, 0.0, 0.0)
    assert adapter.supports_native_stop
    [sent] = venue.sent("POST", "/api/v5/trade/order-algo")
    assert json.loads(sent.body) == {
        "instId": "LTC-USDT-SWAP",
        "side": "sell",
        "ordType": "trigger",
        "sz": "1",
        "tdMode": "cross",
        "triggerPx": "60",
        "orderPx": "-1",
        "clOrdId": "tw-okx-sl",
        "reduceOnly": True,
    }


async def test_okx_close_position_sells_the_recorded_position_reduce_only() -> None:
    async with recorded_venue(_okx_replies()) as venue:
        adapter = venue_adapter("okx", venue, recorded("okx")["markets"].values())
        try:
            closed = await adapter.close_position(LTC_SWAP, client_order_id="tw-okx-close")
        finally:
            await adapter.close()
    assert type(closed) is OrderResult
    # The reply served to the read-back is the one recorded filled order (a 1-lot buy): its fields come back.
    assert closed == OKX_FILLED
    assert venue.sent("GET", "/api/v5/account/positions")[0].query == {"instId": "LTC-USDT-SWAP"}
    [create] = venue.sent("POST", "/api/v5/trade/batch-orders")
    assert json.loads(create.body) == [  # the recorded position: 2 contracts long (contractSize 1)
        {
            "instId": "LTC-USDT-SWAP",
            "side": "sell",
            "ordType": "market",
            "sz": "2",
            "tdMode": "cross",
            "clOrdId": "tw-okx-close",
            "reduceOnly": True,
        }
    ]


@pytest.mark.parametrize("exchange_id", ["upbit", "bithumb"])
async def test_spot_venues_keep_synthetic_stops_and_say_so(exchange_id: str) -> None:
    async with recorded_venue({}) as venue:
        adapter = venue_adapter(exchange_id, venue, {}, market_type="spot")
        try:
            stop = await adapter.update_stop_loss("BTC/KRW", "long", 0.01, 60_000_000.0, client_order_id="tw-sl")
        finally:
            await adapter.close()
    assert isinstance(adapter, SpotWithoutStops)
    assert not adapter.supports_native_stop
    assert stop == OrderResult.failure(
        ErrorKind.NOT_SUPPORTED,
        f"{exchange_id}: no stop order is placed; the kernel keeps a synthetic stop",
        client_order_id="tw-sl",
        requested_qty=0.01,
    )
    assert venue.requests == []  # nothing is sent: the kernel's synthetic stop does the work


# -- BingX (swap) ---------------------------------------------------------------------------------------------------

LTC_BINGX = "LTC/USDT:USDT"


def _bingx_adapter(venue: RecordedVenue) -> CcxtExchange:
    bingx = recorded("bingx")
    adapter = venue_adapter("bingx", venue, {})
    # The recorded market file predates ccxt's tick-size precision; ccxt's own parser turns the recorded raw
    # contract entry (its `info`) into the market 4.5.90 would have loaded.
    adapter.ccxt.set_markets([adapter.ccxt.parse_market(bingx["markets"][LTC_BINGX]["info"])])
    return adapter


def _bingx_replies() -> dict[tuple[str, str], list[Any]]:
    bingx = recorded("bingx")
    return {
        ("POST", "/openApi/swap/v2/trade/order"): [bingx["createOrder"]["httpResponse"]],
        ("GET", "/openApi/swap/v2/trade/order"): [bingx["filledSwapMarketOrder"]["httpResponse"]],
        ("GET", "/openApi/swap/v2/user/positions"): [bingx["fetchPositions"]["httpResponse"]],
    }


# The recorded filled LTC-USDT market order (executedQty 0.1 at avgPrice 83.71, commission -0.004186 USDT).
BINGX_FILLED = OrderResult.success(
    client_order_id="b39b0316-1f99-4099-8f4b-bac0f46731f8",
    order_id="1770683446830788608",
    status="filled",
    requested_qty=0.1,
    filled_qty=0.1,
    avg_price=83.71,
    fee=0.004186,
    timestamp_ms=1_710_998_806_000,
)


async def test_bingx_market_order_is_read_back_by_client_id_for_its_fill() -> None:
    async with recorded_venue(_bingx_replies()) as venue:
        adapter = _bingx_adapter(venue)
        try:
            placed = await adapter.place_market_order(LTC_BINGX, "buy", 0.1, client_order_id="tw-bingx-1")
        finally:
            await adapter.close()
    assert type(placed) is OrderResult
    assert placed == BINGX_FILLED  # the ids-only create reply alone would have said open, filled 0
    [create] = venue.sent("POST", "/openApi/swap/v2/trade/order")
    assert unsigned(create.query) == {
        "clientOrderID": "tw-bingx-1",
        "positionSide": "BOTH",
        "quantity": "0.1",
        "side": "BUY",
        "symbol": "LTC-USDT",
        "type": "MARKET",
    }
    [read] = venue.sent("GET", "/openApi/swap/v2/trade/order")
    assert unsigned(read.query) == {"clientOrderId": "tw-bingx-1", "symbol": "LTC-USDT"}


async def test_bingx_fetch_order_by_client_id_sends_no_order_id() -> None:
    async with recorded_venue(_bingx_replies()) as venue:
        adapter = _bingx_adapter(venue)
        try:
            found = await adapter.fetch_order(LTC_BINGX, "tw-bingx-1")
        finally:
            await adapter.close()
    assert type(found) is OrderResult
    assert found == BINGX_FILLED
    # ccxt's fetch_order(None, ...) would have sent orderId=None; the lookup is by client id alone.
    assert [unsigned(r.query) for r in venue.sent("GET", "/openApi/swap/v2/trade/order")] == [
        {"clientOrderId": "tw-bingx-1", "symbol": "LTC-USDT"}
    ]


async def test_bingx_stop_is_a_native_reduce_only_trigger_order() -> None:
    replies = {("POST", "/openApi/swap/v2/trade/order"): [recorded("bingx")["createTriggerOrder"]["httpResponse"]]}
    async with recorded_venue(replies) as venue:
        adapter = _bingx_adapter(venue)
        try:
            stop = await adapter.update_stop_loss(LTC_BINGX, "long", 0.1, 60.004, client_order_id="tw-bingx-sl")
        finally:
            await adapter.close()
    assert type(stop) is OrderResult
    # The recorded trigger reply: ids only (a resting TRIGGER_MARKET order, nothing filled); no client id in it.
    assert (stop.ok, stop.status, stop.order_id, stop.client_order_id) == (
        True,
        "open",
        "1792485928376840192",
        "tw-bingx-sl",
    )
    assert (stop.requested_qty, stop.filled_qty, stop.avg_price) == (0.1, 0.0, 0.0)
    assert adapter.supports_native_stop
    [sent] = venue.sent("POST", "/openApi/swap/v2/trade/order")
    assert unsigned(sent.query) == {
        "clientOrderID": "tw-bingx-sl",
        "positionSide": "BOTH",
        "quantity": "0.1",
        "reduceOnly": "true",
        "side": "SELL",
        "stopPrice": "60",
        "symbol": "LTC-USDT",
        "type": "TRIGGER_MARKET",
    }


async def test_bingx_close_position_sells_the_recorded_position_reduce_only() -> None:
    async with recorded_venue(_bingx_replies()) as venue:
        adapter = _bingx_adapter(venue)
        try:
            closed = await adapter.close_position(LTC_BINGX, client_order_id="tw-bingx-close")
        finally:
            await adapter.close()
    assert type(closed) is OrderResult
    # The read-back is served the one recorded filled order (a 0.1 LTC reduce-only market sell): its fields come back.
    assert closed == BINGX_FILLED
    [create] = venue.sent("POST", "/openApi/swap/v2/trade/order")
    assert unsigned(create.query) == {  # the recorded position: 0.1 LTC long
        "clientOrderID": "tw-bingx-close",
        "positionSide": "BOTH",
        "quantity": "0.1",
        "reduceOnly": "true",
        "side": "SELL",
        "symbol": "LTC-USDT",
        "type": "MARKET",
    }
    [read] = venue.sent("GET", "/openApi/swap/v2/trade/order")
    assert unsigned(read.query) == {"clientOrderId": "tw-bingx-close", "symbol": "LTC-USDT"}


async def test_an_order_whose_fill_cannot_be_read_back_is_ambiguous_never_filled_zero() -> None:
    replies = _okx_replies()
    del replies["GET", "/api/v5/trade/order"]  # the venue took the order; reading it back fails (404)
    async with recorded_venue(replies) as venue:
        adapter = venue_adapter("okx", venue, recorded("okx")["markets"].values())
        try:
            placed = await adapter.place_market_order(LTC_SWAP, "buy", 1.0, client_order_id="tw-okx-2")
        finally:
            await adapter.close()
    assert type(placed) is OrderResult
    assert not placed.ok
    assert placed.error_kind is not None and placed.error_kind.ambiguous  # execution looks it up before resending
    assert placed.client_order_id == "tw-okx-2"
    assert len(venue.sent("POST", "/api/v5/trade/batch-orders")) == 1
