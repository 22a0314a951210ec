"""Adapters over real ccxt code and real HTTP on 127.0.0.1."""

from __future__ import annotations

import inspect
import os

import pytest

from twinstar.adapters import VENUES, make_exchange
from twinstar.adapters.base import ErrorKind, Exchange, OrderResult
from twinstar.adapters.binance import BinanceUsdm
from twinstar.adapters.ccxt_base import CcxtExchange
from twinstar.clock import LiveClock
from twinstar.config import ExchangeConfig
from twinstar.testing.venue import Failure, venue

pytestmark = pytest.mark.anyio
ALL_IDS = [*VENUES, "kraken"]
ORDER_METHODS = ("place_market_order", "update_stop_loss", "cancel_stop_loss", "close_position", "fetch_order")


def _config(exchange_id: str) -> ExchangeConfig:
    os.environ["TWINSTAR_TEST_KEY"] = "test-api-key-0123456789"
    os.environ["TWINSTAR_TEST_SECRET"] = "test-secret-abcdefghijklmnop"
    os.environ["TWINSTAR_TEST_PASS"] = "test-passphrase"
    return ExchangeConfig(
        id=exchange_id,
        api_key_env="TWINSTAR_TEST_KEY",
        api_secret_env="TWINSTAR_TEST_SECRET",
        password_env="TWINSTAR_TEST_PASS",
        options={"fetchCurrencies": False},
    )


def test_every_adapter_has_the_same_protocol_surface() -> None:
    surface = {name for name, _ in inspect.getmembers(CcxtExchange) if not name.startswith("_")}
    for exchange_id in ALL_IDS:
        adapter = make_exchange(_config(exchange_id), LiveClock())
        assert isinstance(adapter, Exchange)
        assert {name for name, _ in inspect.getmembers(type(adapter)) if not name.startswith("_")} >= surface


@pytest.mark.parametrize("exchange_id", ALL_IDS)
async def test_every_order_method_returns_an_order_result_when_the_venue_fails(exchange_id: str) -> None:
    async with venue() as v:
        adapter = make_exchange(_config(exchange_id), LiveClock())
        assert isinstance(adapter, CcxtExchange)
        v.point(adapter.ccxt)
        v.down = True
        try:
            results = [
                await adapter.place_market_order("BTC/USDT:USDT", "buy", 0.01, client_order_id="tw-1"),
                await adapter.update_stop_loss("BTC/USDT:USDT", "long", 0.01, 25_000.0, client_order_id="tw-2"),
                await adapter.close_position("BTC/USDT:USDT", client_order_id="tw-3"),
                await adapter.fetch_order("BTC/USDT:USDT", "tw-1"),
            ]
        finally:
            await adapter.close()
        for result in results:
            assert type(result) is OrderResult
            assert not result.ok
            assert result.error_kind is not None
            assert "test-secret" not in result.message
            assert "test-api-key" not in result.message
        assert v.requests, "the adapter never reached the loopback venue"


async def test_binance_usdm_trades_over_the_wire_with_the_real_exchange_info() -> None:
    async with venue() as v:
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=LiveClock())
        v.point(adapter.ccxt)
        v.klines = [
            [1_626_992_700_000 + i * 60_000, "1.0", "2.0", "0.5", "1.5", "10", 0, "0", 1, "0", "0", "0"]
            for i in range(3)
        ]
        try:
            placed = await adapter.place_market_order("BTC/USDT:USDT", "buy", 0.0123456, client_order_id="tw-abc")
            found = await adapter.fetch_order("BTC/USDT:USDT", "tw-abc")
            missing = await adapter.fetch_order("BTC/USDT:USDT", "tw-never")
            bars = await adapter.fetch_ohlcv("BTC/USDT:USDT", "1m", limit=3)
            v.offset_ms = 5_000
            server_ms = await adapter.server_time()
        finally:
            await adapter.close()
        assert placed.ok and placed.status == "filled"
        assert placed.requested_qty == 0.012  # rounded to the real BTCUSDT step size (0.001)
        assert (placed.filled_qty, placed.avg_price, placed.client_order_id) == (0.012, 30_000.0, "tw-abc")
        assert v.orders["tw-abc"]["origQty"] == "0.012"
        assert found.ok and found.order_id == placed.order_id
        assert missing.error_kind is ErrorKind.ORDER_NOT_FOUND
        assert [b.open_time_ms for b in bars] == [1_626_992_700_000, 1_626_992_760_000, 1_626_992_820_000]
        assert bars[0].close == 1.5
        assert server_ms - LiveClock().now_ms() == pytest.approx(5_000, abs=1_000)


@pytest.mark.parametrize(
    ("failure", "kind"),
    [
        (Failure(429, {"code": -1003, "msg": "Too many requests"}, {"Retry-After": "1"}), ErrorKind.RATE_LIMIT),
        (Failure(418, {"code": -1003, "msg": "IP banned"}), ErrorKind.RATE_LIMIT),
        (Failure(400, {"code": -1003, "msg": "TOO_MANY_REQUESTS"}), ErrorKind.RATE_LIMIT),
        (Failure(400, {"code": -1021, "msg": "Timestamp outside of the recvWindow."}), ErrorKind.CLOCK_SKEW),
        (Failure(400, {"code": -2010, "msg": "NEW_ORDER_REJECTED"}), ErrorKind.INVALID_ORDER),
        (Failure(401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}), ErrorKind.AUTH),
        (
            Failure(503, {"code": -1001, "msg": "Internal error; unable to process your request."}),
            ErrorKind.EXCHANGE_UNAVAILABLE,
        ),
        (Failure(408, {"code": -1007, "msg": "Timeout waiting for response from backend server."}), ErrorKind.TIMEOUT),
    ],
)
async def test_binance_failures_arrive_classified(failure: Failure, kind: ErrorKind) -> None:
    async with venue() as v:
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=LiveClock())
        v.point(adapter.ccxt)
        try:
            await adapter.ccxt.load_markets()
            v.failures.append(failure)
            result = await adapter.place_market_order("BTC/USDT:USDT", "buy", 0.01, client_order_id="tw-x")
        finally:
            await adapter.close()
        assert result.error_kind is kind
        assert v.orders == {}
