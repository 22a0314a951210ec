"""The Bybit adapter over real ccxt.pro code and real HTTP to a loopback Bybit v5 venue."""

from __future__ import annotations

import os
import uuid

import ccxt
import ccxt.async_support as ccxt_async
import msgspec
import pytest

from tests.adapters.test_adapters_wire import _config
from twinstar.adapters.base import Balance, Bar, ErrorKind, OrderResult, Position
from twinstar.adapters.bybit import Bybit
from twinstar.clock import LiveClock
from twinstar.config import ExchangeConfig
from twinstar.testing import BybitVenue, Failure, bybit_venue

pytestmark = pytest.mark.anyio
BTC = "BTC/USDT:USDT"
CREATE = "/v5/order/create"
AMEND = "/v5/order/amend"
T0 = 1_700_000_040_000  # a minute boundary


def bybit_config() -> ExchangeConfig:
    """Test credentials with a key of their own: each test gets a fresh process-wide rate budget.

    The limiter is shared per (exchange, key), as in production; with one key for
    every test, the whole run would share one 60 s window and later tests would wait.
    """
    config = _config("bybit")
    os.environ["TWINSTAR_BYBIT_KEY"] = f"test-api-key-bybit-{uuid.uuid4().hex}"
    return msgspec.structs.replace(config, api_key_env="TWINSTAR_BYBIT_KEY")


def _adapter(v: BybitVenue, *, timeout_ms: int | None = None) -> Bybit:
    adapter = Bybit(config=bybit_config(), clock=LiveClock())
    v.point(adapter.ccxt)
    if timeout_ms is not None:
        adapter.ccxt.timeout = timeout_ms  # delayed replies below arrive after the client gave up
    return adapter


async def test_markets_time_and_klines_come_from_the_v5_endpoints() -> None:
    async with bybit_venue() as v:
        adapter = _adapter(v)
        v.klines = [[T0 + k * 60_000, "100", "101.5", "99", f"{100 + k}", "3.2", "320"] for k in range(3)]
        try:
            await adapter.ccxt.load_markets()
            market = adapter.ccxt.market(BTC)
            bars = await adapter.fetch_ohlcv(BTC, "1m", limit=3)
            v.offset_ms = 5_000
            server_ms = await adapter.server_time()
        finally:
            await adapter.close()
    assert (market["id"], market["linear"], market["precision"], market["limits"]["amount"]) == (
        "BTCUSDT",
        True,
        {"amount": 0.001, "price": 0.1},
        {"min": 0.001, "max": 1190.0},
    )
    assert "ETH/USDT:USDT" in adapter.ccxt.markets
    assert bars == [Bar(T0 + k * 60_000, 100.0, 101.5, 99.0, 100.0 + k, 3.2) for k in range(3)]  # oldest first
    assert server_ms - LiveClock().now_ms() == pytest.approx(5_000, abs=1_000)
    assert ("GET", "/v5/market/time") in v.requests


async def test_a_market_order_is_rounded_sent_by_link_id_and_read_back_filled() -> None:
    async with bybit_venue() as v:
        adapter = _adapter(v)
        try:
            placed = await adapter.place_market_order(BTC, "buy", 0.0123456, client_order_id="tw-abc")
            found = await adapter.fetch_order(BTC, "tw-abc")
            missing = await adapter.fetch_order(BTC, "tw-never")
            position = await adapter.fetch_position(BTC)
            balance = await adapter.fetch_balance()
        finally:
            await adapter.close()
    assert v.created == [
        {
            "symbol": "BTCUSDT",
            "side": "Buy",
            "orderType": "Market",
            "orderLinkId": "tw-abc",
            "category": "linear",
            "qty": "0.012",  # rounded down to the real qtyStep 0.001
            "positionIdx": 0,
        }
    ]
    order_id = v.orders["tw-abc"]["orderId"]
    assert (placed.ok, placed.status, placed.order_id, placed.requested_qty, placed.filled_qty, placed.avg_price) == (
        True,
        "filled",
        order_id,
        0.012,
        0.012,
        30_000.0,
    )
    assert (found.ok, found.order_id, found.client_order_id, found.filled_qty) == (True, order_id, "tw-abc", 0.012)
    assert (missing.ok, missing.error_kind) == (False, ErrorKind.ORDER_NOT_FOUND)
    assert position == Position(symbol=BTC, side="long", qty=0.012, entry_price=30_000.0)
    # The taker fee (0.055% of 360 USDT = 0.198) left the wallet; the margin (360 / 10x) is what is not free.
    assert balance == Balance(currency="USDT", free=9_963.802, total=9_999.802)


async def test_a_conditional_stop_carries_its_trigger_direction_and_moves_by_amend() -> None:
    async with bybit_venue() as v:
        adapter = _adapter(v)
        try:
            await adapter.place_market_order(BTC, "buy", 0.01, client_order_id="tw-open")
            first = await adapter.update_stop_loss(BTC, "long", 0.01, 29_000.04, client_order_id="tw-s1")
            second = await adapter.update_stop_loss(BTC, "long", 0.01, 29_500.0, client_order_id="tw-s2")
            again = await adapter.update_stop_loss(BTC, "long", 0.01, 29_500.0, client_order_id="tw-s3")
            closed = await adapter.close_position(BTC, client_order_id="tw-close")
        finally:
            await adapter.close()
    assert v.created[1] == {
        "symbol": "BTCUSDT",
        "side": "Sell",
        "orderType": "Market",
        "orderLinkId": "tw-s1",
        "category": "linear",
        "qty": "0.01",
        "triggerDirection": 2,  # a long's stop: the price falls to the trigger
        "triggerPrice": "29000",  # rounded to the real tickSize 0.10
        "reduceOnly": True,
        "positionIdx": 0,
    }
    # The move is one amend of the resting stop: no second stop at any moment, nothing left to cancel.
    order_id = v.orders["tw-s1"]["orderId"]
    assert v.amends[0] == {
        "category": "linear",
        "symbol": "BTCUSDT",
        "triggerPrice": "29500",
        "qty": "0.01",
        "orderId": order_id,
    }
    assert [(r.ok, r.client_order_id, r.order_id) for r in (first, second, again)] == [
        (True, "tw-s1", order_id),
        (True, "tw-s1", order_id),  # the amended stop keeps its own client id
        (True, "tw-s1", order_id),  # unchanged: "order not modified" is the stop as wanted
    ]
    assert len(v.amends) == 2
    assert [body["orderLinkId"] for body in v.created] == ["tw-open", "tw-s1", "tw-close"]
    assert v.orders["tw-s1"]["triggerPrice"] == "29500"
    assert {link: o["orderStatus"] for link, o in v.orders.items()} == {
        "tw-open": "Filled",
        "tw-s1": "Deactivated",  # close_position cancels the stop after the exit filled
        "tw-close": "Filled",
    }
    assert v.cancels == [{"symbol": "BTCUSDT", "orderId": order_id, "category": "linear"}]
    assert (closed.ok, closed.filled_qty, v.created[2]["reduceOnly"], v.created[2]["side"]) == (
        True,
        0.01,
        True,
        "Sell",
    )
    assert v.positions == {"BTCUSDT": 0.0}


async def test_a_stop_the_venue_will_not_amend_is_replaced_new_before_old() -> None:
    async with bybit_venue() as v:
        adapter = _adapter(v)
        try:
            await adapter.place_market_order(BTC, "buy", 0.02, client_order_id="tw-open")
            await adapter.update_stop_loss(BTC, "long", 0.02, 29_000.0, client_order_id="tw-s1")
            v.failures.append(Failure(200, _ret(110001, "order not exists or too late to replace"), path=AMEND))
            moved = await adapter.update_stop_loss(BTC, "long", 0.02, 29_500.0, client_order_id="tw-s2")
        finally:
            await adapter.close()
    assert (moved.ok, moved.client_order_id) == (True, "tw-s2")
    # Refused amend, then the new stop on the book, then the old one cancelled: never a moment without a stop.
    calls = [p for _, p in v.requests if p in (CREATE, AMEND, "/v5/order/cancel")]
    assert calls == [CREATE, CREATE, AMEND, CREATE, "/v5/order/cancel"]
    assert {link: o["orderStatus"] for link, o in v.orders.items()} == {
        "tw-open": "Filled",
        "tw-s1": "Deactivated",
        "tw-s2": "Untriggered",
    }


async def test_a_short_stop_rises_to_its_trigger() -> None:
    async with bybit_venue() as v:
        adapter = _adapter(v)
        try:
            await adapter.place_market_order(BTC, "sell", 0.01, client_order_id="tw-short")
            stop = await adapter.update_stop_loss(BTC, "short", 0.01, 31_000.0, client_order_id="tw-ss")
            wrong_side = await adapter.update_stop_loss(BTC, "short", 0.01, 29_000.0, client_order_id="tw-bad")
        finally:
            await adapter.close()
    assert (v.created[1]["side"], v.created[1]["triggerDirection"], v.created[1]["triggerPrice"]) == ("Buy", 1, "31000")
    assert stop.ok
    assert (wrong_side.ok, wrong_side.error_kind) == (False, ErrorKind.INVALID_ORDER)  # 110092: would fire at once
    assert "110092" in wrong_side.message


async def test_business_errors_come_from_the_venue_itself() -> None:
    async with bybit_venue() as v:
        adapter = _adapter(v)
        try:
            v.balance = 10.0
            no_margin = await adapter.place_market_order(BTC, "buy", 0.01, client_order_id="tw-m")  # 300 notional
            v.balance, v.price = 10_000.0, 1_000.0
            too_small = await adapter.place_market_order(BTC, "buy", 0.001, client_order_id="tw-n")  # 1 USDT < 5
            v.price = 30_000.0
            await adapter.update_stop_loss(BTC, "long", 0.01, 29_000.0, client_order_id="tw-gone")
            v.orders["tw-gone"]["orderStatus"] = "Triggered"  # the stop fired before we cancelled it
            unknown = await adapter.cancel_stop_loss(BTC)
            v.offset_ms = 30_000  # our signed timestamp is now 30 s behind the venue, past recv_window
            skewed = await adapter.place_market_order(BTC, "buy", 0.01, client_order_id="tw-t")
        finally:
            await adapter.close()
    results = (no_margin, too_small, unknown, skewed)
    assert [(r.ok, r.error_kind) for r in results] == [
        (False, ErrorKind.INSUFFICIENT_FUNDS),  # 110007
        (False, ErrorKind.INVALID_ORDER),  # 110094
        (False, ErrorKind.ORDER_NOT_FOUND),  # 110001
        (False, ErrorKind.CLOCK_SKEW),  # 10002
    ]
    codes = [f'"retCode":{code}' in r.message for code, r in zip((110007, 110094, 110001, 10002), results, strict=True)]
    assert codes == [True] * 4
    assert set(v.orders) == {"tw-gone"}


def _ret(code: int, message: str) -> dict[str, object]:
    return {"retCode": code, "retMsg": message, "result": {}, "retExtInfo": {}, "time": 1_700_000_000_000}


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (Failure(200, _ret(10006, "Too many visits!")), ErrorKind.RATE_LIMIT),
        (Failure(200, _ret(10018, "Your IP is rate limited")), ErrorKind.RATE_LIMIT),
        (Failure(429, text="Too Many Requests"), ErrorKind.RATE_LIMIT),
        (Failure(403, text="403 Forbidden: access too frequent"), ErrorKind.RATE_LIMIT),
        (Failure(200, _ret(110007, "ab not enough for new order")), ErrorKind.INSUFFICIENT_FUNDS),
        (Failure(200, _ret(110094, "Order does not meet minimum order value 5USDT")), ErrorKind.INVALID_ORDER),
        (Failure(200, _ret(10001, "params error: qty invalid")), ErrorKind.INVALID_ORDER),
        (Failure(200, _ret(10002, "invalid request, please check your server timestamp")), ErrorKind.CLOCK_SKEW),
        (Failure(200, _ret(10003, "API key is invalid.")), ErrorKind.AUTH),
        (Failure(502, text="<html>502 Bad Gateway</html>"), ErrorKind.EXCHANGE_UNAVAILABLE),
        (Failure(503, text="<html>503 Service Temporarily Unavailable</html>"), ErrorKind.EXCHANGE_UNAVAILABLE),
        (Failure(504, text="<html>504 Gateway Time-out</html>"), ErrorKind.TIMEOUT),
        (Failure(200, _ret(10016, "System error. Please try again later.")), ErrorKind.UNKNOWN),
        (Failure(200, _ret(10016, "Request timeout, please try again later")), ErrorKind.TIMEOUT),
        (Failure(delay_s=1.0), ErrorKind.TIMEOUT),
    ],
)
async def test_bybit_failures_arrive_classified(failure: Failure, kind: ErrorKind) -> None:
    async with bybit_venue() as v:
        adapter = _adapter(v, timeout_ms=300)
        try:
            await adapter.ccxt.load_markets()
            await adapter.ccxt.is_unified_enabled()
            failure.path = CREATE
            v.failures.append(failure)
            result = await adapter.place_market_order(BTC, "buy", 0.01, client_order_id="tw-x")
        finally:
            await adapter.close()
    assert type(result) is OrderResult
    assert (result.ok, result.error_kind) == (False, kind)
    assert v.orders == {}
    assert "test-secret" not in result.message


async def test_a_late_reply_whose_order_reached_the_book_is_a_timeout_and_the_order_is_there() -> None:
    async with bybit_venue() as v:
        adapter = _adapter(v, timeout_ms=300)
        try:
            await adapter.ccxt.load_markets()
            v.failures.append(Failure(delay_s=1.0, executes=True, path=CREATE))
            sent = await adapter.place_market_order(BTC, "buy", 0.01, client_order_id="tw-late")
            found = await adapter.fetch_order(BTC, "tw-late")
        finally:
            await adapter.close()
    assert (sent.ok, sent.error_kind) == (False, ErrorKind.TIMEOUT)
    assert (found.ok, found.status, found.filled_qty) == (True, "filled", 0.01)


async def test_a_resend_of_an_order_already_on_the_book_returns_that_order() -> None:
    async with bybit_venue() as v:
        adapter = _adapter(v)
        try:
            first = await adapter.place_market_order(BTC, "buy", 0.01, client_order_id="tw-dup")
            again = await adapter.place_market_order(BTC, "buy", 0.01, client_order_id="tw-dup")  # 110072
        finally:
            await adapter.close()
    assert again == first
    assert list(v.orders) == ["tw-dup"]
    assert v.positions == {"BTCUSDT": 0.01}


async def test_a_venue_outage_fails_every_call_with_a_classified_result() -> None:
    async with bybit_venue() as v:
        adapter = _adapter(v)
        v.down = True
        try:
            results = [
                await adapter.place_market_order(BTC, "buy", 0.01, client_order_id="tw-1"),
                await adapter.update_stop_loss(BTC, "long", 0.01, 25_000.0, client_order_id="tw-2"),
                await adapter.close_position(BTC, client_order_id="tw-3"),
                await adapter.fetch_order(BTC, "tw-1"),
            ]
        finally:
            await adapter.close()
    assert [r.error_kind for r in results] == [ErrorKind.EXCHANGE_UNAVAILABLE] * 4


HOSTS = ("api.bybit.com",)


async def test_error_codes_classify_as_on_the_real_host() -> None:
    """ccxt's Bybit error table does not depend on the host; checked under the real name over TLS."""
    async with bybit_venue(tls_hosts=HOSTS) as v:
        session = v.client_session()
        raw = ccxt_async.bybit(
            {
                "session": session,
                "apiKey": "k",
                "secret": "s",
                "options": {"defaultType": "swap", "fetchCurrencies": False},
            }
        )
        adapter = Bybit(config=bybit_config(), clock=LiveClock(), ccxt_options={"session": session})
        try:
            assert raw.urls["api"]["private"] == "https://api.{hostname}"  # URLs untouched
            await raw.load_markets()
            v.balance = 10.0
            with pytest.raises(ccxt.InsufficientFunds, match="110007"):
                await raw.create_order(BTC, "market", "buy", 0.01)
            result = await adapter.place_market_order(BTC, "buy", 0.01, client_order_id="tw-f")
        finally:
            await raw.close()
            await adapter.close()
            await session.close()
    assert result.error_kind is ErrorKind.INSUFFICIENT_FUNDS
    assert v.orders == {}
