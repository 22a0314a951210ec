"""Binance's futures error table, as ccxt applies it to the real host name, over loopback TLS."""

from __future__ import annotations

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from tests.adapters.test_adapters_wire import _config
from twinstar.adapters.base import ErrorKind
from twinstar.adapters.binance import BinanceUsdm
from twinstar.clock import LiveClock
from twinstar.testing import Failure, venue

pytestmark = pytest.mark.anyio
HOSTS = ("fapi.binance.com",)


@pytest.mark.parametrize(
    ("code", "message", "ccxt_class", "kind"),
    [
        (-2019, "Margin is insufficient.", ccxt.InsufficientFunds, ErrorKind.INSUFFICIENT_FUNDS),
        (-2021, "Order would immediately trigger.", ccxt.OrderImmediatelyFillable, ErrorKind.INVALID_ORDER),
        (-4164, "Order's notional must be no smaller than 5.", ccxt.InvalidOrder, ErrorKind.INVALID_ORDER),
    ],
)
async def test_futures_codes_classify_as_on_the_real_exchange(
    code: int, message: str, ccxt_class: type[Exception], kind: ErrorKind
) -> None:
    async with venue(tls_hosts=HOSTS) as v:
        session = v.client_session()
        raw = ccxt_async.binanceusdm(
            {"session": session, "apiKey": "k", "secret": "s", "options": {"fetchCurrencies": False}}
        )
        adapter = BinanceUsdm(config=_config("binanceusdm"), clock=LiveClock(), ccxt_options={"session": session})
        try:
            assert raw.urls["api"]["fapiPrivate"].startswith("https://fapi.binance.com/")  # URLs untouched
            await raw.load_markets()
            v.failures.append(Failure(400, {"code": code, "msg": message}))
            with pytest.raises(ccxt_class):
                await raw.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
            v.failures.append(Failure(400, {"code": code, "msg": message}))
            result = await adapter.place_market_order("BTC/USDT:USDT", "buy", 0.01, client_order_id="tw-f")
        finally:
            await raw.close()
            await adapter.close()
            await session.close()
        assert result.error_kind is kind
        assert v.orders == {}


async def test_the_loopback_session_refuses_every_other_host() -> None:
    async with venue(tls_hosts=HOSTS) as v:
        session = v.client_session()
        exchange = ccxt_async.bybit({"session": session})
        try:
            with pytest.raises(ccxt.NetworkError, match=r"api\.bybit\.com"):  # refused by our resolver, not sent
                await exchange.fetch_time()
        finally:
            await exchange.close()
            await session.close()
