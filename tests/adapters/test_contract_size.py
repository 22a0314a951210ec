"""Quantities on venues that count contracts: the kernel speaks base units, the wire speaks contracts.

OKX's BTC-USDT-SWAP contract is 0.01 BTC (ccxt's recorded market, data/ccxt-static). Sending the
kernel's 0.05 BTC as 0.05 contracts would trade a hundredth of the intended size.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.adapters.recorded_venue import RecordedVenue, recorded, recorded_venue, venue_adapter
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.adapters.okx import Okx

pytestmark = pytest.mark.anyio
BTC_SWAP = "BTC/USDT:USDT"


def _okx(venue: RecordedVenue) -> CcxtExchange:
    adapter = venue_adapter("okx", venue, recorded("okx_btc_usdt_swap_market").values())
    assert isinstance(adapter, Okx)
    return adapter


def _replies() -> dict[tuple[str, str], list[Any]]:
    okx = recorded("okx")
    return {
        ("POST", "/api/v5/trade/batch-orders"): [okx["createOrder"]["httpResponse"]],
        ("POST", "/api/v5/trade/order-algo"): [okx["createTriggerOrder"]["httpResponse"]],
    }


async def test_orders_and_stops_go_out_in_contracts() -> None:
    async with recorded_venue(_replies()) as venue:
        adapter = _okx(venue)
        try:
            await adapter.place_market_order(BTC_SWAP, "buy", 0.0537, client_order_id="tw-c-1")
            await adapter.update_stop_loss(BTC_SWAP, "long", 0.05, 41_000.0, client_order_id="tw-c-2")
        finally:
            await adapter.close()
    [order] = venue.sent("POST", "/api/v5/trade/batch-orders")
    [stop] = venue.sent("POST", "/api/v5/trade/order-algo")
    # 0.0537 BTC = 5.37 contracts, truncated to the 0.1-contract lot; never rounded up past what was asked.
    assert [json.loads(order.body)[0]["sz"], json.loads(stop.body)["sz"]] == ["5.3", "5"]


async def test_what_a_venue_reports_in_contracts_comes_back_in_base_units() -> None:
    async with recorded_venue({}) as venue:
        adapter = _okx(venue)
    try:
        # ccxt's unified order for 5.3 contracts, 4 of them filled.
        order = {"symbol": BTC_SWAP, "id": "1", "status": "open", "amount": 5.3, "filled": 4.0, "average": 42_000.0}
        result = adapter._result(order, "tw-c-1", 0.0537, BTC_SWAP)
    finally:
        await adapter.close()
    assert result.requested_qty == pytest.approx(0.053)
    assert (result.filled_qty, result.avg_price) == (0.04, 42_000.0)
