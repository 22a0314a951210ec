"""Each new order type as OKX, BingX and Bitget receive it: real ccxt over HTTP to `recorded_venue` on 127.0.0.1.

The venue answers with ccxt's recorded replies (tests/adapters/data/ccxt-static,
see PROVENANCE.md; Bitget's ids-only reply is built in the shape its docs give,
as in tests/adapters/test_parity_bitget.py); what is checked is the request,
against each venue's documented fields:

* OKX v5 `POST /api/v5/trade/order` (sent as a batch of one): `ordType` limit,
  ioc or post_only with `px`; exits attached in `attachAlgoOrds` (`slTriggerPx`,
  `tpTriggerPx`, `*OrdPx=-1` for market); a take-profit is an algo order
  (`POST /api/v5/trade/order-algo`, `ordType=conditional`, `tpTriggerPx`).
* BingX swap v2 `POST /openApi/swap/v2/trade/order`: `type=LIMIT` with
  `timeInForce` GTC, IOC or PostOnly; a take-profit is `TAKE_PROFIT_MARKET`
  with `stopPrice`, reduce-only.
* Bitget v2 `POST /api/v2/mix/order/place-order`: `orderType=limit` with
  `force` GTC, IOC or post_only; a take-profit is a position TP plan
  (`POST /api/v2/mix/order/place-tpsl-order`, `planType=pos_profit`), cancelled
  through `cancel-plan-order` under that plan type.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.adapters.recorded_venue import recorded, recorded_venue, unsigned, venue_adapter
from tests.adapters.test_adapter_parity import LTC_BINGX, LTC_SWAP, _bingx_adapter, _bingx_replies, _okx_replies
from tests.adapters.test_parity_bitget import LTC, _bitget
from tests.adapters.test_parity_bitget import _replies as _bitget_replies
from twinstar.adapters.base import OpenOrder
from twinstar.bus.events import TimeInForce

pytestmark = pytest.mark.anyio
TIME_IN_FORCE: tuple[TimeInForce, ...] = ("gtc", "ioc", "post_only")


async def test_okx_limits_a_bracket_and_a_take_profit_in_okx_fields() -> None:
    async with recorded_venue(_okx_replies()) as venue:
        adapter = venue_adapter("okx", venue, recorded("okx")["markets"].values())
        try:
            assert await adapter.place_limit_order(LTC_SWAP, "buy", 1.0, 60.01, client_order_id="tw-gtc")
            bracket = await adapter.place_limit_order(
                LTC_SWAP,
                "buy",
                1.0,
                60.01,
                client_order_id="tw-br",
                stop_price=58.0,
                stop_client_order_id="tws-br",
                take_profit_price=70.0,
            )
            profit = await adapter.place_take_profit(LTC_SWAP, "long", 1.0, 70.0, client_order_id="twt-1")
        finally:
            await adapter.close()
    orders = [json.loads(r.body)[0] for r in venue.sent("POST", "/api/v5/trade/batch-orders")]
    assert [(o["ordType"], o["px"], o["clOrdId"]) for o in orders] == [  # gtc is OKX's plain limit
        ("limit", "60.01", "tw-gtc"),
        ("limit", "60.01", "tw-br"),
    ]
    assert orders[1]["attachAlgoOrds"] == [
        {
            "attachAlgoClOrdId": "tws-br",
            "slTriggerPx": "58",
            "slOrdPx": "-1",
            "slTriggerPxType": "last",
            "tpTriggerPx": "70",
            "tpOrdPx": "-1",
            "tpTriggerPxType": "last",
        }
    ]
    assert (bracket.stop_price, bracket.take_profit_price) == (58.0, 70.0)  # OKX cancels the other exit itself
    [algo] = venue.sent("POST", "/api/v5/trade/order-algo")
    assert profit.ok and json.loads(algo.body) == {
        "instId": "LTC-USDT-SWAP",
        "side": "sell",
        "ordType": "conditional",
        "sz": "1",
        "tdMode": "cross",
        "tpTriggerPx": "70",
        "tpOrdPx": "-1",
        "tpTriggerPxType": "last",
        "clOrdId": "twt-1",
        "reduceOnly": True,
    }


async def test_okx_time_in_force_becomes_its_order_type() -> None:
    async with recorded_venue(_okx_replies()) as venue:
        adapter = venue_adapter("okx", venue, recorded("okx")["markets"].values())
        try:
            for tif in ("ioc", "post_only"):
                await adapter.place_limit_order(LTC_SWAP, "buy", 1.0, 60.01, client_order_id="tw-x", time_in_force=tif)
        finally:
            await adapter.close()
    sent = [json.loads(r.body)[0]["ordType"] for r in venue.sent("POST", "/api/v5/trade/batch-orders")]
    assert sent == ["ioc", "post_only"]


async def test_bingx_limits_and_a_take_profit_in_bingx_fields() -> None:
    async with recorded_venue(_bingx_replies()) as venue:
        adapter = _bingx_adapter(venue)
        try:
            for tif in TIME_IN_FORCE:
                await adapter.place_limit_order(
                    LTC_BINGX, "buy", 0.1, 60.01, client_order_id=f"tw-{tif}", time_in_force=tif
                )
            profit = await adapter.place_take_profit(LTC_BINGX, "long", 0.1, 70.0, client_order_id="twt-1")
        finally:
            await adapter.close()
    *limits, take_profit = [unsigned(r.query) for r in venue.sent("POST", "/openApi/swap/v2/trade/order")]
    assert [(q["type"], q["price"], q["timeInForce"]) for q in limits] == [
        ("LIMIT", "60.01", "GTC"),
        ("LIMIT", "60.01", "IOC"),
        ("LIMIT", "60.01", "PostOnly"),
    ]
    assert profit.ok and take_profit == {
        "clientOrderID": "twt-1",
        "positionSide": "BOTH",
        "quantity": "0.1",
        "reduceOnly": "true",
        "side": "SELL",
        "stopPrice": "70",
        "symbol": "LTC-USDT",
        "type": "TAKE_PROFIT_MARKET",
    }


async def test_bitget_limits_and_a_position_take_profit_cancelled_under_its_plan_type() -> None:
    replies: dict[tuple[str, str], list[Any]] = _bitget_replies("twt-1")
    ids_only = replies["POST", "/api/v2/mix/order/place-order"]
    replies["POST", "/api/v2/mix/order/place-tpsl-order"] = ids_only
    replies["POST", "/api/v2/mix/order/cancel-plan-order"] = [
        {
            "code": "00000",
            "msg": "success",
            "requestTime": 1668134576535,
            "data": {"successList": [], "failureList": []},
        }
    ]
    async with recorded_venue(replies) as venue:
        adapter = _bitget(venue)
        try:
            for tif in TIME_IN_FORCE:
                await adapter.place_limit_order(LTC, "buy", 0.1, 60.01, client_order_id=f"tw-{tif}", time_in_force=tif)
            profit = await adapter.place_take_profit(LTC, "long", 0.1, 70.0, client_order_id="twt-1")
            order = OpenOrder(
                symbol=LTC,
                order_id="1001",
                client_order_id="twt-1",
                side="sell",
                qty=0.1,
                stop_price=70.0,
                reduce_only=True,
                take_profit=True,
            )
            await adapter.cancel_order(LTC, order)
        finally:
            await adapter.close()
    limits = [json.loads(r.body) for r in venue.sent("POST", "/api/v2/mix/order/place-order")]
    assert [(b["orderType"], b["price"], b["force"]) for b in limits] == [
        ("limit", "60.01", "GTC"),
        ("limit", "60.01", "IOC"),
        ("limit", "60.01", "post_only"),
    ]
    [tpsl] = venue.sent("POST", "/api/v2/mix/order/place-tpsl-order")
    body = json.loads(tpsl.body)
    assert profit.ok and {k: body[k] for k in ("planType", "triggerPrice", "holdSide", "clientOid")} == {
        "planType": "pos_profit",
        "triggerPrice": "70",
        "holdSide": "buy",  # one-way mode names the position by its opening side
        "clientOid": "twt-1",
    }
    [cancel] = venue.sent("POST", "/api/v2/mix/order/cancel-plan-order")
    assert json.loads(cancel.body)["planType"] == "pos_profit"
