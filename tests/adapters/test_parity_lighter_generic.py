"""Success-path parity at run time for Lighter and for the generic `CcxtExchange` path (Binance spot).

Real, unmodified ccxt talks over HTTP to `recorded_venue` on 127.0.0.1. Bodies come from ccxt's
static fixtures (`data/ccxt-static/binance_spot.json`, see PROVENANCE.md) or, where ccxt recorded
none, in the shape the venue's official documentation gives (named beside each body).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import anyio
import pytest

from tests.adapters.recorded_venue import RecordedVenue, Request, recorded, recorded_venue, unsigned, venue_adapter
from twinstar.adapters import VENUES
from twinstar.adapters.base import ErrorKind, OrderResult
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.adapters.lighter import client_order_index, signer_library_path
from twinstar.adapters.spot import SpotWithoutStops

pytestmark = pytest.mark.anyio

# -- the generic path: Binance spot, an id outside VENUES ------------------------------------------------------------

# Binance spot `POST /api/v3/order` with newOrderRespType FULL (ccxt's default for market orders): the example
# response of "New order (TRADE)" in Binance's official spot API docs (binance-spot-api-docs, rest-api.md,
# "Response FULL"). ccxt's recorded createOrder is a resting limit order with no fills, so it cannot show a fill.
BINANCE_FULL = {
    "symbol": "BTCUSDT",
    "orderId": 28,
    "orderListId": -1,
    "clientOrderId": "6gCrw2kRUAF9CvJDGP16IP",
    "transactTime": 1507725176595,
    "price": "0.00000000",
    "origQty": "10.00000000",
    "executedQty": "10.00000000",
    "cummulativeQuoteQty": "10.00000000",
    "status": "FILLED",
    "timeInForce": "GTC",
    "type": "MARKET",
    "side": "SELL",
    "fills": [
        {
            "price": "4000.00000000",
            "qty": "1.00000000",
            "commission": "4.00000000",
            "commissionAsset": "USDT",
            "tradeId": 56,
        },
        {
            "price": "3999.00000000",
            "qty": "5.00000000",
            "commission": "19.99500000",
            "commissionAsset": "USDT",
            "tradeId": 57,
        },
        {
            "price": "3998.00000000",
            "qty": "2.00000000",
            "commission": "7.99600000",
            "commissionAsset": "USDT",
            "tradeId": 58,
        },
        {
            "price": "3997.00000000",
            "qty": "1.00000000",
            "commission": "3.99700000",
            "commissionAsset": "USDT",
            "tradeId": 59,
        },
        {
            "price": "3995.00000000",
            "qty": "1.00000000",
            "commission": "3.99500000",
            "commissionAsset": "USDT",
            "tradeId": 60,
        },
    ],
}


def _binance_spot(venue: RecordedVenue) -> CcxtExchange:
    adapter = venue_adapter("binance", venue, [], market_type="spot")
    assert type(adapter) is SpotWithoutStops  # no quirk module: the generic spot path
    # The recorded market file predates ccxt's tick-size precision; ccxt's own parser turns the recorded raw
    # exchangeInfo entries into the markets 4.5.90 would have loaded.
    infos = recorded("binance_spot")["marketInfo"]
    # load_markets fills these from margin endpoints this venue does not serve; parse_market reads them.
    adapter.ccxt.options.update(crossMarginPairsData=[], isolatedMarginPairsData=[])
    adapter.ccxt.set_markets([adapter.ccxt.parse_market(info) for info in infos.values()])
    return adapter


def test_binance_is_outside_the_venue_quirk_modules() -> None:
    assert "binance" not in VENUES


async def test_binance_spot_market_order_reads_its_fill_from_the_full_reply() -> None:
    replies = {("POST", "/api/v3/order"): [BINANCE_FULL]}
    async with recorded_venue(replies) as venue:
        adapter = _binance_spot(venue)
        try:
            placed = await adapter.place_market_order("BTC/USDT", "sell", 10.0, client_order_id="tw-bn-1")
        finally:
            await adapter.close()
    assert type(placed) is OrderResult
    # The doc example's own numbers: 10 BTC for a cummulativeQuoteQty of 10 (ccxt's average is cost / filled = 1.0);
    # the fee is ccxt's sum of the five fills' USDT commissions. The fill is in the create reply: no read-back.
    assert placed == OrderResult.success(
        client_order_id="6gCrw2kRUAF9CvJDGP16IP",
        order_id="28",
        status="filled",
        requested_qty=10.0,
        filled_qty=10.0,
        avg_price=1.0,
        fee=39.983,
        timestamp_ms=1_507_725_176_595,
    )
    assert not type(adapter).read_back_fills
    assert [r.path for r in venue.requests] == ["/api/v3/order"]
    [create] = venue.sent("POST", "/api/v3/order")
    assert unsigned(dict(parse_qsl(create.body))) == {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "newClientOrderId": "tw-bn-1",
        "newOrderRespType": "FULL",
        "type": "MARKET",
        "quantity": "10",
        "recvWindow": "10000",
    }


async def test_binance_spot_fetch_order_by_client_id_sends_orig_client_order_id() -> None:
    replies = {("GET", "/api/v3/order"): [recorded("binance_spot")["fetchOrder"]]}
    async with recorded_venue(replies) as venue:
        adapter = _binance_spot(venue)
        try:
            found = await adapter.fetch_order("LTC/USDT", "tw-bn-2")
        finally:
            await adapter.close()
    assert type(found) is OrderResult
    # The recorded filled LTC/USDT market sell (0.1 LTC for 9.08 USDT); a query reply carries no fills, so no fee.
    assert found == OrderResult.success(
        client_order_id="x-R4BD3S825806ed40c861260428a48c",
        order_id="3397148653",
        status="filled",
        requested_qty=0.1,
        filled_qty=0.1,
        avg_price=90.8,
        fee=0.0,
        timestamp_ms=1_679_571_174_472,
    )
    [read] = venue.sent("GET", "/api/v3/order")
    assert unsigned(read.query) == {"symbol": "LTCUSDT", "origClientOrderId": "tw-bn-2", "recvWindow": "10000"}


async def test_binance_spot_stop_is_synthetic_and_nothing_is_sent() -> None:
    async with recorded_venue({}) as venue:
        adapter = _binance_spot(venue)
        try:
            stop = await adapter.update_stop_loss("LTC/USDT", "long", 0.1, 60.004, client_order_id="tw-bn-sl")
        finally:
            await adapter.close()
    assert type(stop) is OrderResult
    # Any exchange traded spot gets the kernel's synthetic stop: it works everywhere and locks no balance.
    assert not adapter.supports_native_stop
    assert stop == OrderResult.failure(
        ErrorKind.NOT_SUPPORTED,
        "binance: no stop order is placed; the kernel keeps a synthetic stop",
        client_order_id="tw-bn-sl",
        requested_qty=0.1,
    )
    assert venue.requests == []


# `GET /api/v3/account`: the example response of "Account information (USER_DATA)" in Binance's official spot API
# docs (binance-spot-api-docs, rest-api.md), cut to the fields ccxt reads, with the held amounts of this test.
BINANCE_ACCOUNT = {
    "makerCommission": 15,
    "takerCommission": 15,
    "buyerCommission": 0,
    "sellerCommission": 0,
    "canTrade": True,
    "canWithdraw": True,
    "canDeposit": True,
    "updateTime": 123456789,
    "accountType": "SPOT",
    "balances": [
        {"asset": "BTC", "free": "10.00000000", "locked": "0.00000000"},
        {"asset": "USDT", "free": "1000.00000000", "locked": "0.00000000"},
    ],
    "permissions": ["SPOT"],
}


async def test_binance_spot_close_position_sells_the_held_balance() -> None:
    replies = {("GET", "/api/v3/account"): [BINANCE_ACCOUNT], ("POST", "/api/v3/order"): [BINANCE_FULL]}
    async with recorded_venue(replies) as venue:
        adapter = _binance_spot(venue)
        try:
            closed = await adapter.close_position("BTC/USDT", client_order_id="tw-bn-x")
        finally:
            await adapter.close()
    assert type(closed) is OrderResult
    assert (closed.ok, closed.filled_qty, closed.status) == (True, 10.0, "filled")
    assert [r.path for r in venue.requests] == ["/api/v3/account", "/api/v3/order"]
    [sell] = venue.sent("POST", "/api/v3/order")
    body = unsigned(dict(parse_qsl(sell.body)))
    assert (body["side"], body["type"], body["quantity"], body["newClientOrderId"]) == (
        "SELL",
        "MARKET",
        "10",
        "tw-bn-x",
    )


# -- Lighter: signed by the Go signer of lighter-sdk, in a child process ---------------------------------------------

# The child builds the adapter through make_exchange, points it at the venue, loads ccxt's recorded market and runs
# the calls; it prints each OrderResult's fields. ctypes loads a Go runtime: it stays out of the pytest process.
LIGHTER_CHILD = """
import asyncio, json, sys
from twinstar.adapters import make_exchange
from twinstar.clock import LiveClock
from twinstar.config import ExchangeConfig

async def main(base, markets, calls):
    config = ExchangeConfig(
        id="lighter", private_key_env="TWINSTAR_PARITY_L1_KEY", api_base_url=base,
        options={"accountIndex": "1077", "apiKeyIndex": "5", "fetchCurrencies": False},
    )
    adapter = make_exchange(config, LiveClock())
    adapter.ccxt.set_markets(list(json.loads(markets).values()))
    adapter._markets_loaded = True
    results = []
    try:
        for name, args, kwargs in json.loads(calls):
            r = await getattr(adapter, name)(*args, **kwargs)
            fields = {f: getattr(r, f) for f in r.__struct_fields__}
            results.append([type(r).__name__, fields | {"error_kind": r.error_kind and r.error_kind.name}])
    finally:
        await adapter.close()
    print(json.dumps(results))

asyncio.run(main(*sys.argv[1:]))
"""
ETH = "ETH/USDC:USDC"
# The recorded account (fetchPositions: index 1077, 18.0193 ETH long) and its L1 key for the child (a test key).
L1_KEY = "0x" + "11" * 32

# `POST /api/v1/sendTx`: ccxt records no reply; this is the body ccxt 4.5.90 documents in lighter.create_order
# (the fields of lighter-sdk's RespSendTx, generated from Lighter's OpenAPI: code, message, tx_hash,
# predicted_execution_time_ms). A transaction hash only: the fill is read back.
SEND_TX = {
    "code": 200,
    "message": '{"ratelimit": "didn\'t use volume quota"}',
    "tx_hash": "txhash",
    "predicted_execution_time_ms": 1766088500120,
}
# `GET /api/v1/nextNonce`, `GET /api/v1/accountLimits`: shaped as lighter-sdk's NextNonce and AccountLimits
# (apidocs.lighter.xyz nextnonce / accountlimits); a standard tier means ccxt approves no builder fee.
NEXT_NONCE = {"code": 200, "nonce": 7}
ACCOUNT_LIMITS = {"code": 200, "max_llp_percentage": 100, "user_tier": "standard", "user_tier_name": "standard"}


def _lighter_order(index: int, *, ask: bool, amount: str, worst: str, quote: str, reduce_only: bool) -> dict[str, Any]:
    """An order of `GET /api/v1/accountInactiveOrders` (apidocs.lighter.xyz accountinactiveorders).

    The fields and layout are those of the order ccxt 4.5.90 shows in lighter.parse_order (lighter-sdk's Order
    model); the values are those of the order the test sent, filled whole at the recorded book's best price.
    """
    return {
        "order_index": 281474977354074 + (1 if ask else 0),
        "client_order_index": index,
        "order_id": str(281474977354074 + (1 if ask else 0)),
        "client_order_id": str(index),
        "market_index": 0,
        "owner_account_index": 1077,
        "initial_base_amount": amount,
        "price": worst,
        "nonce": 643418,
        "remaining_base_amount": "0.0000",
        "is_ask": ask,
        "base_size": 0,
        "base_price": int(float(worst) * 100),
        "filled_base_amount": amount,
        "filled_quote_amount": quote,
        "side": "",
        "type": "market",
        "time_in_force": "immediate-or-cancel",
        "reduce_only": reduce_only,
        "trigger_price": "0.00",
        "order_expiry": 0,
        "status": "filled",
        "trigger_status": "na",
        "trigger_time": 0,
        "parent_order_index": 0,
        "parent_order_id": "0",
        "to_trigger_order_id_0": "0",
        "to_trigger_order_id_1": "0",
        "to_cancel_order_id_0": "0",
        "block_height": 102202,
        "timestamp": 1766387932,
        "created_at": 1766387932,
        "updated_at": 1766387932,
    }


def _lighter_replies() -> dict[tuple[str, str], list[Any]]:
    extract = json.loads((Path(__file__).parent / "data" / "lighter.extract.json").read_text())["methods"]
    inactive = [
        # The buy: 0.05 ETH at the recorded best ask 3430.00 (worst price 3430 * 1.05).
        _lighter_order(
            client_order_index("tw-lt-1"),
            ask=False,
            amount="0.0500",
            worst="3601.50",
            quote="171.500000",
            reduce_only=False,
        ),
        # The close: the recorded 18.0193 ETH long sold at the recorded best bid 3429.80 (worst price 3429.80 * 0.95).
        _lighter_order(
            client_order_index("tw-lt-x"),
            ask=True,
            amount="18.0193",
            worst="3258.31",
            quote="61802.595140",
            reduce_only=True,
        ),
    ]
    return {
        ("GET", "/api/v1/orderBookOrders"): [extract["fetchOrderBook"][0]["httpResponse"]],
        ("GET", "/api/v1/nextNonce"): [NEXT_NONCE],
        ("POST", "/api/v1/sendTx"): [SEND_TX],
        ("GET", "/api/v1/accountLimits"): [ACCOUNT_LIMITS],
        ("GET", "/api/v1/accountActiveOrders"): [{"code": 200, "orders": []}],  # Orders, empty: nothing rests
        ("GET", "/api/v1/accountInactiveOrders"): [{"code": 200, "orders": inactive}],
        ("GET", "/api/v1/account"): [extract["fetchPositions"][0]["httpResponse"]],
    }


def _tx_info(request: Request) -> tuple[int, dict[str, Any]]:
    """The transaction type and the signed tx_info of a sendTx form post."""
    form = dict(parse_qsl(request.body))
    info: dict[str, Any] = json.loads(form["tx_info"])
    return int(form["tx_type"]), info


@pytest.mark.skipif(signer_library_path() is None, reason="lighter-sdk's signer is not installed")
async def test_lighter_order_methods_over_the_wire_with_the_real_signer() -> None:
    calls = [
        ["place_market_order", [ETH, "buy", 0.05], {"client_order_id": "tw-lt-1"}],
        ["fetch_order", [ETH, "tw-lt-1"], {}],
        ["update_stop_loss", [ETH, "long", 0.05, 3000.004], {"client_order_id": "tw-lt-sl"}],
        ["close_position", [ETH], {"client_order_id": "tw-lt-x"}],
    ]
    async with recorded_venue(_lighter_replies()) as venue:
        done = await anyio.run_process(
            [
                sys.executable,
                "-c",
                LIGHTER_CHILD,
                venue.base_url,
                json.dumps(recorded("lighter")["markets"]),
                json.dumps(calls),
            ],
            env={**os.environ, "TWINSTAR_PARITY_L1_KEY": L1_KEY},
            check=False,
        )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    results = [
        (name, OrderResult(**{**f, "error_kind": f["error_kind"] and ErrorKind[f["error_kind"]]}))
        for name, f in json.loads(done.stdout)
    ]
    assert [name for name, _ in results] == ["OrderResult"] * 4  # the child's type(result).__name__
    placed, found, stop, closed = (result for _, result in results)
    bought = OrderResult.success(
        client_order_id="tw-lt-1",
        order_id="281474977354074",
        status="filled",
        requested_qty=0.05,
        filled_qty=0.05,
        avg_price=3430.0,  # filled_quote_amount / filled_base_amount
        timestamp_ms=1_766_387_932_000,
    )
    assert placed == bought  # read back: the sendTx reply alone holds a hash, no fill
    assert found == bought
    assert stop == OrderResult.failure(
        ErrorKind.NOT_SUPPORTED,
        "lighter: no stop order is placed; the kernel keeps a synthetic stop",
        client_order_id="tw-lt-sl",
        requested_qty=0.05,
    )
    assert closed == OrderResult.success(
        client_order_id="tw-lt-x",
        order_id="281474977354075",
        status="filled",
        requested_qty=18.0193,
        filled_qty=18.0193,
        avg_price=3429.8,
        timestamp_ms=1_766_387_932_000,
    )
    # On the wire: ccxt first registers an API key it made itself (ChangePubKey, tx_type 8, L1-signed), then
    # each order is a signed CreateOrder (tx_type 14) whose ClientOrderIndex is the kernel's client id, hashed.
    change, buy, sell = (_tx_info(r) for r in venue.sent("POST", "/api/v1/sendTx"))
    assert (change[0], change[1]["AccountIndex"], change[1]["ApiKeyIndex"], change[1]["Nonce"]) == (8, 1077, 5, 7)
    assert change[1]["L1Sig"] and change[1]["PubKey"]
    signed = (
        "AccountIndex",
        "ApiKeyIndex",
        "MarketIndex",
        "ClientOrderIndex",
        "BaseAmount",
        "Price",
        "IsAsk",
        "Type",
        "TimeInForce",
        "ReduceOnly",
        "TriggerPrice",
        "OrderExpiry",
    )
    assert (buy[0], {k: buy[1][k] for k in signed}) == (
        14,
        {
            "AccountIndex": 1077,
            "ApiKeyIndex": 5,
            "MarketIndex": 0,
            "ClientOrderIndex": client_order_index("tw-lt-1"),
            "BaseAmount": 500,
            "Price": 360150,
            "IsAsk": 0,
            "Type": 1,
            "TimeInForce": 0,
            "ReduceOnly": 0,
            "TriggerPrice": 0,
            "OrderExpiry": 0,
        },
    )
    assert (sell[0], {k: sell[1][k] for k in signed}) == (
        14,
        {
            "AccountIndex": 1077,
            "ApiKeyIndex": 5,
            "MarketIndex": 0,
            "ClientOrderIndex": client_order_index("tw-lt-x"),
            "BaseAmount": 180193,
            "Price": 325831,
            "IsAsk": 1,
            "Type": 1,
            "TimeInForce": 0,
            "ReduceOnly": 1,
            "TriggerPrice": 0,
            "OrderExpiry": 0,
        },
    )
    assert all(info["Sig"] for _, info in (buy, sell))
    assert [r.query for r in venue.sent("GET", "/api/v1/orderBookOrders")] == [{"market_id": "0", "limit": "1"}] * 2
    assert venue.sent("GET", "/api/v1/account")[0].query == {"by": "index", "value": "1077"}
    # Active orders first, then inactive ones, for each read: after the buy, fetch_order and after the close.
    lookups = [r.path for r in venue.requests if r.path.startswith("/api/v1/account") and "Orders" in r.path]
    assert lookups == ["/api/v1/accountActiveOrders", "/api/v1/accountInactiveOrders"] * 3
    assert all(r.query["account_index"] == "1077" for r in venue.sent("GET", "/api/v1/accountInactiveOrders"))
