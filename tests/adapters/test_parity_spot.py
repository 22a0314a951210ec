"""Success-path parity over the wire for the spot venues without stops: Upbit and Bithumb.

Real, unmodified ccxt talks to `recorded_venue` on 127.0.0.1. Markets and Bithumb's ticker are
ccxt's recorded fixtures (`data/ccxt-static/`, see PROVENANCE.md). ccxt recorded no order or
balance bodies that 4.5.90 reads (Upbit: none; Bithumb: a wrapped 2021 limit order in a shape
4.5.90 no longer parses), so those replies are built field for field from the venues' official
API documentation, each naming its page.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.adapters.recorded_venue import RecordedVenue, recorded, recorded_venue, venue_adapter
from twinstar.adapters.base import ErrorKind, OrderResult
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.adapters.spot import Bithumb, SpotWithoutStops, Upbit

pytestmark = pytest.mark.anyio
BTC_KRW = "BTC/KRW"

# -- Upbit ------------------------------------------------------------------------------------------------------------

# GET /v1/order, fields as in https://docs.upbit.com/kr/reference/get-order (개별 주문 조회): a market sell of
# 0.01 BTC, done in one trade at 45,831,000 KRW, paid_fee 229.155 KRW (0.05 %); `identifier` is the client id.
UPBIT_DONE_SELL: dict[str, Any] = {
    "uuid": "9ca023a5-851b-4fec-9f0a-48cd83c2eaae",
    "side": "ask",
    "ord_type": "market",
    "state": "done",
    "market": "KRW-BTC",
    "created_at": "2024-03-13T20:10:37+09:00",
    "volume": "0.01",
    "remaining_volume": "0",
    "reserved_fee": "0",
    "remaining_fee": "0",
    "paid_fee": "229.155",
    "locked": "0",
    "executed_volume": "0.01",
    "trades_count": 1,
    "trades": [
        {
            "market": "KRW-BTC",
            "uuid": "9e8f8eba-7050-4837-8969-cfc272cbe083",
            "price": "45831000",
            "volume": "0.01",
            "funds": "458310",
            "side": "ask",
            "created_at": "2024-03-13T20:10:37+09:00",
        }
    ],
    "identifier": "tw-up-1",
}

# POST /v1/orders, fields as in https://docs.upbit.com/kr/reference/new-order (주문 생성): the order as taken,
# still "wait" with nothing executed, so the fill is read back.
UPBIT_TAKEN_SELL: dict[str, Any] = {
    **{k: v for k, v in UPBIT_DONE_SELL.items() if k not in ("trades",)},
    "state": "wait",
    "remaining_volume": "0.01",
    "paid_fee": "0",
    "executed_volume": "0",
    "trades_count": 0,
}

# GET /v1/accounts, fields as in https://docs.upbit.com/kr/reference/get-balance (전체 계좌 조회).
UPBIT_ACCOUNTS: list[dict[str, Any]] = [
    {
        "currency": "KRW",
        "balance": "1000000.0",
        "locked": "0",
        "avg_buy_price": "0",
        "avg_buy_price_modified": False,
        "unit_currency": "KRW",
    },
    {
        "currency": "BTC",
        "balance": "0.01",
        "locked": "0",
        "avg_buy_price": "45000000",
        "avg_buy_price_modified": False,
        "unit_currency": "KRW",
    },
]


def _upbit_replies() -> dict[tuple[str, str], list[Any]]:
    return {
        ("POST", "/v1/orders"): [UPBIT_TAKEN_SELL],
        ("GET", "/v1/order"): [UPBIT_DONE_SELL],
        ("GET", "/v1/accounts"): [UPBIT_ACCOUNTS],
    }


def _upbit(venue: RecordedVenue) -> CcxtExchange:
    adapter = venue_adapter("upbit", venue, recorded("upbit")["markets"].values(), market_type="spot")
    assert type(adapter) is Upbit
    return adapter


UPBIT_FILLED = OrderResult.success(
    client_order_id="tw-up-1",
    order_id="9ca023a5-851b-4fec-9f0a-48cd83c2eaae",
    status="filled",
    requested_qty=0.01,
    filled_qty=0.01,
    avg_price=45_831_000.0,
    fee=229.155,
    timestamp_ms=1_710_328_237_000,
)


async def test_upbit_market_sell_carries_the_identifier_and_is_read_back_for_its_fill() -> None:
    async with recorded_venue(_upbit_replies()) as venue:
        adapter = _upbit(venue)
        try:
            placed = await adapter.place_market_order(BTC_KRW, "sell", 0.01, client_order_id="tw-up-1")
        finally:
            await adapter.close()
    assert type(placed) is OrderResult
    assert placed == UPBIT_FILLED  # the "wait" create reply alone would have said open, filled 0
    [create] = venue.sent("POST", "/v1/orders")
    assert json.loads(create.body) == {
        "market": "KRW-BTC",
        "side": "ask",
        "ord_type": "market",
        "volume": "0.01",
        "identifier": "tw-up-1",
    }
    assert [r.query for r in venue.sent("GET", "/v1/order")] == [{"identifier": "tw-up-1"}]


async def test_upbit_fetch_order_by_client_id_sends_the_identifier_alone() -> None:
    async with recorded_venue(_upbit_replies()) as venue:
        adapter = _upbit(venue)
        try:
            found = await adapter.fetch_order(BTC_KRW, "tw-up-1")
        finally:
            await adapter.close()
    assert type(found) is OrderResult
    assert found == UPBIT_FILLED
    # ccxt's fetch_order(None, ...) sent uuid=None&clientOrderId=...: a field Upbit does not know.
    assert [r.query for r in venue.sent("GET", "/v1/order")] == [{"identifier": "tw-up-1"}]


async def test_upbit_close_position_sells_the_held_balance() -> None:
    async with recorded_venue(_upbit_replies()) as venue:
        adapter = _upbit(venue)
        try:
            closed = await adapter.close_position(BTC_KRW, client_order_id="tw-up-1")
        finally:
            await adapter.close()
    assert type(closed) is OrderResult
    assert closed == UPBIT_FILLED
    assert len(venue.sent("GET", "/v1/accounts")) == 1
    [create] = venue.sent("POST", "/v1/orders")
    assert json.loads(create.body) == {  # the 0.01 BTC the account holds, no reduce-only flag on spot
        "market": "KRW-BTC",
        "side": "ask",
        "ord_type": "market",
        "volume": "0.01",
        "identifier": "tw-up-1",
    }


# -- Bithumb ----------------------------------------------------------------------------------------------------------

# POST /v2/orders, fields as in https://apidocs.bithumb.com/reference/주문-요청 (v2.1.5): ids only.
BITHUMB_TAKEN: dict[str, Any] = {
    "order_id": "C0101000003152350309",
    "market": "KRW-BTC",
    "side": "ask",
    "order_type": "market",
    "created_at": "2024-03-13T20:10:37+09:00",
}


def _bithumb_done(side: str, ord_type: str) -> dict[str, Any]:
    """GET /v1/order, fields as in https://apidocs.bithumb.com/reference/개별-주문-조회: 0.01 BTC done at 45,831,000."""
    return {
        "uuid": "C0101000003152350309",
        "side": side,
        "ord_type": ord_type,
        "state": "done",
        "market": "KRW-BTC",
        "created_at": "2024-03-13T20:10:37+09:00",
        "volume": "0.01",
        "remaining_volume": "0",
        "reserved_fee": "1145.775",
        "remaining_fee": "0",
        "paid_fee": "1145.775",
        "locked": "0",
        "executed_volume": "0.01",
        "trades_count": 1,
        "trades": [
            {
                "market": "KRW-BTC",
                "uuid": "C0101000000001",
                "price": "45831000",
                "volume": "0.01",
                "funds": "458310",
                "side": side,
                "created_at": "2024-03-13T20:10:37+09:00",
            }
        ],
    }


# GET /v1/accounts, fields as in https://apidocs.bithumb.com/reference/전체-계좌-조회 (자산).
BITHUMB_ACCOUNTS: list[dict[str, Any]] = [
    {
        "currency": "KRW",
        "balance": "1000000",
        "locked": "0",
        "avg_buy_price": "0",
        "avg_buy_price_modified": False,
        "unit_currency": "KRW",
    },
    {
        "currency": "BTC",
        "balance": "0.01",
        "locked": "0",
        "avg_buy_price": "45000000",
        "avg_buy_price_modified": False,
        "unit_currency": "KRW",
    },
]


def _bithumb_replies(side: str = "ask", ord_type: str = "market") -> dict[tuple[str, str], list[Any]]:
    return {
        ("POST", "/v2/orders"): [BITHUMB_TAKEN],
        ("GET", "/v1/order"): [_bithumb_done(side, ord_type)],
        ("GET", "/v1/accounts"): [BITHUMB_ACCOUNTS],
        # The recorded KRW-BTC ticker object; /v1/ticker (v2.1.5) answers a bare list of them, without the
        # {"status", "data"} envelope of the 2023 recording.
        ("GET", "/v1/ticker"): [recorded("bithumb")["fetchTicker"]["data"]],
    }


def _bithumb(venue: RecordedVenue) -> CcxtExchange:
    adapter = venue_adapter("bithumb", venue, recorded("bithumb")["markets"].values(), market_type="spot")
    assert type(adapter) is Bithumb
    return adapter


def _bithumb_filled(cid: str) -> OrderResult:
    return OrderResult.success(
        client_order_id=cid,
        order_id="C0101000003152350309",
        status="filled",
        requested_qty=0.01,
        filled_qty=0.01,
        avg_price=45_831_000.0,
        fee=1145.775,
        timestamp_ms=1_710_328_237_000,
    )


async def test_bithumb_market_sell_carries_the_client_order_id_and_is_read_back_for_its_fill() -> None:
    async with recorded_venue(_bithumb_replies()) as venue:
        adapter = _bithumb(venue)
        try:
            placed = await adapter.place_market_order(BTC_KRW, "sell", 0.01, client_order_id="tw-bt-1")
        finally:
            await adapter.close()
    assert type(placed) is OrderResult
    assert placed == _bithumb_filled("tw-bt-1")  # the ids-only create reply alone would have said open, filled 0
    [create] = venue.sent("POST", "/v2/orders")
    assert json.loads(create.body) == {
        "market": "KRW-BTC",
        "side": "ask",
        "volume": "0.01",
        "order_type": "market",
        "client_order_id": "tw-bt-1",
    }
    assert [r.query for r in venue.sent("GET", "/v1/order")] == [{"client_order_id": "tw-bt-1"}]


async def test_bithumb_market_buy_spends_qty_times_the_recorded_last_price() -> None:
    async with recorded_venue(_bithumb_replies("bid", "price")) as venue:
        adapter = _bithumb(venue)
        try:
            placed = await adapter.place_market_order(BTC_KRW, "buy", 0.01, client_order_id="tw-bt-2")
        finally:
            await adapter.close()
    assert type(placed) is OrderResult
    assert placed == _bithumb_filled("tw-bt-2")
    assert [r.query for r in venue.sent("GET", "/v1/ticker")] == [{"markets": "KRW-BTC"}]
    [create] = venue.sent("POST", "/v2/orders")
    assert json.loads(create.body) == {  # 0.01 x 45,831,000 KRW (the recorded trade_price) to spend
        "market": "KRW-BTC",
        "side": "bid",
        "price": "458300",
        "order_type": "price",
        "client_order_id": "tw-bt-2",
    }


async def test_bithumb_fetch_order_by_client_id() -> None:
    async with recorded_venue(_bithumb_replies()) as venue:
        adapter = _bithumb(venue)
        try:
            found = await adapter.fetch_order(BTC_KRW, "tw-bt-1")
        finally:
            await adapter.close()
    assert type(found) is OrderResult
    assert found == _bithumb_filled("tw-bt-1")
    assert [r.query for r in venue.sent("GET", "/v1/order")] == [{"client_order_id": "tw-bt-1"}]


async def test_bithumb_close_position_sells_the_held_balance() -> None:
    async with recorded_venue(_bithumb_replies()) as venue:
        adapter = _bithumb(venue)
        try:
            closed = await adapter.close_position(BTC_KRW, client_order_id="tw-bt-close")
        finally:
            await adapter.close()
    assert type(closed) is OrderResult
    assert closed == _bithumb_filled("tw-bt-close")
    assert len(venue.sent("GET", "/v1/accounts")) == 1
    [create] = venue.sent("POST", "/v2/orders")
    assert json.loads(create.body) == {
        "market": "KRW-BTC",
        "side": "ask",
        "volume": "0.01",
        "order_type": "market",
        "client_order_id": "tw-bt-close",
    }


# -- both: stops are synthetic ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("exchange_id", ["upbit", "bithumb"])
async def test_update_stop_loss_is_refused_on_the_wire_free_path(exchange_id: str) -> None:
    async with recorded_venue({}) as venue:
        adapter = venue_adapter(exchange_id, venue, recorded(exchange_id)["markets"].values(), market_type="spot")
        try:
            stop = await adapter.update_stop_loss(BTC_KRW, "long", 0.01, 40_000_000.0, client_order_id="tw-sl")
        finally:
            await adapter.close()
    assert isinstance(adapter, SpotWithoutStops)
    assert type(stop) is OrderResult
    assert stop == OrderResult.failure(
        ErrorKind.NOT_SUPPORTED,
        f"{exchange_id}: no stop order is placed; the kernel keeps a synthetic stop",
        client_order_id="tw-sl",
        requested_qty=0.01,
    )
    assert venue.requests == []
