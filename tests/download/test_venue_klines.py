"""The loopback venues page klines as Binance and Bybit do: since, end, limit and the interval honoured."""

from __future__ import annotations

from typing import Any

import aiohttp
import ccxt.async_support as ccxt_async
import pytest

from twinstar.testing import bybit_venue, venue

pytestmark = pytest.mark.anyio

T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC
MIN = 60_000


def _binance_rows(count: int) -> list[list[Any]]:
    prices = [[f"{100 + k}", f"{102 + k}", f"{99 + k}", f"{101 + k}"] for k in range(count)]
    return [[T0 + k * MIN, *p, "2", T0 + k * MIN + MIN - 1, "202", 3, "1", "101", "0"] for k, p in enumerate(prices)]


def _bybit_rows(count: int) -> list[list[Any]]:
    return [[T0 + k * MIN, f"{100 + k}", f"{102 + k}", f"{99 + k}", f"{101 + k}", "2", "202"] for k in range(count)]


async def _get(url: str, **query: str | int) -> Any:
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, params={k: str(v) for k, v in query.items()}) as reply,
    ):
        return await reply.json()


async def test_binance_pages_forward_from_start_time_within_its_limits() -> None:
    async with venue() as v:
        v.klines, v.kline_interval = _binance_rows(2_000), "1m"
        url = f"{v.base}/fapi/v1/klines"
        default = await _get(url, symbol="BTCUSDT", interval="1m", startTime=T0 + 5 * MIN)
        widest = await _get(url, symbol="BTCUSDT", interval="1m", startTime=T0, limit=5_000)
        newest = await _get(url, symbol="BTCUSDT", interval="1m", limit=3)
        before_end = await _get(url, symbol="BTCUSDT", interval="1m", endTime=T0 + 9 * MIN, limit=3)
        mid_candle = await _get(url, symbol="BTCUSDT", interval="1m", startTime=T0 + 30_000, limit=1)
        bounded = await _get(url, symbol="BTCUSDT", interval="1m", startTime=T0, endTime=T0 + 2 * MIN)
        bad_interval = await _get(url, symbol="BTCUSDT", interval="7m")
        bad_symbol = await _get(url, symbol="NOPE", interval="1m")
    assert [len(default), default[0][0], default[-1][0]] == [500, T0 + 5 * MIN, T0 + 504 * MIN]
    assert [len(widest), widest[-1][0]] == [1_500, T0 + 1_499 * MIN]  # fapi's maximum
    assert [row[0] for row in newest] == [T0 + k * MIN for k in (1_997, 1_998, 1_999)]
    assert [row[0] for row in before_end] == [T0 + k * MIN for k in (7, 8, 9)]
    assert [row[0] for row in mid_candle] == [T0 + MIN]  # the first candle opening at or after startTime
    assert [row[0] for row in bounded] == [T0, T0 + MIN, T0 + 2 * MIN]
    assert bad_interval == {"code": -1120, "msg": "Invalid interval."}
    assert bad_symbol == {"code": -1121, "msg": "Invalid symbol."}


async def test_binance_serves_longer_intervals_aggregated_and_none_finer() -> None:
    async with venue() as v:
        v.klines, v.kline_interval = _binance_rows(12), "1m"
        url = f"{v.base}/fapi/v1/klines"
        five = await _get(url, symbol="BTCUSDT", interval="5m", startTime=T0)
        seconds = await _get(url, symbol="BTCUSDT", interval="1s", startTime=T0)
    assert five == [
        [T0, "100", "106", "99", "105", "10", T0 + 5 * MIN - 1, "1010", 15, "5", "505", "0"],
        [T0 + 5 * MIN, "105", "111", "104", "110", "10", T0 + 10 * MIN - 1, "1010", 15, "5", "505", "0"],
        [T0 + 10 * MIN, "110", "113", "109", "112", "4", T0 + 15 * MIN - 1, "404", 6, "2", "202", "0"],
    ]
    assert seconds == []


async def test_ccxt_pages_binance_by_since_and_limit() -> None:
    async with venue() as v:
        v.klines, v.kline_interval = _binance_rows(50), "1m"
        exchange = ccxt_async.binanceusdm()
        v.point(exchange)
        try:
            rows = await exchange.fetch_ohlcv("BTC/USDT:USDT", "1m", since=T0 + 10 * MIN, limit=4)
            hourly = await exchange.fetch_ohlcv("BTC/USDT:USDT", "1h", since=T0)
        finally:
            await exchange.close()
    assert rows == [[T0 + k * MIN, 100.0 + k, 102.0 + k, 99.0 + k, 101.0 + k, 2.0] for k in range(10, 14)]
    assert hourly == [[T0, 100.0, 151.0, 99.0, 150.0, 100.0]]


async def test_bybit_pages_newest_first_back_from_end_and_forward_from_start() -> None:
    async with bybit_venue() as v:
        v.klines, v.kline_interval = _bybit_rows(1_200), "1"
        url = f"{v.base}/v5/market/kline"
        query = {"category": "linear", "symbol": "BTCUSDT", "interval": "1"}
        default = await _get(url, **query)
        widest = await _get(url, **query, start=T0, limit=5_000)
        from_start = await _get(url, **query, start=T0 + 30_000, limit=3)
        back_from_end = await _get(url, **query, start=T0, end=T0 + 100 * MIN, limit=3)
        bad_interval = await _get(url, **{**query, "interval": "7"})

    def opens(reply: Any) -> list[int]:
        return [int(row[0]) for row in reply["result"]["list"]]

    assert [len(opens(default)), opens(default)[0], opens(default)[-1]] == [200, T0 + 1_199 * MIN, T0 + 1_000 * MIN]
    assert [len(opens(widest)), opens(widest)[0]] == [1_000, T0 + 999 * MIN]  # the maximum, newest first
    assert opens(from_start) == [T0 + 2 * MIN, T0 + MIN, T0]  # the candle holding `start` counts
    assert opens(back_from_end) == [T0 + 100 * MIN, T0 + 99 * MIN, T0 + 98 * MIN]
    assert (bad_interval["retCode"], bad_interval["retMsg"]) == (10001, "Invalid period!")


async def test_ccxt_pages_bybit_by_since_limit_and_interval() -> None:
    async with bybit_venue() as v:
        v.klines, v.kline_interval = _bybit_rows(30), "1"
        exchange = ccxt_async.bybit({"options": {"defaultType": "swap"}})
        v.point(exchange)
        try:
            rows = await exchange.fetch_ohlcv("BTC/USDT:USDT", "1m", since=T0 + 10 * MIN, limit=4)
            fifteen = await exchange.fetch_ohlcv("BTC/USDT:USDT", "15m", since=T0)
        finally:
            await exchange.close()
    assert rows == [[T0 + k * MIN, 100.0 + k, 102.0 + k, 99.0 + k, 101.0 + k, 2.0] for k in range(10, 14)]
    assert fifteen == [[T0, 100.0, 116.0, 99.0, 115.0, 30.0], [T0 + 15 * MIN, 115.0, 131.0, 114.0, 130.0, 30.0]]
