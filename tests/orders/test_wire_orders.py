"""Limit, post-only, IOC and take-profit orders over the wire: real ccxt, the loopback Binance and Bybit venues.

Each order type goes out in ccxt's unified params and reaches the venue in
the shape the venue documents: Binance USD-M `POST /fapi/v1/order`
(`type=LIMIT`, `timeInForce` GTC / IOC / GTX for post-only) and
`POST /fapi/v1/algoOrder` (`TAKE_PROFIT_MARKET`, CONDITIONAL) for a
take-profit; Bybit v5 `POST /v5/order/create` (`orderType=Limit`,
`timeInForce` GTC / IOC / PostOnly; a take-profit is a conditional order with
`triggerPrice` and `triggerDirection`; exits attached to an entry are
`stopLoss`/`takeProfit` with `tpslMode=Full`). What the venues refuse comes
back classified: Binance's -5022 for a post-only order that would take, and
Bybit's cancel of the same; a price off the tick never leaves the adapter.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.adapters.test_adapters_wire import _config
from tests.adapters.test_bybit_wire import bybit_config
from twinstar.adapters.base import ErrorKind, OrderResult
from twinstar.adapters.binance import BinanceUsdm
from twinstar.adapters.bybit import Bybit
from twinstar.clock import LiveClock
from twinstar.testing import BybitVenue, bybit_venue
from twinstar.testing.venue import Venue, venue

pytestmark = pytest.mark.anyio
BTC = "BTC/USDT:USDT"  # both venues start at a last price of 30,000


def _binance(v: Venue) -> BinanceUsdm:
    adapter = BinanceUsdm(config=_config("binanceusdm"), clock=LiveClock())
    v.point(adapter.ccxt)
    return adapter


def _bybit(v: BybitVenue) -> Bybit:
    adapter = Bybit(config=bybit_config(), clock=LiveClock())
    v.point(adapter.ccxt)
    return adapter


def _order_posts(v: Venue | BybitVenue) -> int:
    return sum(1 for method, path in v.requests if method == "POST" and path in ("/fapi/v1/order", "/v5/order/create"))


async def test_binance_gtc_limit_rests_as_documented_and_fills_at_its_price_when_crossed() -> None:
    async with venue() as v:
        adapter = _binance(v)
        try:
            placed = await adapter.place_limit_order(BTC, "buy", 0.01, 29_000.0, client_order_id="tw-l1")
            resting = await adapter.fetch_open_orders(BTC)
            sent = dict(v.orders["tw-l1"])
            assert await v.move_price(29_100.0) == []  # not crossed: still resting
            await v.move_price(28_900.0)
            filled = await adapter.fetch_order(BTC, "tw-l1")
            position = await adapter.fetch_position(BTC)
        finally:
            await adapter.close()
    assert (placed.ok, placed.status, placed.filled_qty) == (True, "open", 0.0)
    assert (sent["type"], sent["timeInForce"], sent["price"], sent["origQty"]) == ("LIMIT", "GTC", "29000.00", "0.010")
    assert [(o.client_order_id, o.price, o.is_trigger) for o in resting] == [("tw-l1", 29_000.0, False)]
    assert (filled.status, filled.filled_qty, filled.avg_price) == ("filled", 0.01, 29_000.0)
    assert position is not None and (position.side, position.qty) == ("long", 0.01)


async def test_binance_post_only_that_would_take_is_refused_with_5022_and_ioc_expires_unfilled() -> None:
    async with venue() as v:
        adapter = _binance(v)
        try:
            crossing = await adapter.place_limit_order(
                BTC, "buy", 0.01, 30_500.0, client_order_id="tw-po", time_in_force="post_only"
            )
            maker = await adapter.place_limit_order(
                BTC, "sell", 0.01, 30_500.0, client_order_id="tw-pm", time_in_force="post_only"
            )
            ioc = await adapter.place_limit_order(
                BTC, "buy", 0.01, 29_500.0, client_order_id="tw-io", time_in_force="ioc"
            )
        finally:
            await adapter.close()
    assert (crossing.ok, crossing.error_kind) == (False, ErrorKind.INVALID_ORDER)
    assert '"code": -5022' in crossing.message
    assert "tw-po" not in v.orders or v.orders["tw-po"]["status"] != "NEW"
    assert (maker.status, v.orders["tw-pm"]["timeInForce"]) == ("open", "GTX")  # ccxt's postOnly is Binance's GTX
    assert (ioc.ok, ioc.status, ioc.filled_qty, v.orders["tw-io"]["status"]) == (True, "canceled", 0.0, "EXPIRED")


@pytest.mark.parametrize("exchange", ["binanceusdm", "bybit"])
async def test_a_price_off_the_tick_and_a_size_under_the_minimum_never_leave_the_adapter(exchange: str) -> None:
    off_tick = 29_000.005 if exchange == "binanceusdm" else 29_000.05  # ticks 0.01 and 0.1
    async with venue() if exchange == "binanceusdm" else bybit_venue() as v:
        adapter = _binance(v) if isinstance(v, Venue) else _bybit(v)
        try:
            await adapter.ccxt.load_markets()
            before = _order_posts(v)
            tick = await adapter.place_limit_order(BTC, "buy", 0.01, off_tick, client_order_id="tw-t1")
            tiny = await adapter.place_limit_order(BTC, "buy", 0.0001, 29_000.0, client_order_id="tw-t2")
            after = _order_posts(v)
        finally:
            await adapter.close()
    assert (tick.error_kind, tiny.error_kind) == (ErrorKind.INVALID_ORDER, ErrorKind.INVALID_ORDER)
    assert "off the tick" in tick.message
    assert "minimum amount" in tiny.message  # ccxt's own precision check, before any request
    assert after == before  # no request went out


async def test_binance_take_profit_is_a_take_profit_market_algo_order_that_closes_the_position() -> None:
    async with venue() as v:
        adapter = _binance(v)
        try:
            await adapter.place_market_order(BTC, "buy", 0.01, client_order_id="tw-m1")
            placed = await adapter.place_take_profit(BTC, "long", 0.01, 31_000.0, client_order_id="twt-1")
            [algo] = v.algo_orders.values()
            sent = dict(algo)
            resting = await adapter.fetch_open_orders(BTC)
            await v.move_price(31_200.0)
            position = await adapter.fetch_position(BTC)
            left = await adapter.fetch_open_orders(BTC)
        finally:
            await adapter.close()
    assert (placed.ok, placed.status) == (True, "open")
    assert (sent["orderType"], sent["side"], sent["triggerPrice"], sent["reduceOnly"], sent["clientAlgoId"]) == (
        "TAKE_PROFIT_MARKET",
        "SELL",
        "31000.00",
        True,
        "twt-1",
    )
    assert [(o.client_order_id, o.stop_price, o.take_profit, o.is_stop) for o in resting] == [
        ("twt-1", 31_000.0, True, False)
    ]
    assert position is None
    assert left == []


async def test_bybit_limit_bracket_attaches_both_exits_and_the_venue_cancels_one_when_the_other_fills() -> None:
    async with bybit_venue() as v:
        adapter = _bybit(v)
        try:
            placed = await adapter.place_limit_order(
                BTC,
                "buy",
                0.01,
                29_000.0,
                client_order_id="tw-b1",
                stop_price=28_000.0,
                stop_client_order_id="tws-b1",
                take_profit_price=31_000.0,
            )
            sent = dict(v.created[-1])
            await v.move_price(28_900.0)
            filled = await adapter.fetch_order(BTC, "tw-b1")
            exits = sorted((o.take_profit, o.stop_price) for o in await adapter.fetch_open_orders(BTC))
            await v.move_price(31_100.0)
            position = await adapter.fetch_position(BTC)
            left = await adapter.fetch_open_orders(BTC)
        finally:
            await adapter.close()
    assert (placed.status, placed.stop_price, placed.take_profit_price) == ("open", 28_000.0, 31_000.0)
    assert {k: sent[k] for k in ("orderType", "timeInForce", "price", "stopLoss", "takeProfit", "tpslMode")} == {
        "orderType": "Limit",
        "timeInForce": "GTC",
        "price": "29000",
        "stopLoss": "28000",
        "takeProfit": "31000",
        "tpslMode": "Full",
    }
    assert (filled.status, filled.avg_price) == ("filled", 29_000.0)
    assert exits == [(False, 28_000.0), (True, 31_000.0)]
    assert position is None  # the take-profit closed it
    assert left == []  # and the venue removed the stop with the position


async def test_bybit_post_only_that_would_take_is_cancelled_by_the_venue_and_reported_as_refused() -> None:
    async with bybit_venue() as v:
        adapter = _bybit(v)
        try:
            crossing = await adapter.place_limit_order(
                BTC, "buy", 0.01, 30_500.0, client_order_id="tw-po", time_in_force="post_only"
            )
            ioc = await adapter.place_limit_order(
                BTC, "buy", 0.01, 29_500.0, client_order_id="tw-io", time_in_force="ioc"
            )
        finally:
            await adapter.close()
    sent = {body["orderLinkId"]: body for body in v.created}
    assert sent["tw-po"]["timeInForce"] == "PostOnly"
    assert (crossing.ok, crossing.error_kind) == (False, ErrorKind.INVALID_ORDER)
    assert "would have taken liquidity" in crossing.message
    assert (v.orders["tw-po"]["orderStatus"], v.orders["tw-po"]["rejectReason"]) == (
        "Cancelled",
        "EC_PostOnlyWillTakeLiquidity",
    )
    assert (sent["tw-io"]["timeInForce"], ioc.status, ioc.filled_qty) == ("IOC", "canceled", 0.0)


async def test_bybit_take_profit_is_a_conditional_order_rising_to_its_trigger() -> None:
    async with bybit_venue() as v:
        adapter = _bybit(v)
        try:
            await adapter.place_market_order(BTC, "buy", 0.01, client_order_id="tw-m1")
            placed = await adapter.place_take_profit(BTC, "long", 0.01, 32_000.0, client_order_id="twt-1")
            sent: dict[str, Any] = dict(v.created[-1])
            resting = await adapter.fetch_open_orders(BTC)
            await v.move_price(32_100.0)
            position = await adapter.fetch_position(BTC)
        finally:
            await adapter.close()
    assert type(placed) is OrderResult and placed.ok
    assert {k: sent[k] for k in ("side", "orderType", "triggerPrice", "triggerDirection", "reduceOnly")} == {
        "side": "Sell",
        "orderType": "Market",
        "triggerPrice": "32000",
        "triggerDirection": 1,
        "reduceOnly": True,
    }
    assert [(o.client_order_id, o.take_profit, o.stop_price) for o in resting] == [("twt-1", True, 32_000.0)]
    assert position is None


@pytest.mark.parametrize("exchange", ["binanceusdm", "bybit"])
async def test_the_venues_own_refusal_of_an_off_tick_price_is_classified_invalid(exchange: str) -> None:
    # Sent past the adapter's own check (straight through ccxt), as a market whose rules changed since they loaded.
    off_tick = 29_000.005 if exchange == "binanceusdm" else 29_000.05
    async with venue() if exchange == "binanceusdm" else bybit_venue() as v:
        adapter = _binance(v) if isinstance(v, Venue) else _bybit(v)
        try:
            await adapter.ccxt.load_markets()
            adapter.ccxt.markets[BTC]["precision"]["price"] = 0.001  # the venue's tick is coarser than this
            failed = await adapter.place_limit_order(BTC, "buy", 0.01, off_tick, client_order_id="tw-t1")
        finally:
            await adapter.close()
    assert (failed.ok, failed.error_kind) == (False, ErrorKind.INVALID_ORDER)
    # BTCUSDT's tick (0.01) is its price precision: Binance answers -1111 (precision), Bybit 10001 (price invalid).
    assert ('"code": -1111' if exchange == "binanceusdm" else '"retCode":10001') in failed.message
