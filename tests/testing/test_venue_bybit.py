"""The loopback Bybit v5 venue refuses, triggers, fills and pushes as Bybit does.

Unmodified ccxt.pro bybit talks to it over HTTP and WebSocket on 127.0.0.1
(Bybit's error table does not depend on the host); every assertion is on
what ccxt parsed from the venue's wire.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import ccxt
import ccxt.pro as ccxt_pro
import pytest

from twinstar.testing import BybitVenue, Failure, bybit_venue

pytestmark = pytest.mark.anyio
BTC = "BTC/USDT:USDT"
KEY, SECRET = "bybit-test-key", "bybit-test-secret"
STOP = {"triggerDirection": "descending", "reduceOnly": True}


async def _until(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def _bybit(**options: Any) -> AsyncIterator[tuple[BybitVenue, Any]]:
    """A venue that checks our key and signatures, and an unmodified ccxt.pro bybit pointed at it."""
    async with bybit_venue() as v:
        v.api_keys = {KEY: SECRET}
        exchange = ccxt_pro.bybit(
            {
                "apiKey": KEY,
                "secret": SECRET,
                "enableRateLimit": False,  # the loopback venue has no rate limit; ccxt's throttle only slows tests
                "options": {"defaultType": "swap", "fetchCurrencies": False, **options},
            }
        )
        v.point(exchange)
        try:
            await exchange.load_markets()
            yield v, exchange
        finally:
            await exchange.close()


def _ret(exc: BaseException) -> tuple[int, str]:
    body = json.loads(str(exc).split(" ", 1)[1])
    return body["retCode"], body["retMsg"]


async def test_a_conditional_stop_triggers_when_the_price_crosses_it_and_fills_at_the_price_reached() -> None:
    async with _bybit() as (v, ex):
        await ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "tw-open"})
        stop = await ex.create_order(
            BTC, "market", "sell", 0.01, None, {**STOP, "triggerPrice": 29_000, "clientOrderId": "tw-stop"}
        )
        assert await v.move_price(29_100.0) == []
        [filled] = await v.move_price(28_400.0)  # a gap through the trigger
        found = await ex.fetch_order(stop["id"], BTC, {"acknowledged": True})
        [by_link] = (
            await ex.privateGetV5OrderRealtime({"category": "linear", "symbol": "BTCUSDT", "orderLinkId": "tw-stop"})
        )["result"]["list"]
        [fill] = await ex.fetch_my_trades(BTC, params={"orderId": stop["id"]})
        positions = await ex.fetch_positions([BTC])
        balance = await ex.fetch_balance()
    assert (found["id"], found["clientOrderId"], found["status"], found["filled"], found["average"]) == (
        stop["id"],  # a triggered conditional order keeps its ids
        "tw-stop",
        "closed",
        0.01,
        28_400.0,
    )
    assert (by_link["orderStatus"], by_link["stopOrderType"], by_link["avgPrice"], by_link["cumExecFee"]) == (
        "Filled",
        "Stop",
        "28400",
        "0.1562",
    )
    assert filled["orderId"] == stop["id"]
    assert (fill["price"], fill["amount"], fill["fee"]["cost"]) == (28_400.0, 0.01, 0.1562)
    assert [p["contracts"] for p in positions] == [0.0]  # Bybit lists the symbol's (flat) position when asked by symbol
    # 10 000 - 0.165 entry fee - 16 realized loss - 0.1562 exit fee
    assert (balance["USDT"]["total"], v.positions) == (9_983.6788, {"BTCUSDT": 0.0})


async def test_a_short_stop_rises_to_its_trigger() -> None:
    async with _bybit() as (v, ex):
        await ex.create_order(BTC, "market", "sell", 0.01)
        await ex.create_order(
            BTC,
            "market",
            "buy",
            0.01,
            None,
            {"triggerPrice": 31_000, "triggerDirection": "ascending", "reduceOnly": True},
        )
        assert await v.move_price(30_900.0) == []
        [filled] = await v.move_price(31_250.0)
    assert (filled["side"], filled["avgPrice"], filled["orderStatus"], v.positions) == (
        "Buy",
        "31250",
        "Filled",
        {"BTCUSDT": 0.0},
    )


async def test_a_stop_that_would_trigger_at_once_is_refused() -> None:
    async with _bybit() as (v, ex):
        await ex.create_order(BTC, "market", "buy", 0.01)
        with pytest.raises(ccxt.InvalidOrder) as falling:
            await ex.create_order(BTC, "market", "sell", 0.01, None, {**STOP, "triggerPrice": 30_100})
        with pytest.raises(ccxt.InvalidOrder) as rising:
            await ex.create_order(
                BTC, "market", "buy", 0.01, None, {"triggerPrice": 29_900, "triggerDirection": "ascending"}
            )
    assert [_ret(falling.value), _ret(rising.value)] == [
        (110093, "expect Falling, but trigger_price[30100.0] >= current[30000.0]"),
        (110092, "expect Rising, but trigger_price[29900.0] <= current[30000.0]"),
    ]
    assert [o["orderStatus"] for o in v.orders.values()] == ["Filled"]


async def test_an_attached_stop_loss_becomes_the_positions_and_triggers_like_a_conditional_order() -> None:
    async with _bybit() as (v, ex):
        await ex.create_order(
            BTC, "market", "buy", 0.01, None, {"clientOrderId": "tw-open", "stopLoss": 29_000, "takeProfit": 32_000}
        )
        [position] = await ex.fetch_positions([BTC])
        stops = await ex.fetch_open_orders(BTC, None, None, {"trigger": True})
        [filled] = await v.move_price(28_700.0)
        left = await ex.fetch_open_orders(BTC, None, None, {"trigger": True})
        [after] = (await ex.privateGetV5PositionList({"category": "linear", "symbol": "BTCUSDT"}))["result"]["list"]
    assert v.created[0] | {"orderLinkId": "tw-open"} == {
        "symbol": "BTCUSDT",
        "side": "Buy",
        "orderType": "Market",
        "orderLinkId": "tw-open",
        "category": "linear",
        "qty": "0.01",
        "stopLoss": "29000",  # as ccxt 4.5.90 attaches it
        "takeProfit": "32000",
    }
    assert (position["stopLossPrice"], position["takeProfitPrice"], position["entryPrice"]) == (
        29_000.0,
        32_000.0,
        30_000.0,
    )
    assert sorted(
        (o["info"]["stopOrderType"], o["info"]["createType"], o["triggerPrice"], o["amount"], o["side"]) for o in stops
    ) == [
        ("StopLoss", "CreateByStopLoss", 29_000.0, 0.01, "sell"),
        ("TakeProfit", "CreateByTakeProfit", 32_000.0, 0.01, "sell"),
    ]
    assert (filled["stopOrderType"], filled["orderStatus"], filled["avgPrice"], filled["parentOrderLinkId"]) == (
        "StopLoss",
        "Filled",
        "28700",
        "tw-open",
    )
    assert left == []  # the take profit went with the position
    assert (after["size"], after["stopLoss"], after["takeProfit"], v.positions) == (
        "0",
        "0.00",
        "0.00",
        {"BTCUSDT": 0.0},
    )


async def test_the_trading_stop_endpoint_sets_moves_and_clears_the_positions_stop_loss() -> None:
    async with _bybit() as (v, ex):
        base = {"category": "linear", "symbol": "BTCUSDT", "tpslMode": "Full", "positionIdx": 0}
        with pytest.raises(ccxt.BadRequest) as flat:
            await ex.privatePostV5PositionTradingStop(base | {"stopLoss": "29000"})
        await ex.create_order(BTC, "market", "buy", 0.01)
        await ex.privatePostV5PositionTradingStop(base | {"stopLoss": "29000"})
        with pytest.raises(ccxt.ExchangeError) as same:
            await ex.privatePostV5PositionTradingStop(base | {"stopLoss": "29000"})
        with pytest.raises(ccxt.BadRequest) as above:
            await ex.privatePostV5PositionTradingStop(base | {"stopLoss": "30500"})
        await ex.privatePostV5PositionTradingStop(base | {"stopLoss": "29500"})
        [moved] = await ex.fetch_positions([BTC])
        stops = [
            (o["info"]["orderStatus"], o["triggerPrice"])
            for o in await ex.fetch_open_orders(BTC, None, None, {"trigger": True})
        ]
        await ex.privatePostV5PositionTradingStop(base | {"stopLoss": "0"})
        cleared = await ex.fetch_open_orders(BTC, None, None, {"trigger": True})
        [position] = await ex.fetch_positions([BTC])
        # ccxt's own way: a stop-loss order for a size goes to trading-stop as a Partial TP/SL
        await ex.create_order(
            BTC, "market", "sell", 0.004, None, {"stopLossPrice": 29_200, "tradingStopEndpoint": True}
        )
        [partial] = await ex.fetch_open_orders(BTC, None, None, {"trigger": True})
    assert [_ret(flat.value), _ret(same.value), _ret(above.value)] == [
        (10001, "can not set tp/sl/ts for zero position"),
        (34040, "not modified"),
        (10001, "StopLoss:3050000000000 set for Buy position should lower than base_price:3000000000000??LastPrice"),
    ]
    assert (moved["stopLossPrice"], stops) == (29_500.0, [("Untriggered", 29_500.0)])
    assert (cleared, position["info"]["stopLoss"]) == ([], "0.00")
    assert v.trading_stops[-1] == {
        "symbol": "BTCUSDT",
        "stopLoss": "29200",
        "slOrderType": "Market",
        "slSize": "0.004",
        "tpslMode": "Partial",
        "category": "linear",
    }
    assert (partial["info"]["stopOrderType"], partial["amount"], partial["triggerPrice"]) == (
        "PartialStopLoss",
        0.004,
        29_200.0,
    )


FILTER_CASES: list[tuple[dict[str, Any], int, str]] = [
    ({"orderType": "Market", "qty": "0.0005"}, 10001, "The number of contracts exceeds minimum limit allowed"),
    ({"orderType": "Market", "qty": "0.0015"}, 10001, "Qty invalid"),
    ({"orderType": "Market", "qty": "120"}, 10001, "The number of contracts exceeds maximum limit allowed"),
    ({"orderType": "Limit", "qty": "0.01", "price": "29000.05"}, 10001, "params error: price invalid"),
    (
        {"orderType": "Market", "qty": "0.01", "triggerPrice": "31000.05", "triggerDirection": 1},
        10001,
        "params error: triggerPrice invalid",
    ),
    (
        {"orderType": "Market", "qty": "0.001", "price": "0"},
        110094,
        "Order does not meet minimum order value 5USDT",
    ),
]


async def test_an_order_outside_the_instruments_filters_gets_bybits_retcode() -> None:
    refusals = []
    async with _bybit() as (v, ex):
        for body, code, _message in FILTER_CASES:
            v.price = 1_000.0 if code == 110094 else 30_000.0  # 0.001 BTC is then 1 USDT
            with pytest.raises((ccxt.BadRequest, ccxt.InvalidOrder)) as refused:
                await ex.privatePostV5OrderCreate({"category": "linear", "symbol": "BTCUSDT", "side": "Buy", **body})
            refusals.append(_ret(refused.value))
    assert refusals == [(code, message) for _body, code, message in FILTER_CASES]
    assert v.orders == {}


async def test_orders_are_found_by_id_and_link_id_listed_with_and_without_the_stop_filter_and_cancelled() -> None:
    async with _bybit() as (v, ex):
        await ex.create_order(BTC, "market", "buy", 0.02)
        limit = await ex.create_order(BTC, "limit", "buy", 0.01, 29_000, {"clientOrderId": "tw-limit"})
        stop = await ex.create_order(
            BTC, "market", "sell", 0.01, None, {**STOP, "triggerPrice": 28_000, "clientOrderId": "tw-stop"}
        )
        by_id = await ex.fetch_order(limit["id"], BTC, {"acknowledged": True})
        everything = await ex.fetch_open_orders(BTC)
        stops = await ex.fetch_open_orders(BTC, None, None, {"trigger": True})
        plain = await ex.fetch_open_orders(BTC, None, None, {"orderFilter": "Order"})
        await ex.cancel_order(None, BTC, {"orderLinkId": "tw-limit"})
        await ex.cancel_order(stop["id"], BTC)
        with pytest.raises(ccxt.OrderNotFound) as gone:
            await ex.cancel_order(stop["id"], BTC)
        left = await ex.fetch_open_orders(BTC)
    assert (by_id["clientOrderId"], by_id["status"], by_id["price"]) == ("tw-limit", "open", 29_000.0)
    # Every kind (ccxt sorts oldest first; two orders placed in the same millisecond may come either way).
    assert sorted(o["clientOrderId"] for o in everything) == ["tw-limit", "tw-stop"]
    assert ([o["id"] for o in stops], [o["id"] for o in plain]) == ([stop["id"]], [limit["id"]])
    assert _ret(gone.value) == (110001, "order not exists or too late to cancel")
    assert (left, v.orders["tw-limit"]["orderStatus"], v.orders["tw-stop"]["orderStatus"]) == (
        [],
        "Cancelled",
        "Deactivated",
    )


async def test_an_untriggered_stop_is_amended_as_ccxts_edit_order_sends_it() -> None:
    async with _bybit() as (v, ex):
        await ex.create_order(BTC, "market", "buy", 0.02)
        stop = await ex.create_order(
            BTC, "market", "sell", 0.01, None, {**STOP, "triggerPrice": 28_000, "clientOrderId": "tw-stop"}
        )
        await ex.edit_order(stop["id"], BTC, "market", "sell", 0.02, None, {"triggerPrice": 29_000})
        with pytest.raises(ccxt.InvalidOrder) as at_once:
            await ex.edit_order(stop["id"], BTC, "market", "sell", 0.02, None, {"triggerPrice": 30_500})
        with pytest.raises(ccxt.BadRequest) as unchanged:
            await ex.edit_order(stop["id"], BTC, "market", "sell", 0.02, None, {"triggerPrice": 29_000})
        [filled] = await v.move_price(28_900.0)
        with pytest.raises(ccxt.OrderNotFound) as too_late:
            await ex.edit_order(stop["id"], BTC, "market", "sell", 0.01, None, {"triggerPrice": 28_000})
    assert v.amends[0] == {
        "symbol": "BTCUSDT",
        "orderId": stop["id"],
        "category": "linear",
        "qty": "0.02",
        "triggerPrice": 29000,
        "triggerBy": "LastPrice",
    }
    assert [_ret(at_once.value), _ret(unchanged.value), _ret(too_late.value)] == [
        (110093, "expect Falling, but trigger_price[30500] >= current[30000.0]"),
        (10001, "order not modified"),
        (110001, "order not exists or too late to replace"),
    ]
    assert (filled["qty"], filled["cumExecQty"], filled["triggerPrice"], v.positions) == (
        "0.02",
        "0.02",
        "29000",
        {"BTCUSDT": 0.0},
    )


async def test_a_reused_link_id_is_refused_even_after_its_order_closed() -> None:
    async with _bybit() as (v, ex):
        await ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "tw-dup"})
        with pytest.raises(ccxt.InvalidOrder) as duplicate:
            await ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "tw-dup"})
    assert _ret(duplicate.value) == (110072, "OrderLinkedID is duplicate")
    assert v.positions == {"BTCUSDT": 0.01}


async def test_the_private_stream_pushes_orders_executions_positions_and_the_wallet_as_they_happen() -> None:
    async with _bybit() as (v, ex):
        orders = asyncio.ensure_future(ex.watch_orders(BTC))
        trades = asyncio.ensure_future(ex.watch_my_trades(BTC))
        await _until(lambda: {"order", "execution"} <= {t for s in v.streams.values() if s.private for t in s.topics})
        await ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "tw-open"})
        await orders
        [trade] = await trades
        trade_view = (trade["order"], trade["price"], trade["amount"], trade["fee"]["cost"], trade["takerOrMaker"])
        snapshot = [(p["contracts"], p["entryPrice"]) for p in await ex.watch_positions([BTC])]  # ccxt asks REST first
        positions = asyncio.ensure_future(ex.watch_positions([BTC]))
        await _until(lambda: "position" in {t for s in v.streams.values() for t in s.topics})
        await ex.create_order(
            BTC, "market", "sell", 0.01, None, {**STOP, "triggerPrice": 29_000, "clientOrderId": "tw-stop"}
        )
        await v.move_price(28_600.0)
        [position] = await positions
        position_view = (position["symbol"], position["contracts"], position["side"])
        cached = lambda: {o["clientOrderId"]: (o["status"], o["filled"], o["average"]) for o in ex.orders}  # noqa: E731
        await _until(lambda: cached().get("tw-stop", ("",))[0] == "closed")
    opened = v.orders["tw-open"]["orderId"]
    assert trade_view == (opened, 30_000.0, 0.01, 0.165, "taker")
    assert (snapshot, position_view) == ([(0.01, 30_000.0)], (BTC, 0.0, None))  # flat once the stop filled
    assert cached() == {"tw-open": ("closed", 0.01, 30_000.0), "tw-stop": ("closed", 0.01, 28_600.0)}


async def test_the_private_stream_needs_a_valid_signature() -> None:
    async with _bybit() as (v, _ex):
        session = aiohttp.ClientSession()
        try:
            async with session.ws_connect(f"ws://127.0.0.1:{v.port}/v5/private") as ws:
                await ws.send_json({"op": "subscribe", "req_id": "1", "args": ["order"]})
                early = await ws.receive_json()
                expires = str(v.now_ms() + 10_000)
                await ws.send_json({"op": "auth", "args": [KEY, expires, "0" * 64]})
                forged = await ws.receive_json()
                signature = hmac.new(SECRET.encode(), f"GET/realtime{expires}".encode(), hashlib.sha256).hexdigest()
                await ws.send_json({"op": "auth", "args": [KEY, expires, signature]})
                signed = await ws.receive_json()
        finally:
            await session.close()
    assert (early["success"], early["ret_msg"], forged["success"], forged["ret_msg"]) == (
        False,
        "Request not authorized",
        False,
        "error:USVC1111",
    )
    assert (signed["success"], signed["op"]) == (True, "auth")


async def test_kline_frames_go_only_to_their_subscribers() -> None:
    async with _bybit() as (v, ex):
        watching = asyncio.ensure_future(ex.watch_ohlcv(BTC, "1m"))
        await _until(lambda: "kline.1.BTCUSDT" in v.subscriptions)
        session = aiohttp.ClientSession()
        try:
            async with session.ws_connect(f"ws://127.0.0.1:{v.port}/v5/public/linear") as eth:
                await eth.send_json({"op": "subscribe", "req_id": "7", "args": ["kline.1.ETHUSDT"]})
                ack = await eth.receive_json()
                await v.push_kline("BTCUSDT", "1", 1_700_000_040_000, 60_000, 30_001.0)
                await v.push_kline("ETHUSDT", "1", 1_700_000_040_000, 60_000, 2_001.0)
                frame = await eth.receive_json()
                [bar] = await watching
        finally:
            await session.close()
    assert (ack["op"], ack["req_id"], frame["topic"]) == ("subscribe", "7", "kline.1.ETHUSDT")  # never the BTC frame
    assert bar == [1_700_000_040_000, 30_001.0, 30_002.0, 30_000.0, 30_001.0, 0.329]


async def test_a_signed_request_outside_its_receive_window_is_refused() -> None:
    outcomes = []
    async with _bybit() as (v, ex):
        for venue_offset_ms in (3_000, -3_000, 6_000):  # the venue 3 s ahead, 3 s behind, 6 s ahead
            v.offset_ms = venue_offset_ms
            try:
                placed = await ex.create_order(BTC, "market", "buy", 0.01)
                outcomes.append(placed["id"] != "")
            except ccxt.InvalidNonce as exc:
                outcomes.append(_ret(exc)[0])
    assert outcomes == [True, 10002, 10002]
    assert len(v.orders) == 1


async def test_a_request_that_arrives_late_executes_only_inside_its_receive_window() -> None:
    books = []
    async with _bybit() as (v, ex):
        await ex.is_unified_enabled()
        ex.timeout = 100  # ms: the client gives up long before the venue sees the request
        for recv_window, link in ((150, "tw-too-late"), (5_000, "tw-late")):
            ex.options["recvWindow"] = recv_window
            v.failures.append(Failure(arrives_late=True, delay_s=0.4, path="/v5/order/create"))
            with pytest.raises(ccxt.RequestTimeout):
                await ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": link})
            await _until(lambda: v.held == 0)
            books.append((list(v.orders), dict(v.positions)))
    assert books == [([], {}), (["tw-late"], {"BTCUSDT": 0.01})]  # beyond its window it never executes


async def test_positions_carry_the_average_entry_and_the_wallet_the_realized_pnl_and_fees() -> None:
    async with _bybit() as (v, ex):
        await ex.create_order(BTC, "market", "buy", 0.01)  # fee 0.165
        await v.move_price(32_000.0)
        await ex.create_order(BTC, "market", "buy", 0.01)  # fee 0.176, entry now 31 000
        await v.move_price(33_000.0)
        await ex.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})  # +20 realized, fee 0.1815
        [position] = await ex.fetch_positions([BTC])
        wallet = (await ex.privateGetV5AccountWalletBalance({"accountType": "UNIFIED"}))["result"]["list"][0]
    assert (position["contracts"], position["entryPrice"], position["unrealizedPnl"]) == (0.01, 31_000.0, 20.0)
    assert (wallet["totalWalletBalance"], wallet["totalEquity"], wallet["coin"][0]["cumRealisedPnl"]) == (
        "10019.4775",  # 10 000 - 0.165 - 0.176 + 20 - 0.1815
        "10039.4775",
        "20",
    )


async def test_an_unserved_path_is_a_404_page_and_an_outage_a_503() -> None:
    async with _bybit() as (v, ex):
        session = aiohttp.ClientSession()
        try:
            async with session.get(f"{v.base}/v5/no/such/endpoint") as missing:
                page = (missing.status, await missing.text())
            with pytest.raises(ccxt.ExchangeNotAvailable, match="404"):
                await ex.privateGetV5PositionClosedPnl({"category": "linear"})  # real, not served here
            v.down = True
            async with session.get(f"{v.base}/v5/market/time") as outage:
                down = (outage.status, await outage.text())
        finally:
            await session.close()
    assert page == (404, "404 page not found")
    assert down == (503, "<html><body>503 Service Temporarily Unavailable</body></html>")


async def test_a_position_flipped_through_zero_loses_its_old_stop_loss() -> None:
    async with _bybit() as (v, ex):
        await ex.create_order(BTC, "market", "buy", 0.01, None, {"stopLoss": 29_000})
        await ex.create_order(BTC, "market", "sell", 0.03)  # now short 0.02: a long's stop would buy more
        stops = await ex.fetch_open_orders(BTC, None, None, {"trigger": True})
        [position] = await ex.fetch_positions([BTC])
        assert await v.move_price(28_000.0) == []
    assert (stops, position["side"], position["contracts"], position["info"]["stopLoss"]) == ([], "short", 0.02, "0.00")
    assert [
        (o["stopOrderType"], o["orderStatus"], o["cancelType"]) for o in v.orders.values() if o["stopOrderType"]
    ] == [("StopLoss", "Deactivated", "CancelByTpSlTsClear")]
