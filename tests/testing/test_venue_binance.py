"""The loopback Binance USD-M venue refuses, triggers, fills and pushes as Binance does.

Unmodified ccxt.pro talks to it under Binance's real host names (TLS on
loopback), so ccxt applies its USD-M error table exactly as against
fapi.binance.com; every assertion is on what ccxt parsed from the venue's wire.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import ccxt
import ccxt.pro as ccxt_pro
import pytest

from twinstar.testing import Failure, Venue, venue

pytestmark = pytest.mark.anyio
BTC = "BTC/USDT:USDT"
HOSTS = ("fapi.binance.com", "fstream.binance.com")


async def _until(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@asynccontextmanager
async def _binance(**options: Any) -> AsyncIterator[tuple[Venue, Any]]:
    """A venue under Binance's host names and an unmodified ccxt.pro binanceusdm that reaches only it."""
    async with venue(tls_hosts=HOSTS) as v:
        session = v.client_session()
        exchange = ccxt_pro.binanceusdm(
            {
                "session": session,
                "apiKey": "test-key",
                "secret": "test-secret",
                "enableRateLimit": False,  # the loopback venue has no rate limit; ccxt's throttle only slows tests
                "options": {"fetchCurrencies": False, **options},
            }
        )
        try:
            await exchange.load_markets()
            yield v, exchange
        finally:
            await exchange.close()
            await session.close()


def _user_stream(v: Venue) -> bool:
    return any(s.private for s in v.streams.values())


async def test_a_stop_triggers_when_the_price_crosses_it_and_fills_at_the_price_reached() -> None:
    async with _binance() as (v, ex):
        await ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "tw-open"})
        stop = await ex.create_order(
            BTC, "market", "sell", 0.01, None, {"triggerPrice": 29_000, "reduceOnly": True, "clientOrderId": "tw-stop"}
        )
        assert await v.move_price(29_500.0) == []  # not crossed: the stop rests
        [child] = await v.move_price(28_500.0)  # a gap through the trigger
        found = await ex.fetch_order(None, BTC, {"clientOrderId": "tw-stop"})  # as ccxt looks an order up
        algo = await ex.fetch_order(stop["id"], BTC, {"trigger": True})
        [fill] = await ex.fetch_my_trades(BTC, params={"orderId": found["id"]})
        positions = await ex.fetch_positions([BTC])
        balance = await ex.fetch_balance()
    assert (found["id"], found["clientOrderId"], found["status"], found["type"], found["side"]) == (
        str(child["orderId"]),
        "tw-stop",  # the triggered order carries the algo's client id
        "closed",
        "market",
        "sell",
    )
    assert (found["filled"], found["average"], found["reduceOnly"]) == (0.01, 28_500.0, True)
    assert (algo["status"], algo["info"]["algoStatus"], algo["info"]["actualOrderId"], algo["info"]["actualPrice"]) == (
        "closed",
        "FINISHED",
        found["id"],
        "28500.00000",
    )
    assert (fill["price"], fill["amount"], fill["fee"]) == (28_500.0, 0.01, {"cost": 0.1425, "currency": "USDT"})
    assert positions == []
    # 10 000 - 0.15 entry fee - 15 realized loss - 0.1425 exit fee
    assert (balance["USDT"]["total"], v.balance, v.positions) == (
        9_984.7075,
        pytest.approx(9_984.7075),
        {"BTCUSDT": 0.0},
    )


async def test_a_short_stop_rises_to_its_trigger_and_a_take_profit_falls_to_its_own() -> None:
    async with _binance() as (v, ex):
        await ex.create_order(BTC, "market", "sell", 0.02, None, {"clientOrderId": "tw-short"})
        await ex.create_order(BTC, "STOP_MARKET", "buy", 0.01, None, {"stopPrice": 31_000, "reduceOnly": True})
        await ex.create_order(BTC, "TAKE_PROFIT_MARKET", "buy", 0.01, None, {"stopPrice": 29_000, "reduceOnly": True})
        assert await v.move_price(30_500.0) == []
        [profit] = await v.move_price(28_900.0)
        [stop] = await v.move_price(31_200.0)
    assert [(o["side"], o["avgPrice"], o["executedQty"]) for o in (profit, stop)] == [
        ("BUY", "28900.00000", "0.010"),
        ("BUY", "31200.00000", "0.010"),
    ]
    assert v.positions == {"BTCUSDT": 0.0}


async def test_a_stop_that_would_trigger_at_once_is_refused() -> None:
    async with _binance() as (v, ex):
        await ex.create_order(BTC, "market", "buy", 0.01)
        with pytest.raises(
            ccxt.OrderImmediatelyFillable, match=r'"code": -2021, "msg": "Order would immediately trigger."'
        ):
            await ex.create_order(BTC, "market", "sell", 0.01, None, {"triggerPrice": 30_100, "reduceOnly": True})
        with pytest.raises(ccxt.OrderImmediatelyFillable, match="-2021"):
            await ex.create_order(BTC, "STOP_MARKET", "buy", 0.01, None, {"stopPrice": 29_900})
    assert v.algo_orders == {}


FILTER_CASES: list[tuple[dict[str, str], type[Exception], int, str]] = [
    (
        {"type": "MARKET", "quantity": "0.0015"},
        ccxt.BadRequest,
        -1111,
        "Precision is over the maximum defined for this asset.",
    ),
    ({"type": "MARKET", "quantity": "0"}, ccxt.BadRequest, -4003, "Quantity less than or equal to zero."),
    ({"type": "MARKET", "quantity": "1001"}, ccxt.BadRequest, -4005, "Quantity greater than max quantity."),
    (
        {"type": "LIMIT", "quantity": "0.01", "price": "29000.005", "timeInForce": "GTC"},
        ccxt.BadRequest,
        -1111,
        "Precision is over the maximum defined for this asset.",
    ),
    (
        {"type": "LIMIT", "quantity": "0.01", "price": "500", "timeInForce": "GTC"},
        ccxt.BadRequest,
        -4013,
        "Price less than min price.",
    ),
    (
        {"type": "STOP_MARKET", "quantity": "0.01", "stopPrice": "29000"},
        ccxt.InvalidOrder,
        -4120,
        "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.",
    ),
]


async def test_an_order_outside_the_recorded_filters_gets_binances_code() -> None:
    refusals = []
    async with _binance() as (v, ex):
        for params, error, _code, _msg in FILTER_CASES:
            with pytest.raises(error) as refused:
                await ex.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "BUY", **params})
            refusals.append(json.loads(str(refused.value).split(" ", 1)[1]))
    assert refusals == [{"code": code, "msg": msg} for _params, _error, code, msg in FILTER_CASES]
    assert v.orders == {}


async def test_a_price_off_the_tick_is_refused_and_a_trigger_too() -> None:
    # BTCUSDT's tickSize is 0.10 today (the 2021 recording has 0.01, equal to its precision): serve that filter.
    info = json.loads(Venue().exchange_info)
    [btc] = [s for s in info["symbols"] if s["symbol"] == "BTCUSDT"]
    [price_filter] = [f for f in btc["filters"] if f["filterType"] == "PRICE_FILTER"]
    price_filter |= {"tickSize": "0.10", "minPrice": "556.80"}
    async with venue(tls_hosts=HOSTS) as v:
        v.exchange_info = json.dumps(info)
        session = v.client_session()
        ex = ccxt_pro.binanceusdm(
            {
                "session": session,
                "apiKey": "k",
                "secret": "s",
                "enableRateLimit": False,
                "options": {"fetchCurrencies": False},
            }
        )
        try:
            await ex.load_markets()
            with pytest.raises(ccxt.BadRequest, match=r'"code": -4014, "msg": "Price not increased by tick size."'):
                await ex.fapiPrivatePostOrder(
                    {
                        "symbol": "BTCUSDT",
                        "side": "BUY",
                        "type": "LIMIT",
                        "quantity": "0.01",
                        "price": "29000.05",
                        "timeInForce": "GTC",
                    }
                )
            with pytest.raises(ccxt.BadRequest, match="-4014"):
                await ex.fapiPrivatePostAlgoOrder(
                    {
                        "symbol": "BTCUSDT",
                        "side": "SELL",
                        "type": "STOP_MARKET",
                        "quantity": "0.01",
                        "triggerPrice": "29000.05",
                        "algoType": "CONDITIONAL",
                    }
                )
            placed = await ex.create_order(BTC, "limit", "buy", 0.01, 29_000.04)  # ccxt rounds to the served tick
        finally:
            await ex.close()
            await session.close()
    assert (placed["price"], placed["status"]) == (29_000.0, "open")


async def test_min_notional_is_refused_unless_reduce_only() -> None:
    async with _binance() as (v, ex):
        await ex.create_order(BTC, "market", "buy", 0.01)
        await v.move_price(1_000.0)
        with pytest.raises(ccxt.InvalidOrder) as refused:
            await ex.create_order(BTC, "market", "buy", 0.001)  # 1 USDT
        closing = await ex.create_order(BTC, "market", "sell", 0.001, None, {"reduceOnly": True})
    assert json.loads(str(refused.value).split(" ", 1)[1]) == {
        "code": -4164,
        "msg": "Order's notional must be no smaller than 5 (unless you choose reduce only).",
    }
    assert (closing["status"], closing["filled"], v.positions) == ("closed", 0.001, {"BTCUSDT": 0.009})


async def test_orders_are_found_listed_and_cancelled_by_exchange_id_and_by_client_id() -> None:
    async with _binance() as (v, ex):
        await ex.create_order(BTC, "market", "buy", 0.02)
        limit = await ex.create_order(BTC, "limit", "buy", 0.01, 29_000, {"clientOrderId": "tw-limit"})
        stop = await ex.create_order(
            BTC, "market", "sell", 0.01, None, {"triggerPrice": 28_000, "reduceOnly": True, "clientOrderId": "tw-stop"}
        )
        stop2 = await ex.create_order(BTC, "market", "sell", 0.01, None, {"triggerPrice": 27_000, "reduceOnly": True})
        by_id = await ex.fetch_order(limit["id"], BTC)
        by_cid = await ex.fetch_order(None, BTC, {"clientOrderId": "tw-limit"})
        algo_by_cid = await ex.fetch_order(None, BTC, {"trigger": True, "clientOrderId": "tw-stop"})
        plain = await ex.fetch_open_orders(BTC)
        stops = await ex.fetch_open_orders(BTC, None, None, {"trigger": True})
        await ex.cancel_order(None, BTC, {"clientOrderId": "tw-limit"})
        await ex.cancel_order(None, BTC, {"trigger": True, "clientOrderId": "tw-stop"})
        await ex.cancel_order(stop2["id"], BTC, {"trigger": True})
        with pytest.raises(ccxt.OrderNotFound, match="-2011"):
            await ex.cancel_order(limit["id"], BTC)  # no longer open
        with pytest.raises(ccxt.OrderNotFound, match="-2013"):
            await ex.fetch_order("999999", BTC)
        left = (await ex.fetch_open_orders(BTC), await ex.fetch_open_orders(BTC, None, None, {"trigger": True}))
    assert (by_id["clientOrderId"], by_cid["id"], by_id["status"], algo_by_cid["id"]) == (
        "tw-limit",
        limit["id"],
        "open",
        stop["id"],
    )
    assert [o["id"] for o in plain] == [limit["id"]]
    assert [(o["id"], o["clientOrderId"], o["triggerPrice"]) for o in stops] == [
        (stop["id"], "tw-stop", 28_000.0),
        (stop2["id"], stop2["clientOrderId"], 27_000.0),
    ]
    assert left == ([], [])
    assert ("GET", "/fapi/v1/openAlgoOrders") in v.requests
    assert [a["algoStatus"] for a in v.algo_orders.values()] == ["CANCELED", "CANCELED"]


async def test_a_client_id_is_refused_while_its_order_is_open_and_reusable_after() -> None:
    async with _binance() as (v, ex):
        await ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "tw-m"})
        again = await ex.create_order(
            BTC, "market", "buy", 0.01, None, {"clientOrderId": "tw-m"}
        )  # the first is filled
        await ex.create_order(BTC, "limit", "buy", 0.01, 29_000, {"clientOrderId": "tw-l"})
        with pytest.raises(ccxt.InvalidOrder, match=r'"code": -4116, "msg": "clientOrderId is duplicated"'):
            await ex.create_order(BTC, "limit", "buy", 0.01, 28_000, {"clientOrderId": "tw-l"})
        await ex.cancel_order(None, BTC, {"clientOrderId": "tw-l"})
        reused = await ex.create_order(BTC, "limit", "buy", 0.01, 28_000, {"clientOrderId": "tw-l"})
        stop_params = {"triggerPrice": 27_000, "reduceOnly": True, "clientOrderId": "tw-s"}
        await ex.create_order(BTC, "market", "sell", 0.01, None, stop_params)
        with pytest.raises(ccxt.InvalidOrder, match="-4116"):
            await ex.create_order(BTC, "market", "sell", 0.01, None, stop_params)
        await ex.cancel_order(None, BTC, {"trigger": True, "clientOrderId": "tw-s"})
        stop_again = await ex.create_order(BTC, "market", "sell", 0.01, None, stop_params)
        found = await ex.fetch_order(None, BTC, {"clientOrderId": "tw-l"})
    assert (again["status"], reused["status"], stop_again["status"]) == ("closed", "open", "open")
    assert (found["id"], found["price"]) == (reused["id"], 28_000.0)  # the client id finds its newest order
    assert [o["status"] for o in v.orders_by_id.values()] == ["FILLED", "FILLED", "CANCELED", "NEW"]


async def test_the_user_data_stream_pushes_every_fill_trigger_and_cancel_at_once() -> None:
    async with _binance() as (v, ex):
        watching = asyncio.ensure_future(ex.watch_orders(BTC))
        positions = await ex.watch_positions([BTC])  # the REST snapshot; the stream keeps it current
        await _until(lambda: _user_stream(v))
        await ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "tw-open"})
        await watching
        stop = await ex.create_order(
            BTC, "market", "sell", 0.01, None, {"triggerPrice": 29_000, "reduceOnly": True, "clientOrderId": "tw-stop"}
        )
        limit = await ex.create_order(BTC, "limit", "buy", 0.01, 28_000, {"clientOrderId": "tw-limit"})
        await ex.cancel_order(limit["id"], BTC)
        await _until(lambda: [o["status"] for o in ex.orders if o["clientOrderId"] == "tw-limit"] == ["canceled"])
        await v.move_price(28_800.0)
        cached = lambda: {(o["id"], o["clientOrderId"]): (o["status"], o["filled"], o["average"]) for o in ex.orders}  # noqa: E731
        await _until(lambda: cached().get((stop["id"], "tw-stop"), ("",))[0] == "closed")
        await _until(lambda: len(cached()) == 4 and ex.positions["linear"][-1]["contracts"] == 0)
        await _until(lambda: ex.balance.get("linear", {}).get("USDT", {}).get("total") == v.balance)
        snapshot_len = len(positions)
    opened, child = v.orders["tw-open"], v.orders["tw-stop"]
    assert cached() == {
        (str(opened["orderId"]), "tw-open"): ("closed", 0.01, 30_000.0),
        (stop["id"], "tw-stop"): ("closed", 0.01, 28_800.0),  # the algo order (ALGO_UPDATE, FINISHED)
        (limit["id"], "tw-limit"): ("canceled", 0.0, None),
        (str(child["orderId"]), "tw-stop"): ("closed", 0.01, 28_800.0),  # the order it triggered
    }
    last_trade = next(o for o in ex.orders if o["id"] == str(child["orderId"]))["info"]
    assert {k: last_trade[k] for k in ("x", "X", "c", "o", "l", "L", "ap", "N", "n", "R")} == {
        "x": "TRADE",
        "X": "FILLED",
        "c": "tw-stop",
        "o": "MARKET",
        "l": "0.010",
        "L": "28800",
        "ap": "28800.00000",
        "N": "USDT",
        "n": "0.14400000",
        "R": True,
    }
    assert (snapshot_len, ex.positions["linear"][0]["symbol"]) == (0, BTC)
    assert ("POST", "/fapi/v1/listenKey") in v.requests


async def test_watch_positions_follows_the_average_entry_from_account_updates() -> None:
    async with _binance() as (v, ex):
        assert await ex.watch_positions([BTC]) == []  # ccxt's first answer is the REST snapshot
        watching = asyncio.ensure_future(ex.watch_positions([BTC]))  # this one opens the user-data stream
        await _until(lambda: _user_stream(v))
        await ex.create_order(BTC, "market", "buy", 0.01)
        [update] = await watching
        first = (update["side"], update["contracts"], update["entryPrice"])  # ccxt updates its cache entries in place
        await v.move_price(31_000.0)
        await ex.create_order(BTC, "market", "buy", 0.01)
        await _until(lambda: ex.positions["linear"][-1]["contracts"] == 0.02)
        latest = ex.positions["linear"][-1]
        [rest] = await ex.fetch_positions([BTC])
    assert [first, (latest["side"], latest["contracts"], latest["entryPrice"])] == [
        ("long", 0.01, 30_000.0),
        ("long", 0.02, 30_500.0),
    ]
    assert (rest["side"], rest["contracts"], rest["entryPrice"], rest["markPrice"], rest["unrealizedPnl"]) == (
        "long",
        0.02,
        30_500.0,
        31_000.0,
        10.0,
    )


async def test_positions_carry_the_average_entry_and_the_wallet_the_realized_pnl_and_fees() -> None:
    async with _binance() as (v, ex):
        await ex.create_order(BTC, "market", "buy", 0.01)  # fee 0.15
        await v.move_price(32_000.0)
        await ex.create_order(BTC, "market", "buy", 0.01)  # fee 0.16, entry now 31 000
        await v.move_price(33_000.0)
        await ex.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})  # +20 realized, fee 0.165
        [position] = await ex.fetch_positions([BTC])
        balance = await ex.fetch_balance()
    assert (position["contracts"], position["entryPrice"], position["unrealizedPnl"]) == (0.01, 31_000.0, 20.0)
    wallet = 10_000 - 0.15 - 0.16 + 20 - 0.165
    assert balance["info"]["totalWalletBalance"] == f"{wallet:.8f}"
    assert balance["USDT"]["total"] == pytest.approx(wallet + 20.0)  # marginBalance: wallet + unrealized


async def test_kline_frames_go_only_to_their_subscribers() -> None:
    async with _binance() as (v, ex):
        watching = asyncio.ensure_future(ex.watch_ohlcv(BTC, "1m"))
        await _until(lambda: "btcusdt@kline_1m" in v.subscriptions)
        session = v.client_session()
        try:
            async with session.ws_connect("wss://fstream.binance.com/stream?streams=ethusdt@kline_1m") as eth:
                await _until(lambda: "ethusdt@kline_1m" in v.subscriptions)
                await v.push_kline("BTCUSDT", "1m", 1_700_000_040_000, 60_000, 30_001.0)
                await v.push_kline("ETHUSDT", "1m", 1_700_000_040_000, 60_000, 2_001.0)
                frame = await eth.receive_json()
                [bar] = await watching
        finally:
            await session.close()
    assert (frame["stream"], frame["data"]["s"], frame["data"]["k"]["c"]) == ("ethusdt@kline_1m", "ETHUSDT", "2001.0")
    assert bar == [1_700_000_040_000, 30_001.0, 30_002.0, 30_000.0, 30_001.0, 3.0]


async def test_a_signed_request_outside_its_receive_window_is_refused() -> None:
    outcomes = []
    async with _binance() as (v, ex):
        # (the venue's clock minus the client's, recvWindow): 3 s ahead (stamps look old) or 3 s behind
        for venue_offset_ms, recv_window in ((3_000, 5_000), (3_000, 2_000), (-3_000, 5_000)):
            v.offset_ms, ex.options["recvWindow"] = venue_offset_ms, recv_window
            try:
                placed = await ex.create_order(BTC, "market", "buy", 0.01)
                outcomes.append(placed["status"])
            except ccxt.InvalidNonce as exc:
                outcomes.append(json.loads(str(exc).split(" ", 1)[1])["msg"])
    assert outcomes == [
        "closed",
        "Timestamp for this request is outside of the recvWindow.",
        "Timestamp for this request was 1000ms ahead of the server's time.",
    ]
    assert len(v.orders) == 1


async def test_a_request_that_arrives_late_executes_only_inside_its_receive_window() -> None:
    books = []
    async with _binance() as (v, ex):
        ex.timeout = 100  # ms: the client gives up long before the venue sees the request
        for recv_window, cid in ((150, "tw-too-late"), (5_000, "tw-late")):
            ex.options["recvWindow"] = recv_window
            v.failures.append(Failure(arrives_late=True, delay_s=0.4, path="/fapi/v1/order"))
            with pytest.raises(ccxt.RequestTimeout):
                await ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": cid})
            await _until(lambda: v.held == 0)
            books.append((list(v.orders), dict(v.positions)))
    assert books == [([], {}), (["tw-late"], {"BTCUSDT": 0.01})]  # beyond its window it never executes


async def test_an_unserved_path_is_a_404_page_and_an_outage_a_503() -> None:
    async with _binance() as (v, ex):
        session = v.client_session()
        try:
            async with session.get("https://fapi.binance.com/fapi/v1/noSuchEndpoint") as missing:
                page = (missing.status, missing.content_type, await missing.text())
            with pytest.raises(ccxt.ExchangeNotAvailable, match="404"):
                await ex.fapiPublicGetPremiumIndex({"symbol": "BTCUSDT"})  # a real endpoint this venue does not serve
            v.down = True
            async with session.get("https://fapi.binance.com/fapi/v1/time") as outage:
                down = outage.status
        finally:
            await session.close()
    assert page == (404, "text/html", "<html><body><h2>404 Not found</h2></body></html>")
    assert down == 503


async def test_listen_keys_are_kept_alive_and_closed_as_binance_does() -> None:
    async with _binance() as (_, ex):
        first = await ex.fapiPrivatePostListenKey()
        again = await ex.fapiPrivatePostListenKey()  # an account has one live key: POST returns it
        kept = await ex.fapiPrivatePutListenKey()
        closed = await ex.fapiPrivateDeleteListenKey()
        with pytest.raises(ccxt.AuthenticationError, match="-1125"):
            await ex.fapiPrivatePutListenKey()
    assert (again, kept, closed) == (first, first, {})


async def test_with_keys_configured_the_key_and_the_signature_are_checked() -> None:
    async with _binance() as (v, ex):
        v.api_keys = {"test-key": "test-secret"}
        placed = await ex.create_order(BTC, "market", "buy", 0.01)
        ex.secret = "not-the-secret"
        with pytest.raises(ccxt.AuthenticationError, match=r'"code": -1022, "msg": "Signature for this request'):
            await ex.create_order(BTC, "market", "buy", 0.01)
        ex.apiKey = "unknown-key"
        with pytest.raises(ccxt.AuthenticationError, match="-2015"):
            await ex.fetch_positions([BTC])
    assert (placed["status"], len(v.orders)) == ("closed", 1)


async def test_the_user_data_stream_also_opens_at_the_documented_path_and_refuses_an_unknown_key() -> None:
    async with _binance() as (v, ex):
        key = (await ex.fapiPrivatePostListenKey())["listenKey"]
        session = v.client_session()
        try:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await session.ws_connect("wss://fstream.binance.com/private/ws?listenKey=not-a-key")
            async with session.ws_connect(f"wss://fstream.binance.com/ws/{key}") as ws:
                await _until(lambda: _user_stream(v))
                await ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "tw-raw"})
                frames = [await ws.receive_json() for _ in range(3)]
        finally:
            await session.close()
    assert refused.value.status == 400
    assert [(f["e"], f.get("o", {}).get("x"), f.get("o", {}).get("c")) for f in frames] == [
        ("ORDER_TRADE_UPDATE", "NEW", "tw-raw"),
        ("ORDER_TRADE_UPDATE", "TRADE", "tw-raw"),
        ("ACCOUNT_UPDATE", None, None),
    ]
    assert frames[2]["a"]["P"] == [
        {"s": "BTCUSDT", "pa": "0.010", "ep": "30000", "bep": "30000", "cr": "0.00000000", "up": "0.00000000"}
        | {"mt": "cross", "iw": "0", "ps": "BOTH", "ma": "USDT"}
    ]
